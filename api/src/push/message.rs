//! What a push says: the visible text, the data the app resumes from, and the FCM message
//! around them.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// One notification, the same for every device of the users it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub title: String,
    pub body: String,
    /// String values only: FCM refuses anything else in `data`.
    pub data: BTreeMap<&'static str, String>,
    /// Notifications with the same key replace each other on the device (Android's `tag`,
    /// APNs' `apns-collapse-id`): a later summary of a session's photos replaces the earlier
    /// one, and a push sent twice (after a retry) shows once.
    pub collapse_key: String,
}

/// "Ana added 3 photos to Beach day": `uploaders` newest first, `count` the photos they added.
pub fn photos_added(
    session_title: &str,
    session_id: String,
    cursor: String,
    uploaders: &[&str],
    count: usize,
    collapse_key: String,
) -> Notification {
    let who = who(uploaders);
    let what = if count == 1 {
        "a photo".to_owned()
    } else {
        format!("{count} photos")
    };
    Notification {
        title: session_title.to_owned(),
        body: format!("{who} added {what} to {session_title}"),
        data: BTreeMap::from([
            ("type", "photos_added".to_owned()),
            ("sessionId", session_id),
            ("cursor", cursor),
        ]),
        collapse_key,
    }
}

/// "14 photos from Ana and 3 others in Beach day": the one summary a DIGEST member gets after
/// the end.
pub fn digest(
    session_title: &str,
    session_id: String,
    uploaders: &[&str],
    count: usize,
    collapse_key: String,
) -> Notification {
    let what = if count == 1 {
        "1 photo".to_owned()
    } else {
        format!("{count} photos")
    };
    Notification {
        title: session_title.to_owned(),
        body: format!("{what} from {} in {session_title}", who(uploaders)),
        data: BTreeMap::from([
            ("type", "photos_digest".to_owned()),
            ("sessionId", session_id),
        ]),
        collapse_key,
    }
}

/// "Beach day's photos disappear in an hour — save them".
pub fn photos_expiring(
    session_title: &str,
    session_id: String,
    collapse_key: String,
) -> Notification {
    Notification {
        title: session_title.to_owned(),
        body: format!("{session_title}'s photos disappear in an hour \u{2014} save them"),
        data: BTreeMap::from([
            ("type", "photos_expiring".to_owned()),
            ("sessionId", session_id),
        ]),
        collapse_key,
    }
}

fn who(uploaders: &[&str]) -> String {
    match uploaders {
        [] => "someone".to_owned(),
        [one] => (*one).to_owned(),
        [first, second] => format!("{first} and {second}"),
        [first, rest @ ..] => format!("{first} and {} others", rest.len()),
    }
}

/// "Ana invited you to Beach day", with the code that joins it.
pub fn session_invite(
    session_title: &str,
    session_id: String,
    invite_code: String,
    inviter: &str,
    collapse_key: String,
) -> Notification {
    Notification {
        title: session_title.to_owned(),
        body: format!("{inviter} invited you to {session_title}"),
        data: BTreeMap::from([
            ("type", "session_invite".to_owned()),
            ("sessionId", session_id),
            ("inviteCode", invite_code),
        ]),
        collapse_key,
    }
}

/// "Ana wants to be your friend".
pub fn friend_request(
    requester: &str,
    request_id: String,
    requester_id: String,
    collapse_key: String,
) -> Notification {
    Notification {
        title: "Friend request".to_owned(),
        body: format!("{requester} wants to be your friend"),
        data: BTreeMap::from([
            ("type", "friend_request".to_owned()),
            ("requestId", request_id),
            ("userId", requester_id),
        ]),
        collapse_key,
    }
}

/// The `messages:send` body for one registration token: a visible notification on every
/// platform, plus the data the app reads when it is opened from it.
pub fn fcm_body(token: &str, notification: &Notification) -> Value {
    json!({
        "message": {
            "token": token,
            "notification": {
                "title": notification.title,
                "body": notification.body,
            },
            "data": notification.data,
            "android": {
                "collapse_key": notification.collapse_key,
                "notification": { "tag": notification.collapse_key },
            },
            "apns": {
                "headers": { "apns-collapse-id": notification.collapse_key },
                "payload": { "aps": { "thread-id": notification.collapse_key } },
            },
            "webpush": {
                "notification": { "tag": notification.collapse_key },
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(uploaders: &[&str], count: usize) -> String {
        photos_added(
            "Beach day",
            "s".into(),
            "c".into(),
            uploaders,
            count,
            "k".into(),
        )
        .body
    }

    #[test]
    fn photo_summaries_name_who_and_how_many() {
        assert_eq!(body(&["Ana"], 1), "Ana added a photo to Beach day");
        assert_eq!(body(&["Ana"], 3), "Ana added 3 photos to Beach day");
        assert_eq!(
            body(&["Ana", "Bo"], 4),
            "Ana and Bo added 4 photos to Beach day"
        );
        assert_eq!(
            body(&["Ana", "Bo", "Cy"], 5),
            "Ana and 2 others added 5 photos to Beach day"
        );
    }

    #[test]
    fn digests_and_warnings_say_what_and_whose() {
        let digest = |who: &[&str], n| digest("Beach day", "s".into(), who, n, "k".into()).body;
        assert_eq!(digest(&["Ana"], 1), "1 photo from Ana in Beach day");
        assert_eq!(
            digest(&["Ana", "Bo", "Cy", "Di"], 14),
            "14 photos from Ana and 3 others in Beach day"
        );
        let warning = photos_expiring("Beach day", "s".into(), "k".into());
        assert_eq!(
            warning.body,
            "Beach day's photos disappear in an hour \u{2014} save them"
        );
        assert_eq!(warning.data["type"], "photos_expiring");
    }

    #[test]
    fn the_fcm_body_carries_text_data_and_collapse_keys() {
        let n = session_invite(
            "Beach day",
            "S".into(),
            "CODE".into(),
            "Ana",
            "invite:1".into(),
        );
        let body = fcm_body("tok", &n);
        let message = &body["message"];
        assert_eq!(message["token"], "tok");
        assert_eq!(
            message["notification"]["body"],
            "Ana invited you to Beach day"
        );
        assert_eq!(message["data"]["inviteCode"], "CODE");
        assert_eq!(message["data"]["type"], "session_invite");
        assert_eq!(message["android"]["notification"]["tag"], "invite:1");
        assert_eq!(message["apns"]["headers"]["apns-collapse-id"], "invite:1");
        assert!(
            message["data"]
                .as_object()
                .unwrap()
                .values()
                .all(Value::is_string)
        );
    }
}
