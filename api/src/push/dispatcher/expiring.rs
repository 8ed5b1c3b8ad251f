//! The expiry warning: about `expiry_warning` before a session's first photos expire, one
//! `photos_expiring` event per session, which pushes its members once.
//!
//! Each replica looks every ten polls, at most every [`LOOK_EVERY`]. A session is warned in one transaction
//! under its row lock (as every writer of its events is): the flag `expiry_warned_at` is set
//! only if unset, and the event recorded only by the transaction that set it, so of two
//! replicas looking at once exactly one warns. A lifetime the owner changes clears the flag
//! (`photos::set_lifetime`): the new expiry gets its own warning.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use entity::photo::{self, PhotoStatus};
use entity::session;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect, TransactionTrait};
use uuid::Uuid;

use super::Dispatcher;
use crate::events::{self, EventPayload, NewEvent};
use crate::service::sessions;

/// How often one replica looks for sessions to warn, at most: the warning is "about an
/// hour" ahead, so every ten polls (capped here) is plenty and costs little.
pub(super) const LOOK_EVERY: Duration = Duration::from_secs(30);
/// Sessions warned per look.
const MAX_SESSIONS: u64 = 100;

impl Dispatcher {
    /// Records the warnings that are due; returns how many sessions were warned.
    pub(super) async fn warn_expiring(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        if self.expiry_warning.is_zero() || !self.time_to_look() {
            return Ok(0);
        }
        let soon: Vec<(Uuid, Option<DateTime<Utc>>)> = photo::Entity::find()
            .select_only()
            .column(photo::Column::SessionId)
            .column_as(photo::Column::ExpiresAt.min(), "first")
            .filter(photo::Column::Status.eq(PhotoStatus::Ready))
            .filter(photo::Column::ExpiresAt.gt(now))
            .filter(photo::Column::ExpiresAt.lte(now + self.expiry_warning))
            .filter(
                photo::Column::SessionId.in_subquery(sea_orm::QueryTrait::into_query(
                    session::Entity::find()
                        .select_only()
                        .column(session::Column::Id)
                        .filter(session::Column::ExpiryWarnedAt.is_null()),
                )),
            )
            .group_by(photo::Column::SessionId)
            .limit(MAX_SESSIONS)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut warned = 0;
        for (session_id, first) in soon {
            let Some(expires_at) = first else { continue };
            let txn = self.db.begin().await?;
            sessions::lock_session(&txn, session_id, false)
                .await
                .map_err(|err| anyhow::anyhow!(err.detail()))?;
            let flagged = session::Entity::update_many()
                .col_expr(session::Column::ExpiryWarnedAt, Expr::value(now))
                .filter(session::Column::Id.eq(session_id))
                .filter(session::Column::ExpiryWarnedAt.is_null())
                .exec(&txn)
                .await?;
            if flagged.rows_affected == 1 {
                let owner = session::Entity::find_by_id(session_id)
                    .one(&txn)
                    .await?
                    .map(|s| s.owner_id);
                if let Some(owner) = owner {
                    events::record(
                        &txn,
                        NewEvent {
                            session_id: Some(session_id),
                            actor_id: owner,
                            payload: EventPayload::PhotosExpiring { expires_at },
                            push: true,
                        },
                    )
                    .await
                    .map_err(|err| anyhow::anyhow!(err.detail()))?;
                    warned += 1;
                }
            }
            txn.commit().await?;
        }
        Ok(warned)
    }

    fn time_to_look(&self) -> bool {
        let mut last = self
            .looked_for_expiring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let due = last.is_none_or(|at| at.elapsed() >= self.look_every);
        if due {
            *last = Some(Instant::now());
        }
        due
    }
}
