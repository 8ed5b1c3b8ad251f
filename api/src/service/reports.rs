//! Reports: a member flags a photo for operators. Once `PHOTON_REPORT_HIDE_THRESHOLD`
//! distinct members have reported it, the photo is hidden (`photos.hidden_at`) from everyone
//! but its uploader until an operator keeps it (`photon reports --resolve ID --keep`) or
//! removes it (`--remove`).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::photo::{self, PhotoStatus};
use entity::photo_report;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, TransactionTrait,
};
use uuid::Uuid;

use crate::clock;
use crate::error::{ApiError, ApiResult};
use crate::events::{self, EventPayload, NewEvent};
use crate::service::{Viewer, blocks, photos, sessions};
use crate::storage::{ObjectStore, orphans};

/// Settings: when reports hide a photo.
#[derive(Debug, Clone, clap::Args)]
pub struct SafetySettings {
    /// Distinct members whose reports hide a photo from everyone but its uploader, pending
    /// an operator's review (`photon reports`).
    #[arg(long, env = "PHOTON_REPORT_HIDE_THRESHOLD", default_value_t = 3,
        value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub report_hide_threshold: u64,
}

/// Longest reason, in characters.
pub const MAX_REASON_CHARS: usize = 500;

/// `reportPhoto`: the viewer must be a current member who can see the photo. A second report
/// by the same member changes nothing and still answers true.
pub async fn report_photo(
    db: &DatabaseConnection,
    settings: &SafetySettings,
    viewer: Viewer,
    photo_id: Uuid,
    reason: &str,
) -> ApiResult<bool> {
    let me = blocks::live_user(db, viewer).await?.id;
    let reason = reason.trim();
    let chars = reason.chars().count();
    if chars == 0 || chars > MAX_REASON_CHARS {
        return Err(ApiError::bad_input(
            "reason",
            format!("reason must be 1 to {MAX_REASON_CHARS} characters"),
        ));
    }
    let photo = photos::find_photo(db, viewer, photo_id)
        .await?
        .filter(|p| p.status == PhotoStatus::Ready)
        .ok_or(ApiError::NotFound("no such photo"))?;
    let txn = db.begin().await?;
    sessions::lock_session(&txn, photo.session_id, false).await?;
    photo_report::Entity::insert(photo_report::ActiveModel {
        photo_id: Set(photo.id),
        reporter_id: Set(me),
        reason: Set(reason.to_owned()),
        created_at: Set(clock::now()),
    })
    .on_conflict_do_nothing_on([
        photo_report::Column::PhotoId,
        photo_report::Column::ReporterId,
    ])
    .exec_without_returning(&txn)
    .await?;
    // Counted under the session's lock, so simultaneous reports see each other.
    let count = photo_report::Entity::find()
        .filter(photo_report::Column::PhotoId.eq(photo.id))
        .count(&txn)
        .await?;
    if count >= settings.report_hide_threshold {
        photo::Entity::update_many()
            .col_expr(photo::Column::HiddenAt, Expr::value(clock::now()))
            .filter(photo::Column::Id.eq(photo.id))
            .filter(photo::Column::HiddenAt.is_null())
            .exec(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(true)
}

/// A reported photo, for operators.
#[derive(Debug, Clone)]
pub struct OpenReport {
    pub photo_id: Uuid,
    pub session_id: Uuid,
    pub uploader_id: Uuid,
    pub hidden: bool,
    /// (reporter, reason), oldest first.
    pub reports: Vec<(Uuid, String)>,
}

/// Every photo with reports, oldest report first. Two statements.
pub async fn open_reports(db: &impl ConnectionTrait) -> ApiResult<Vec<OpenReport>> {
    let rows = photo_report::Entity::find()
        .order_by_asc(photo_report::Column::CreatedAt)
        .all(db)
        .await?;
    let mut by_photo: BTreeMap<Uuid, Vec<(Uuid, String)>> = BTreeMap::new();
    let mut order = Vec::new();
    for row in rows {
        let entry = by_photo.entry(row.photo_id).or_default();
        if entry.is_empty() {
            order.push(row.photo_id);
        }
        entry.push((row.reporter_id, row.reason));
    }
    let photos: BTreeMap<Uuid, photo::Model> = photo::Entity::find()
        .filter(photo::Column::Id.is_in(order.iter().copied()))
        .all(db)
        .await?
        .into_iter()
        .map(|p| (p.id, p))
        .collect();
    Ok(order
        .into_iter()
        .filter_map(|id| {
            let photo = photos.get(&id)?;
            Some(OpenReport {
                photo_id: id,
                session_id: photo.session_id,
                uploader_id: photo.uploader_id,
                hidden: photo.hidden_at.is_some(),
                reports: by_photo.remove(&id).unwrap_or_default(),
            })
        })
        .collect())
}

/// The operator's table of [`open_reports`], one line per photo, tab-separated.
pub fn format_reports(reports: &[OpenReport]) -> String {
    let mut out = String::from("photo\tsession\tuploader\tcount\thidden\treporters\treasons\n");
    for r in reports {
        let reporters: Vec<String> = r.reports.iter().map(|(id, _)| id.to_string()).collect();
        let reasons: Vec<String> = r
            .reports
            .iter()
            .map(|(_, reason)| reason.replace(['\t', '\n', '\r'], " "))
            .collect();
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            r.photo_id,
            r.session_id,
            r.uploader_id,
            r.reports.len(),
            if r.hidden { "hidden" } else { "visible" },
            reporters.join(","),
            reasons.join(" | "),
        ));
    }
    out
}

