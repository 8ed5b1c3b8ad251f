//! Archive links: `{PHOTON_PUBLIC_URL}/archive/{session}.zip?user&upto&exp&sig`. The
//! signature covers the session, the member it was made for, the last photo it includes and
//! its expiry; it is a capability like a presigned storage URL, so it lives minutes, and the
//! download still checks that the member belongs to the session.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;
use uuid::Uuid;

use crate::signing::Signer;

/// What a link grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveLink {
    pub session_id: Uuid,
    pub user_id: Uuid,
    /// The photos whose position (`seq`) is at most this: the archive holds what there was
    /// when it was asked for, not what arrived since.
    pub up_to: i64,
    pub expires_at: DateTime<Utc>,
}

/// A link's query string.
#[derive(Debug, Deserialize)]
pub struct LinkQuery {
    user: Uuid,
    upto: i64,
    exp: i64,
    sig: String,
}

/// Why a link does not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    /// Not a link this server signed, or one that was altered.
    Invalid,
    /// Signed, but past its expiry: ask for a new one.
    Expired,
}

/// Makes and checks archive links.
pub struct ArchiveLinks {
    signer: Signer,
    /// `{PHOTON_PUBLIC_URL}/archive/`.
    base: Url,
}

impl ArchiveLinks {
    pub fn new(secret: &SecretString, public_url: &Url) -> anyhow::Result<Self> {
        Ok(Self {
            signer: Signer::new(secret, "photon session archive v1")?,
            base: public_url.join("archive/")?,
        })
    }

    fn fields(session_id: &str, user: &str, up_to: &str, exp: &str) -> [String; 5] {
        [
            "GET".to_owned(),
            session_id.to_owned(),
            user.to_owned(),
            up_to.to_owned(),
            exp.to_owned(),
        ]
    }

    pub fn url(&self, link: &ArchiveLink) -> anyhow::Result<String> {
        let (session, user) = (link.session_id.to_string(), link.user_id.to_string());
        let (up_to, exp) = (
            link.up_to.to_string(),
            link.expires_at.timestamp().to_string(),
        );
        let fields = Self::fields(&session, &user, &up_to, &exp);
        let sig = self.signer.sign(&fields.each_ref().map(String::as_str));
        let mut url = self.base.join(&format!("{session}.zip"))?;
        url.query_pairs_mut()
            .append_pair("user", &user)
            .append_pair("upto", &up_to)
            .append_pair("exp", &exp)
            .append_pair("sig", &sig);
        Ok(url.into())
    }

    /// The grant of a link to `file` (`{session}.zip`) with `query`, checked at `now`.
    pub fn check(
        &self,
        file: &str,
        query: &LinkQuery,
        now: DateTime<Utc>,
    ) -> Result<ArchiveLink, LinkError> {
        let session_id = file
            .strip_suffix(".zip")
            .and_then(|id| Uuid::try_parse(id).ok())
            .ok_or(LinkError::Invalid)?;
        let fields = Self::fields(
            &session_id.to_string(),
            &query.user.to_string(),
            &query.upto.to_string(),
            &query.exp.to_string(),
        );
        if !self
            .signer
            .verify(&fields.each_ref().map(String::as_str), &query.sig)
        {
            return Err(LinkError::Invalid);
        }
        let expires_at = DateTime::from_timestamp(query.exp, 0).ok_or(LinkError::Invalid)?;
        if expires_at <= now {
            return Err(LinkError::Expired);
        }
        Ok(ArchiveLink {
            session_id,
            user_id: query.user,
            up_to: query.upto,
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links() -> ArchiveLinks {
        let secret = SecretString::from("a secret long enough for the tests here".to_owned());
        ArchiveLinks::new(&secret, &Url::parse("https://photon.example/").unwrap()).unwrap()
    }

    fn parse(url: &str) -> (String, LinkQuery) {
        let url = Url::parse(url).unwrap();
        let file = url.path().strip_prefix("/archive/").unwrap().to_owned();
        let query = query_of(&url);
        (file, query)
    }

    fn query_of(url: &Url) -> LinkQuery {
        let get = |name: &str| {
            url.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .unwrap()
        };
        LinkQuery {
            user: get("user").parse().unwrap(),
            upto: get("upto").parse().unwrap(),
            exp: get("exp").parse().unwrap(),
            sig: get("sig"),
        }
    }

    #[test]
    fn a_link_opens_until_it_expires_and_not_once_altered() {
        let links = links();
        let now = Utc::now();
        let link = ArchiveLink {
            session_id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            up_to: 42,
            expires_at: DateTime::from_timestamp(now.timestamp() + 600, 0).unwrap(),
        };
        let url = links.url(&link).unwrap();
        assert!(url.starts_with(&format!(
            "https://photon.example/archive/{}.zip?",
            link.session_id
        )));
        let (file, query) = parse(&url);
        assert_eq!(links.check(&file, &query, now), Ok(link));
        assert_eq!(
            links.check(&file, &query, link.expires_at),
            Err(LinkError::Expired)
        );

        let other_session = format!("{}.zip", Uuid::now_v7());
        assert_eq!(
            links.check(&other_session, &query, now),
            Err(LinkError::Invalid)
        );
        for altered in [
            LinkQuery {
                user: Uuid::now_v7(),
                ..parse(&url).1
            },
            LinkQuery {
                upto: 43,
                ..parse(&url).1
            },
            LinkQuery {
                exp: query.exp + 3600,
                ..parse(&url).1
            },
            LinkQuery {
                sig: "AAAA".to_owned(),
                ..parse(&url).1
            },
        ] {
            assert_eq!(links.check(&file, &altered, now), Err(LinkError::Invalid));
        }
        assert_eq!(
            links.check(&file.replace(".zip", ""), &query, now),
            Err(LinkError::Invalid)
        );
    }
}
