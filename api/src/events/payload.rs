//! What each kind of event says, as one typed enum. The kind is stored in its own column and
//! the rest as JSON in `payload`; [`EventPayload`] is the only way either is written or read,
//! so a writer and a reader cannot disagree on a key.

use chrono::{DateTime, Utc};
use entity::event::{self, EventKind};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An event's kind and contents. Serialised adjacently tagged, `{"kind": …, "payload": {…}}`,
/// which is exactly the row's two columns: the stored JSON has no tag of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload", rename_all = "snake_case")]
#[serde(rename_all_fields = "camelCase")]
pub enum EventPayload {
    MemberJoined {
        user_id: Uuid,
    },
    MemberLeft {
        user_id: Uuid,
    },
    MemberInvited {
        user_id: Uuid,
    },
    /// The owner removed a member; `banned` when they may not come back.
    MemberRemoved {
        user_id: Uuid,
        #[serde(default)]
        banned: bool,
    },
    /// The owner changed the session's settings; the session as it is now is what to show.
    SessionUpdated {},
    /// The session's first photos expire within the warning lead time: a push-only event.
    PhotosExpiring {
        expires_at: DateTime<Utc>,
    },
    SessionEnded {
        ended_at: DateTime<Utc>,
    },
    PhotoAdded {
        photo_id: Uuid,
    },
    PhotoDeleted {
        photo_id: Uuid,
        /// Set when the sweeper removed it; a member's own delete has none.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<DeleteReason>,
    },
    FriendRequested {
        request_id: Uuid,
        to: Uuid,
    },
    /// The workers are done with a photo: its derivatives are ready, or there will be none.
    PhotoProcessed {
        photo_id: Uuid,
    },
    /// The actor blocked or unblocked someone (who is not named: nobody else reads this).
    BlocksChanged {},
}

/// Why a photo went away without its uploader deleting it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteReason {
    Expired,
}

/// A stored event whose payload does not match its kind: a bug or a hand-edited row.
#[derive(Debug, thiserror::Error)]
#[error("event {id} ({kind:?}) has a malformed payload: {source}")]
pub struct MalformedEvent {
    pub id: i64,
    pub kind: EventKind,
    #[source]
    pub source: serde_json::Error,
}

impl EventPayload {
    /// The kind column for this payload.
    pub fn kind(&self) -> EventKind {
        match self {
            Self::MemberJoined { .. } => EventKind::MemberJoined,
            Self::MemberLeft { .. } => EventKind::MemberLeft,
            Self::MemberInvited { .. } => EventKind::MemberInvited,
            Self::MemberRemoved { .. } => EventKind::MemberRemoved,
            Self::SessionUpdated {} => EventKind::SessionUpdated,
            Self::PhotosExpiring { .. } => EventKind::PhotosExpiring,
            Self::SessionEnded { .. } => EventKind::SessionEnded,
            Self::PhotoAdded { .. } => EventKind::PhotoAdded,
            Self::PhotoDeleted { .. } => EventKind::PhotoDeleted,
            Self::FriendRequested { .. } => EventKind::FriendRequested,
            Self::PhotoProcessed { .. } => EventKind::PhotoProcessed,
            Self::BlocksChanged {} => EventKind::BlocksChanged,
        }
    }

    /// The payload column for this payload (the JSON without its tag).
    pub fn to_json(&self) -> serde_json::Value {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(mut tagged)) => {
                tagged.remove("payload").unwrap_or_default()
            }
            // Every variant is a struct (`SessionUpdated {}` too), so serde writes an object
            // with both keys.
            _ => serde_json::Value::Null,
        }
    }

    /// Reads a stored event's kind and payload back.
    pub fn of(event: &event::Model) -> Result<Self, MalformedEvent> {
        let kind = serde_json::to_value(KindTag(event.kind)).unwrap_or_default();
        let tagged = serde_json::json!({ "kind": kind, "payload": event.payload });
        serde_json::from_value(tagged).map_err(|source| MalformedEvent {
            id: event.id,
            kind: event.kind,
            source,
        })
    }

    /// Reads a stored event's payload for a consumer that can skip it: a malformed payload
    /// is a bug (or a hand-edited row), logged here, and the event is skipped rather than
    /// failing every feed or push round that meets it.
    pub fn read(event: &event::Model) -> Option<Self> {
        Self::of(event)
            .inspect_err(|err| tracing::error!(error = %err, "skipping an unreadable event"))
            .ok()
    }

    /// The photo a photo event is about.
    pub fn photo_id(&self) -> Option<Uuid> {
        match self {
            Self::PhotoAdded { photo_id }
            | Self::PhotoDeleted { photo_id, .. }
            | Self::PhotoProcessed { photo_id } => Some(*photo_id),
            _ => None,
        }
    }

    /// The member a membership event is about.
    pub fn user_id(&self) -> Option<Uuid> {
        match self {
            Self::MemberJoined { user_id }
            | Self::MemberLeft { user_id }
            | Self::MemberInvited { user_id }
            | Self::MemberRemoved { user_id, .. } => Some(*user_id),
            _ => None,
        }
    }
}

