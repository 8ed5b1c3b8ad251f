//! Downloading a whole session: which photos an archive holds, under which names, and the
//! link that serves it.
//!
//! An archive holds the session's ready, unexpired photos that the member may see (what
//! blocks and reports hide stays out), each as its `Photo.url` would give it: the member's
//! own uploads as they sent them, everyone else's as the copy without location and other
//! metadata (so a photo whose processing has not made that copy yet, or failed to, is left
//! out). Files are named by when they were taken and by whom, in a folder named after the
//! session: `Beach day/2026-12-03 21.14.07 Ana.jpg`.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use entity::photo::{self, Processing};
use entity::{session, user};
use futures_util::StreamExt;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::archive::link::ArchiveLink;
use crate::archive::stream::Item;
use crate::archive::zip::{self, Entry, MAX_NAME_BYTES};
use crate::deps::Deps;
use crate::error::{ApiError, ApiResult};
use crate::service::{Viewer, photos, sessions};
use crate::storage::ObjectStore;

/// What `requestSessionArchive` answers.
#[derive(Debug, Clone)]
pub struct ArchiveOffer {
    pub url: String,
    pub expires_at: DateTime<Utc>,
    pub photo_count: i64,
    /// The archive's exact length, as its download's `Content-Length` will say.
    pub byte_size: i64,
}

/// An archive's contents.
#[derive(Debug, Clone)]
pub struct Contents {
    /// What the downloaded file is called: the session's title.
    pub file_name: String,
    pub items: Vec<Item>,
    /// The last photo's position, 0 for none.
    pub up_to: i64,
}

impl Contents {
    pub fn byte_size(&self) -> u64 {
        let entries: Vec<Entry> = self.items.iter().map(|item| item.entry.clone()).collect();
        zip::archive_size(&entries)
    }
}

/// Store look-ups at once for photos whose copy's size was never recorded.
const SIZE_LOOKUPS: usize = 16;

/// The archive of the session as `viewer` would download it now, with a link to it that
/// lasts `PHOTON_ARCHIVE_URL_TTL_SECS`. Any current member may; NOT_FOUND for anyone else.
pub async fn request_archive(
    deps: &Deps,
    viewer: Viewer,
    session_id: Uuid,
) -> ApiResult<ArchiveOffer> {
    let me = viewer.user_id()?;
    let session = sessions::get_session(&deps.db, viewer, session_id)
        .await?
        .session;
    let contents = contents(&deps.db, deps.store.as_ref(), &session, me, None).await?;
    let expires_at = crate::storage::expires_at(deps.config.archive_url_ttl)?;
    // Whole seconds, as the link carries its expiry, rounded up so it lasts the full time.
    let expires_at = DateTime::from_timestamp(expires_at.timestamp() + 1, 0).unwrap_or(expires_at);
    let link = ArchiveLink {
        session_id,
        user_id: me,
        up_to: contents.up_to,
        expires_at,
    };
    let url = deps.archive_links.url(&link).map_err(ApiError::internal)?;
    Ok(ArchiveOffer {
        url,
        expires_at,
        photo_count: contents.items.len() as i64,
        byte_size: i64::try_from(contents.byte_size()).unwrap_or(i64::MAX),
    })
}

/// The contents a checked link opens, if its member still belongs to the session; NOT_FOUND
/// for one who left or was removed since.
pub async fn open_link(deps: &Deps, link: &ArchiveLink) -> ApiResult<Contents> {
    let viewer = Viewer::User(link.user_id);
    let session = sessions::get_session(&deps.db, viewer, link.session_id)
        .await?
        .session;
    contents(
        &deps.db,
        deps.store.as_ref(),
        &session,
        link.user_id,
        Some(link.up_to),
    )
    .await
}

/// A photo before it becomes an item: where it is, and how big, once known.
struct Source {
    photo: photo::Model,
    key: String,
    size: Option<u64>,
}