/// An operator's decision on a reported photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Unhide it and close its reports.
    Keep,
    /// Delete it as its uploader would.
    Remove,
}

/// Applies an operator's decision. False if the photo does not exist.
pub async fn resolve(
    db: &DatabaseConnection,
    store: &dyn ObjectStore,
    upload_url_ttl: Duration,
    photo_id: Uuid,
    decision: Decision,
) -> ApiResult<bool> {
    let Some(seen) = photo::Entity::find_by_id(photo_id).one(db).await? else {
        return Ok(false);
    };
    match decision {
        Decision::Keep => {
            let txn = db.begin().await?;
            photo::Entity::update_many()
                .col_expr(
                    photo::Column::HiddenAt,
                    Expr::value(Option::<DateTime<Utc>>::None),
                )
                .filter(photo::Column::Id.eq(photo_id))
                .exec(&txn)
                .await?;
            photo_report::Entity::delete_many()
                .filter(photo_report::Column::PhotoId.eq(photo_id))
                .exec(&txn)
                .await?;
            txn.commit().await?;
            Ok(true)
        }
        Decision::Remove => {
            let removed = remove_photo(db, store, upload_url_ttl, seen).await?;
            Ok(removed)
        }
    }
}

/// Deletes a photo the way `deletePhoto` does, for operators and account deletion: the row
/// (reports cascade) and an orphan note in one transaction under the session's lock, a
/// `PhotoDeleted` event for a ready photo, and the object after the commit (a store failure
/// leaves the orphan note for the sweeper, never a leaked object).
pub async fn remove_photo(
    db: &DatabaseConnection,
    store: &dyn ObjectStore,
    upload_url_ttl: Duration,
    seen: photo::Model,
) -> ApiResult<bool> {
    let txn = db.begin().await?;
    sessions::lock_session(&txn, seen.session_id, false).await?;
    let Some(photo) = photo::Entity::find_by_id(seen.id).one(&txn).await? else {
        return Ok(false);
    };
    let deleted = photo::Entity::delete_by_id(photo.id).exec(&txn).await?;
    if deleted.rows_affected != 1 {
        return Ok(false);
    }
    let now = clock::now();
    let url_ttl = chrono::Duration::from_std(upload_url_ttl).map_err(ApiError::internal)?;
    // The last upload URL may still work: keep the note until it has expired.
    let urls_dead_at = (photo.created_at + url_ttl + chrono::Duration::minutes(5)).max(now);
    orphans::record(
        &txn,
        photo.session_id,
        &photo.sha256,
        urls_dead_at,
        photo.legacy_key,
    )
    .await?;
    if photo.status == PhotoStatus::Ready {
        events::record(
            &txn,
            NewEvent {
                session_id: Some(photo.session_id),
                actor_id: photo.uploader_id,
                payload: EventPayload::PhotoDeleted {
                    photo_id: photo.id,
                    reason: None,
                },
                push: false,
            },
        )
        .await?;
    }
    txn.commit().await?;
    orphans::purge_after_commit(db, store, photo.session_id, &photo.sha256, now).await;
    Ok(true)
}
