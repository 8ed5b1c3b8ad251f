//! `requestSessionArchive`: a link to download a whole session as one ZIP. A thin resolver
//! over `service::archive`.

use async_graphql::{Context, ID, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::ContextExt;
use super::ids::{self, Kind};
use crate::limits::Rule;
use crate::limits::graphql::RateLimitExt;
use crate::service::archive;

#[derive(Default)]
pub struct ArchiveMutation;

/// A session's photos as one ZIP, to download before they expire.
#[derive(SimpleObject)]
pub struct SessionArchive {
    /// Where to GET the ZIP: served by Photon, signed, valid until `expiresAt` (a download
    /// that began in time runs to its end). No token is needed, so treat it like a password
    /// while it lasts.
    url: String,
    /// When the link stops opening.
    expires_at: DateTime<Utc>,
    /// How many photos it holds.
    photo_count: i64,
    /// Its exact length in bytes, as the download's `Content-Length` says.
    byte_size: i64,
}

#[Object]
impl ArchiveMutation {
    /// A link to download the session as one ZIP: its ready photos that the viewer may see
    /// (what they block or reports hid stays out), their own uploads as they sent them and
    /// everyone else's without location and other metadata, named by when they were taken
    /// and by whom (`Beach day/2026-12-03 21.14.07 Ana.jpg`). The archive holds the photos
    /// there are now; later ones need a new link. Photos are stored, not recompressed. Any
    /// current member may ask, also after the session ended; NOT_FOUND for anyone else.
    async fn request_session_archive(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The session to download.")] session_id: ID,
    ) -> Result<SessionArchive> {
        ctx.rate_limit(Rule::Archive)?;
        let session_id = ids::expect(Kind::Session, &session_id, "sessionId")?;
        let offer = archive::request_archive(ctx.deps()?, ctx.viewer(), session_id).await?;
        Ok(SessionArchive {
            url: offer.url,
            expires_at: offer.expires_at,
            photo_count: offer.photo_count,
            byte_size: offer.byte_size,
        })
    }
}