/// What the session's archive holds for its member `me`, up to the photo at `up_to` if
/// given. Two statements (photos, then their uploaders), plus a store look-up and a write-back for
/// each photo processed before copies' sizes were recorded.
async fn contents(
    db: &impl ConnectionTrait,
    store: &dyn ObjectStore,
    session: &session::Model,
    me: Uuid,
    up_to: Option<i64>,
) -> ApiResult<Contents> {
    let session_id = session.id;
    let mut query = photo::Entity::find()
        .filter(photo::Column::SessionId.eq(session_id))
        .filter(photos::shown_to(me));
    if let Some(up_to) = up_to {
        query = query.filter(photo::Column::Seq.lte(up_to));
    }
    let photos = query.order_by_asc(photo::Column::Seq).all(db).await?;
    let sources: Vec<Source> = photos
        .into_iter()
        .filter_map(|photo| source(photo, me))
        .collect();
    let sources = with_sizes(db, store, sources).await?;
    let uploaders: Vec<Uuid> = sources.iter().map(|s| s.photo.uploader_id).collect();
    let names: HashMap<Uuid, String> = user::Entity::find()
        .filter(user::Column::Id.is_in(uploaders))
        .all(db)
        .await?
        .into_iter()
        .map(|u| (u.id, u.name))
        .collect();
    let up_to = sources
        .iter()
        .filter_map(|s| s.photo.seq)
        .max()
        .unwrap_or(0);
    let folder = file_part(&session.title, "Photon session");
    let mut dated: Vec<(NaiveDateTime, DateTime<Utc>, Source)> = sources
        .into_iter()
        .map(|s| {
            let (local, instant) = when(&s.photo);
            (local, instant, s)
        })
        .collect();
    dated.sort_by_key(|(local, _, s)| (*local, s.photo.seq));
    let mut taken = HashMap::<String, u32>::new();
    let items = dated
        .into_iter()
        .filter_map(|(local_time, modified, s)| {
            let size = s.size?;
            let uploader = names
                .get(&s.photo.uploader_id)
                .map_or("someone", String::as_str);
            let stem = format!(
                "{} {}",
                local_time.format("%Y-%m-%d %H.%M.%S"),
                file_part(uploader, "someone")
            );
            let name = unique_name(&mut taken, &folder, &stem, extension(&s.photo.content_type));
            Some(Item {
                key: s.key,
                entry: Entry {
                    name,
                    size,
                    local_time,
                    modified,
                },
            })
        })
        .collect();
    Ok(Contents {
        file_name: format!("{folder}.zip"),
        items,
        up_to,
    })
}

/// Which object of `photo` the member `me` gets, as `Photo.url` decides; `None` when they
/// get none (another member's photo whose copy without metadata does not exist).
fn source(photo: photo::Model, me: Uuid) -> Option<Source> {
    let (key, shared) = photos::full_size_key(&photo, Some(me));
    let size = if !shared {
        Some(photo.byte_size.max(0) as u64)
    } else if matches!(photo.processing, Processing::Done | Processing::Unsupported) {
        photo.shared_byte_size.map(|size| size.max(0) as u64)
    } else {
        // Not processed yet, or failed: there is no copy to hand out.
        return None;
    };
    Some(Source { photo, key, size })
}

/// Fills in the sizes of copies made before sizes were recorded, from the store (writing
/// them back so this happens once per photo); drops the photos whose copy is not there.
async fn with_sizes(
    db: &impl ConnectionTrait,
    store: &dyn ObjectStore,
    sources: Vec<Source>,
) -> ApiResult<Vec<Source>> {
    let looked_up: Vec<ApiResult<Source>> = futures_util::stream::iter(sources)
        .map(|mut source| async move {
            if source.size.is_none() {
                source.size = store.size(&source.key).await?;
                if let Some(size) = source.size {
                    photo::Entity::update_many()
                        .col_expr(
                            photo::Column::SharedByteSize,
                            Expr::value(i64::try_from(size).unwrap_or(i64::MAX)),
                        )
                        .filter(photo::Column::Id.eq(source.photo.id))
                        .exec(db)
                        .await?;
                }
            }
            Ok(source)
        })
        .buffered(SIZE_LOOKUPS)
        .collect()
        .await;
    let mut sources = Vec::with_capacity(looked_up.len());
    for source in looked_up {
        let source = source?;
        if source.size.is_some() {
            sources.push(source);
        }
    }
    Ok(sources)
}

