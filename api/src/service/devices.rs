//! Push devices: the FCM registration tokens a user's notifications go to. A user may have
//! many; a token belongs to one user at a time (the unique index on it), and moves to whoever
//! registered it last, since a phone that changed hands should notify its new owner only.

use entity::device::{self, Platform};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use crate::clock;
use crate::error::{ApiError, ApiResult};
use crate::service::Viewer;

/// Longest token accepted; FCM's are a few hundred bytes.
pub const MAX_TOKEN_BYTES: usize = 4096;
/// Devices kept per user: registering one more forgets the one seen longest ago, so a client
/// that registers in a loop cannot make every push fan out without end.
pub const MAX_DEVICES_PER_USER: u64 = 20;

/// A registration token as FCM issues them: printable ASCII, no spaces, bounded.
fn check_token(token: &str) -> ApiResult<&str> {
    if token.is_empty() {
        return Err(ApiError::bad_input("token", "token must not be empty"));
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(ApiError::bad_input(
            "token",
            format!("token must be at most {MAX_TOKEN_BYTES} bytes"),
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_input(
            "token",
            "token must be printable ASCII without spaces",
        ));
    }
    Ok(token)
}

/// Registers `token` for the viewer's pushes. Registering it again only refreshes it (and
/// its platform); a token another user registered becomes the viewer's, as a new device.
pub async fn register_device(
    db: &DatabaseConnection,
    viewer: Viewer,
    token: &str,
    platform: Platform,
) -> ApiResult<device::Model> {
    let me = viewer.user_id()?;
    let token = check_token(token)?;
    let now = clock::now();
    // One statement, so concurrent registrations of one token cannot collide. The row keeps
    // its id and creation time while its owner stays the same, and gets new ones when it
    // changes hands.
    let existing = |column: device::Column| Expr::col((device::Entity, column));
    let excluded = |column: device::Column| Expr::col((Alias::new("excluded"), column));
    let same_owner = existing(device::Column::UserId).eq(excluded(device::Column::UserId));
    let keep_if_same_owner = |column: device::Column| {
        Expr::case(same_owner.clone(), existing(column)).finally(excluded(column))
    };
    let row = device::Entity::insert(device::ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(me),
        fcm_token: Set(token.to_owned()),
        platform: Set(platform),
        created_at: Set(now),
        last_seen_at: Set(now),
    })
    .on_conflict(
        OnConflict::column(device::Column::FcmToken)
            .value(device::Column::Id, keep_if_same_owner(device::Column::Id))
            .value(
                device::Column::CreatedAt,
                keep_if_same_owner(device::Column::CreatedAt),
            )
            .update_columns([
                device::Column::UserId,
                device::Column::Platform,
                device::Column::LastSeenAt,
            ])
            .to_owned(),
    )
    .exec_with_returning(db)
    .await?;
    forget_extra_devices(db, me).await?;
    Ok(row)
}

/// Deletes all but the viewer's [`MAX_DEVICES_PER_USER`] most recently seen devices.
async fn forget_extra_devices(db: &DatabaseConnection, me: Uuid) -> ApiResult<()> {
    // A user has at most one more than the limit here, so reading them all is cheap (and
    // SQLite has no OFFSET without LIMIT).
    let newest_first: Vec<Uuid> = device::Entity::find()
        .select_only()
        .column(device::Column::Id)
        .filter(device::Column::UserId.eq(me))
        .order_by_desc(device::Column::LastSeenAt)
        .order_by_desc(device::Column::Id)
        .into_tuple()
        .all(db)
        .await?;
    let extra: Vec<Uuid> = newest_first
        .into_iter()
        .skip(MAX_DEVICES_PER_USER as usize)
        .collect();
    if !extra.is_empty() {
        device::Entity::delete_many()
            .filter(device::Column::UserId.eq(me))
            .filter(device::Column::Id.is_in(extra))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Stops pushes to `token`. True if it was the viewer's; someone else's token is left alone,
/// and the answer is the same as for a token nobody registered.
pub async fn unregister_device(
    db: &DatabaseConnection,
    viewer: Viewer,
    token: &str,
) -> ApiResult<bool> {
    let me = viewer.user_id()?;
    let token = check_token(token)?;
    let deleted = device::Entity::delete_many()
        .filter(device::Column::FcmToken.eq(token))
        .filter(device::Column::UserId.eq(me))
        .exec(db)
        .await?;
    Ok(deleted.rows_affected > 0)
}

/// One of the viewer's devices, by id; nobody else's.
pub async fn find_device(
    db: &DatabaseConnection,
    viewer: Viewer,
    device_id: Uuid,
) -> ApiResult<Option<device::Model>> {
    let Viewer::User(me) = viewer else {
        return Ok(None);
    };
    Ok(device::Entity::find_by_id(device_id)
        .filter(device::Column::UserId.eq(me))
        .one(db)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_printable_and_bounded() {
        assert!(check_token("dGVzdA:APA91b-Hx_y").is_ok());
        for bad in ["", "a b", "a\nb", "a\0b", "tök"] {
            assert!(check_token(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(check_token(&"x".repeat(MAX_TOKEN_BYTES)).is_ok());
        assert!(check_token(&"x".repeat(MAX_TOKEN_BYTES + 1)).is_err());
    }
}
