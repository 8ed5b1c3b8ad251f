//! Global object ids: `base64url("Type:uuid")`, as Relay's `node(id:)` expects. The type
//! inside lets `node` find the right table, and clients treat ids as opaque.

use async_graphql::ID;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Session,
    FriendRequest,
    Photo,
    Device,
}

impl Kind {
    const ALL: [Kind; 5] = [
        Kind::User,
        Kind::Session,
        Kind::FriendRequest,
        Kind::Photo,
        Kind::Device,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::User => "User",
            Kind::Session => "Session",
            Kind::FriendRequest => "FriendRequest",
            Kind::Photo => "Photo",
            Kind::Device => "Device",
        }
    }
}

pub fn encode(kind: Kind, id: Uuid) -> ID {
    ID(URL_SAFE_NO_PAD.encode(format!("{}:{id}", kind.name())))
}

/// The kind and uuid inside an id, or `None` if it is not one of ours.
pub fn decode(id: &str) -> Option<(Kind, Uuid)> {
    let bytes = URL_SAFE_NO_PAD.decode(id).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let (name, uuid) = text.split_once(':')?;
    let kind = Kind::ALL.into_iter().find(|k| k.name() == name)?;
    Some((kind, Uuid::parse_str(uuid).ok()?))
}

/// The uuid inside an id that must be of `kind`; anything else is BAD_USER_INPUT on `field`.
pub fn expect(kind: Kind, id: &ID, field: &'static str) -> ApiResult<Uuid> {
    match decode(id) {
        Some((found, uuid)) if found == kind => Ok(uuid),
        _ => Err(ApiError::bad_input(
            field,
            format!("{field} is not a valid {} id", kind.name()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_keep_their_kind() {
        let uuid = Uuid::now_v7();
        let id = encode(Kind::Session, uuid);
        assert_eq!(decode(&id), Some((Kind::Session, uuid)));
        assert!(expect(Kind::Session, &id, "id").is_ok());
        assert!(expect(Kind::User, &id, "id").is_err());
    }

    #[test]
    fn garbage_is_not_an_id() {
        for bad in [
            "",
            "!!",
            "VXNlcjo",
            "VXNlcjpub3QtYS11dWlk",
            &Uuid::now_v7().to_string(),
        ] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }
}