/// When a photo was taken, as the wall clock where it was taken showed it (and as an
/// instant); when it arrived, in UTC, for a photo that does not say.
fn when(photo: &photo::Model) -> (NaiveDateTime, DateTime<Utc>) {
    match photo.taken_at {
        Some(taken) => {
            let offset =
                chrono::Duration::minutes(i64::from(photo.taken_at_offset_minutes.unwrap_or(0)));
            ((taken + offset).naive_utc(), taken)
        }
        None => {
            let arrived = photo.ready_at.unwrap_or(photo.created_at);
            (arrived.naive_utc(), arrived)
        }
    }
}

fn extension(content_type: &str) -> &'static str {
    match content_type {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/webp" => "webp",
        "image/heic" => "heic",
        "image/heif" => "heif",
        _ => "bin",
    }
}

/// Longest piece of a file name taken from what people typed (titles, names), in characters:
/// at four bytes each, a file name of a date, a name, a counter and an extension stays
/// within the 255 bytes a path component may have.
const MAX_PART_CHARS: usize = 50;

/// Text made safe as one path component on every common file system: no separators, no
/// characters Windows refuses, no control characters, no leading or trailing dots or spaces
/// (so never `.` or `..`), and not too long; `fallback` when nothing is left.
fn file_part(text: &str, fallback: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|') {
                '_'
            } else {
                c
            }
        })
        .take(MAX_PART_CHARS)
        .collect();
    let trimmed = cleaned.trim_matches(|c: char| c == '.' || c.is_whitespace());
    if trimmed.is_empty() {
        fallback.to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// `folder/stem.ext`, or `folder/stem (2).ext` and so on when another file took that name
/// (compared without case, as macOS and Windows do).
fn unique_name(
    taken: &mut HashMap<String, u32>,
    folder: &str,
    stem: &str,
    extension: &str,
) -> String {
    let count = taken.entry(stem.to_lowercase()).or_insert(0);
    *count += 1;
    let name = if *count == 1 {
        format!("{folder}/{stem}.{extension}")
    } else {
        format!("{folder}/{stem} ({count}).{extension}")
    };
    debug_assert!(name.len() <= MAX_NAME_BYTES);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_people_are_safe_path_components() {
        assert_eq!(file_part("Beach day", "x"), "Beach day");
        assert_eq!(file_part("../../etc/passwd", "x"), "_.._etc_passwd");
        assert_eq!(file_part("..", "x"), "x");
        assert_eq!(file_part("  . ", "x"), "x");
        assert_eq!(
            file_part("a\u{0}b\nc:d*e?f\"g<h>i|j\\k", "x"),
            "a_b_c_d_e_f_g_h_i_j_k"
        );
        assert_eq!(file_part("Zoë 🎉", "x"), "Zoë 🎉");
        let long = "é".repeat(500);
        assert_eq!(file_part(&long, "x").chars().count(), MAX_PART_CHARS);
    }

    #[test]
    fn names_stay_unique_ignoring_case_and_short() {
        let mut taken = HashMap::new();
        let stem = "2026-12-03 21.14.07 Ana";
        assert_eq!(
            unique_name(&mut taken, "S", stem, "jpg"),
            "S/2026-12-03 21.14.07 Ana.jpg"
        );
        assert_eq!(
            unique_name(&mut taken, "S", stem, "jpg"),
            "S/2026-12-03 21.14.07 Ana (2).jpg"
        );
        assert_eq!(
            unique_name(&mut taken, "S", "2026-12-03 21.14.07 ANA", "png"),
            "S/2026-12-03 21.14.07 ANA (3).png"
        );
        // The longest title and name, in four-byte characters, still make components file
        // systems take, even with a counter.
        let wide = file_part(&"🎉".repeat(500), "x");
        let stem = format!("2026-12-03 21.14.07 {wide}");
        taken.insert(stem.to_lowercase(), 9_998);
        let name = unique_name(&mut taken, &wide, &stem, "heic");
        assert!(name.ends_with(" (9999).heic"));
        assert!(name.len() <= MAX_NAME_BYTES);
        assert!(name.split('/').all(|part| part.len() <= 255), "{name}");
    }
}
