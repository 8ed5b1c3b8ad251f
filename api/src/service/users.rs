//! Users: the viewer's own profile, look-ups, and the account that sign-in creates.

use std::collections::HashMap;

use entity::user;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
};
use uuid::Uuid;

use crate::clock;
use crate::error::{ApiError, ApiResult};
use crate::service::Viewer;
use crate::service::{guests, input};

/// The signed-in user. A valid token for a user that no longer exists is UNAUTHENTICATED.
pub async fn get_me(db: &impl ConnectionTrait, viewer: Viewer) -> ApiResult<user::Model> {
    let id = viewer.user_id()?;
    user::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(ApiError::Unauthenticated("this account no longer exists"))
}

/// Any user by id, for a signed-in viewer (names and avatars are not secret among users).
/// A guest is seen only by those who share a session with them; a guest sees nobody this way
/// (their session's members list is theirs to read).
pub async fn find_user(
    db: &impl ConnectionTrait,
    viewer: Viewer,
    id: Uuid,
) -> ApiResult<Option<user::Model>> {
    let me = viewer.user_id()?;
    let Some(found) = user::Entity::find_by_id(id).one(db).await? else {
        return Ok(None);
    };
    if found.id == me {
        return Ok(Some(found));
    }
    if guests::is_guest(db, me).await? {
        return Err(guests::FORBIDDEN);
    }
    if found.is_guest && !guests::can_see(db, me, found.id).await? {
        return Ok(None);
    }
    Ok(Some(found))
}

/// The user with exactly this e-mail address. It reveals no more than a friend request to
/// that address would: that someone is registered under it, and their public profile.
pub async fn find_user_by_email(
    db: &impl ConnectionTrait,
    viewer: Viewer,
    email: &str,
) -> ApiResult<Option<user::Model>> {
    guests::account_id(db, viewer).await?;
    let email = input::email(email)?;
    Ok(user::Entity::find()
        .filter(user::Column::Email.eq(email))
        .one(db)
        .await?)
}

/// Users by id, for the DataLoader.
pub async fn load_users(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> ApiResult<HashMap<Uuid, user::Model>> {
    let users = user::Entity::find()
        .filter(user::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?;
    Ok(users.into_iter().map(|u| (u.id, u)).collect())
}

/// A change to the viewer's profile. `None` leaves a field as it is; for the avatar,
/// `Some(None)` removes it.
#[derive(Debug, Default)]
pub struct ProfileChange {
    pub name: Option<String>,
    pub avatar_url: Option<Option<String>>,
}

pub async fn update_profile(
    db: &impl ConnectionTrait,
    viewer: Viewer,
    change: ProfileChange,
) -> ApiResult<user::Model> {
    let me = get_me(db, viewer).await?;
    // Validate everything before writing anything.
    let name = change
        .name
        .map(|n| input::label("name", &n, input::MAX_NAME_CHARS))
        .transpose()?;
    let avatar_url = match change.avatar_url {
        Some(Some(url)) if !url.trim().is_empty() => Some(Some(input::web_url("avatarUrl", &url)?)),
        Some(_) => Some(None),
        None => None,
    };
    let mut active: user::ActiveModel = me.into();
    if let Some(name) = name {
        active.name = Set(name);
    }
    if let Some(avatar_url) = avatar_url {
        active.avatar_url = Set(avatar_url);
    }
    active.updated_at = Set(clock::now());
    Ok(active.update(db).await?)
}

/// The account for a verified e-mail address, created on first sign-in. Race-safe: the
/// unique e-mail index decides, and a loser of the race reads the winner's row.
pub async fn upsert_by_email(
    db: &impl ConnectionTrait,
    email: &str,
    name: Option<&str>,
) -> ApiResult<user::Model> {
    let email = input::email(email)?;
    let name = match name {
        Some(name) => input::label("name", name, input::MAX_NAME_CHARS)?,
        // The local part is a fair first name until the user sets one.
        None => default_name(&email),
    };
    let now = clock::now();
    user::Entity::insert(user::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(Some(email.clone())),
        name: Set(name),
        avatar_url: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        is_guest: Set(false),
    })
    .on_conflict_do_nothing_on([user::Column::Email])
    .exec(db)
    .await?;
    user::Entity::find()
        .filter(user::Column::Email.eq(&email))
        .one(db)
        .await?
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("user vanished after upsert")))
}

fn default_name(email: &str) -> String {
    let local = email.split('@').next().unwrap_or(email);
    let name: String = local.chars().take(input::MAX_NAME_CHARS).collect();
    if name.is_empty() {
        email.to_owned()
    } else {
        name
    }
}
