//! How much a session pushes one member: every photo (paced), one digest after the end, or
//! nothing. Each member chooses for themselves; invites and friend requests are not a
//! session's and are unaffected.

use entity::session_member::{self, NotificationLevel};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, sea_query::Expr};
use uuid::Uuid;

use crate::error::ApiResult;
use crate::service::Viewer;
use crate::service::sessions::{self, SessionView};

/// Sets the viewer's own level for a session they are a current member of (NOT_FOUND
/// otherwise, as everywhere). Ended sessions too: a digest not yet sent is still to come.
pub async fn set_level(
    db: &DatabaseConnection,
    viewer: Viewer,
    session_id: Uuid,
    level: NotificationLevel,
) -> ApiResult<SessionView> {
    let me = viewer.user_id()?;
    sessions::get_session(db, viewer, session_id).await?;
    session_member::Entity::update_many()
        .col_expr(session_member::Column::Notifications, Expr::value(level))
        .filter(session_member::Column::SessionId.eq(session_id))
        .filter(session_member::Column::UserId.eq(me))
        .filter(session_member::Column::LeftAt.is_null())
        .exec(db)
        .await?;
    sessions::get_session(db, viewer, session_id).await
}