/// The kind's tag, as the enum above spells it (the same strings as the column).
struct KindTag(EventKind);

impl Serialize for KindTag {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(match self.0 {
            EventKind::MemberJoined => "member_joined",
            EventKind::MemberLeft => "member_left",
            EventKind::MemberInvited => "member_invited",
            EventKind::MemberRemoved => "member_removed",
            EventKind::SessionUpdated => "session_updated",
            EventKind::PhotosExpiring => "photos_expiring",
            EventKind::SessionEnded => "session_ended",
            EventKind::PhotoAdded => "photo_added",
            EventKind::PhotoDeleted => "photo_deleted",
            EventKind::FriendRequested => "friend_requested",
            EventKind::PhotoProcessed => "photo_processed",
            EventKind::BlocksChanged => "blocks_changed",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: EventKind, payload: serde_json::Value) -> event::Model {
        event::Model {
            id: 7,
            session_id: None,
            actor_id: None,
            kind,
            payload,
            created_at: Utc::now(),
            push_state: event::PushState::None,
            push_attempts: 0,
            push_not_before: None,
            session_seq: None,
        }
    }

    #[test]
    fn every_kind_round_trips_through_its_columns() {
        let id = Uuid::now_v7();
        let ended_at = crate::clock::now();
        for payload in [
            EventPayload::MemberJoined { user_id: id },
            EventPayload::MemberLeft { user_id: id },
            EventPayload::MemberInvited { user_id: id },
            EventPayload::MemberRemoved {
                user_id: id,
                banned: true,
            },
            EventPayload::SessionUpdated {},
            EventPayload::PhotosExpiring {
                expires_at: ended_at,
            },
            EventPayload::SessionEnded { ended_at },
            EventPayload::PhotoAdded { photo_id: id },
            EventPayload::PhotoDeleted {
                photo_id: id,
                reason: None,
            },
            EventPayload::PhotoDeleted {
                photo_id: id,
                reason: Some(DeleteReason::Expired),
            },
            EventPayload::FriendRequested {
                request_id: id,
                to: Uuid::now_v7(),
            },
            EventPayload::PhotoProcessed { photo_id: id },
            EventPayload::BlocksChanged {},
        ] {
            let stored = row(payload.kind(), payload.to_json());
            assert_eq!(EventPayload::of(&stored).expect("reads back"), payload);
        }
    }

    #[test]
    fn the_stored_json_keeps_the_keys_clients_and_old_rows_use() {
        let id = Uuid::nil();
        assert_eq!(
            EventPayload::PhotoDeleted {
                photo_id: id,
                reason: Some(DeleteReason::Expired)
            }
            .to_json(),
            serde_json::json!({ "photoId": id, "reason": "expired" })
        );
        assert_eq!(
            EventPayload::FriendRequested {
                request_id: id,
                to: id
            }
            .to_json(),
            serde_json::json!({ "requestId": id, "to": id })
        );
    }

    #[test]
    fn a_payload_of_the_wrong_shape_is_an_error_not_a_guess() {
        let wrong = row(EventKind::PhotoAdded, serde_json::json!({ "userId": "x" }));
        let err = EventPayload::of(&wrong).expect_err("a photo event needs a photo id");
        assert_eq!(err.id, 7);
    }
}
