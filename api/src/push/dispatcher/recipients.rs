//! Who hears about a job, and what: the session's members without a live subscription for
//! a photo group (each told only about other people's photos), the invitee of a session
//! invite still open, the addressee of a friend request still waiting; and their devices.

use std::collections::HashMap;
use std::sync::Arc;

use entity::event::{self, EventKind};
use entity::friendship::{self, FriendshipStatus};
use entity::photo::{self, PhotoStatus};
use entity::session_member::NotificationLevel;
use entity::{device, session, session_member, user};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::Dispatcher;
use crate::clock;
use crate::events::EventPayload;
use crate::graphql::ids::{self, Kind};
use crate::jobs::JobResult;
use crate::push::message::{self, Notification};
use crate::realtime::presence;
use crate::service::pagination::encode_cursor;
use crate::service::{blocks, invite_code, sessions};

/// A user to push, and what.
pub(super) struct Recipient {
    pub(super) user_id: Uuid,
    pub(super) notification: Arc<Notification>,
}

impl Dispatcher {
    /// Who should hear about a job, and what.
    pub(super) async fn recipients(&self, job: &[event::Model]) -> anyhow::Result<Vec<Recipient>> {
        let first = &job[0];
        match first.kind {
            EventKind::PhotoAdded => self.photo_recipients(job).await,
            EventKind::MemberInvited => self.invite_recipient(first).await,
            EventKind::FriendRequested => self.friend_request_recipient(first).await,
            EventKind::SessionEnded => self.digest_recipients(first).await,
            EventKind::PhotosExpiring => self.expiry_recipients(first).await,
            // Nothing else asks for a push today.
            _ => Ok(Vec::new()),
        }
    }

    async fn photo_recipients(&self, job: &[event::Model]) -> anyhow::Result<Vec<Recipient>> {
        let Some(session_id) = job[0].session_id else {
            return Ok(Vec::new());
        };
        // Late uploads after the end are news too, while the session takes them.
        let Some(session) = session::Entity::find_by_id(session_id)
            .one(&self.db)
            .await?
            .filter(|s| sessions::takes_uploads(s, clock::now()))
        else {
            return Ok(Vec::new());
        };
        // Photos deleted or expired since they were added are not announced.
        let photo_ids: Vec<Uuid> = job
            .iter()
            .filter_map(|e| EventPayload::read(e)?.photo_id())
            .collect();
        let uploader_of: HashMap<Uuid, Uuid> = photo::Entity::find()
            .select_only()
            .column(photo::Column::Id)
            .column(photo::Column::UploaderId)
            .filter(photo::Column::Id.is_in(photo_ids))
            .filter(photo::Column::Status.eq(PhotoStatus::Ready))
            .filter(photo::Column::ExpiresAt.gt(clock::now()))
            // Hidden by reports: nobody but its uploader (whom it never pushes) sees it.
            .filter(photo::Column::HiddenAt.is_null())
            .into_tuple::<(Uuid, Uuid)>()
            .all(&self.db)
            .await?
            .into_iter()
            .collect();
        // Uploaders in event order, oldest first.
        let uploads: Vec<Uuid> = job
            .iter()
            .filter_map(|e| uploader_of.get(&EventPayload::read(e)?.photo_id()?))
            .copied()
            .collect();
        if uploads.is_empty() {
            return Ok(Vec::new());
        }
        // Only members who hear every photo: DIGEST waits for the end, NONE hears nothing.
        let members = members_at(&self.db, session_id, &[NotificationLevel::All]).await?;
        // A member's own photos never push them, nor photos of people they block: only
        // members someone else added photos for them to hear.
        let blocked = self.blocked_pairs(&members, &uploads).await?;
        let heard_by = |member: Uuid| -> Vec<Uuid> {
            uploads
                .iter()
                .copied()
                .filter(|u| *u != member && !blocked.contains(&(member, *u)))
                .collect()
        };
        let candidates: Vec<Uuid> = members
            .iter()
            .copied()
            .filter(|m| !heard_by(*m).is_empty())
            .collect();
        let online = presence::online_users(&self.db, session_id, &candidates)
            .await
            .job()?;
        let names = self.names(&uploads).await?;
        let session_gid = ids::encode(Kind::Session, session_id).0;
        let cursor = encode_cursor(&job.iter().map(|e| e.id).max().unwrap_or_default());
        let collapse_key = format!("photos:{session_id}");
        let mut texts: HashMap<(Vec<Uuid>, usize), Arc<Notification>> = HashMap::new();
        let mut recipients = Vec::new();
        for member in candidates.into_iter().filter(|m| !online.contains(m)) {
            let theirs = heard_by(member);
            let uploaders = newest_first(&theirs);
            let count = theirs.len();
            let notification = texts
                .entry((uploaders, count))
                .or_insert_with_key(|(uploaders, count)| {
                    let who: Vec<&str> = uploaders.iter().map(|u| name(&names, *u)).collect();
                    Arc::new(message::photos_added(
                        &session.title,
                        session_gid.clone(),
                        cursor.clone(),
                        &who,
                        *count,
                        collapse_key.clone(),
                    ))
                })
                .clone();
            recipients.push(Recipient {
                user_id: member,
                notification,
            });
        }
        Ok(recipients)
    }

    /// The summary that members who chose DIGEST get when the session ends: everything others
    /// added ("14 photos from Ana and 3 others in Beach day"); nothing if that is nothing.
    async fn digest_recipients(&self, event: &event::Model) -> anyhow::Result<Vec<Recipient>> {
        let Some(session_id) = event.session_id else {
            return Ok(Vec::new());
        };
        let Some(session) = session::Entity::find_by_id(session_id)
            .one(&self.db)
            .await?
        else {
            return Ok(Vec::new());
        };
        let members = members_at(&self.db, session_id, &[NotificationLevel::Digest]).await?;
        if members.is_empty() {
            return Ok(Vec::new());
        }
        // Uploaders of the photos still there, oldest first (one row per photo: a session
        // holds at most `PHOTON_SESSION_MAX_PHOTOS`).
        let uploads: Vec<Uuid> = photo::Entity::find()
            .select_only()
            .column(photo::Column::UploaderId)
            .filter(photo::Column::SessionId.eq(session_id))
            .filter(photo::Column::Status.eq(PhotoStatus::Ready))
            .filter(photo::Column::ExpiresAt.gt(clock::now()))
            .filter(photo::Column::HiddenAt.is_null())
            .order_by_asc(photo::Column::Seq)
            .into_tuple()
            .all(&self.db)
            .await?;
        let names = self.names(&uploads).await?;
        let blocked = self.blocked_pairs(&members, &uploads).await?;
        let session_gid = ids::encode(Kind::Session, session_id).0;
        let mut recipients = Vec::new();
        for member in members {
            let theirs: Vec<Uuid> = uploads
                .iter()
                .copied()
                .filter(|u| *u != member && !blocked.contains(&(member, *u)))
                .collect();
            if theirs.is_empty() {
                continue;
            }
            let who: Vec<&str> = newest_first(&theirs)
                .into_iter()
                .map(|u| name(&names, u))
                .collect();
            recipients.push(Recipient {
                user_id: member,
                notification: Arc::new(message::digest(
                    &session.title,
                    session_gid.clone(),
                    &who,
                    theirs.len(),
                    format!("photos:{session_id}"),
                )),
            });
        }
        Ok(recipients)
    }

    /// The warning before the photos start to expire: every current member who has not
    /// chosen NONE.
    async fn expiry_recipients(&self, event: &event::Model) -> anyhow::Result<Vec<Recipient>> {
        let Some(session_id) = event.session_id else {
            return Ok(Vec::new());
        };
        let Some(session) = session::Entity::find_by_id(session_id)
            .one(&self.db)
            .await?
        else {
            return Ok(Vec::new());
        };
        let levels = [NotificationLevel::All, NotificationLevel::Digest];
        let members = members_at(&self.db, session_id, &levels).await?;
        let notification = Arc::new(message::photos_expiring(
            &session.title,
            ids::encode(Kind::Session, session_id).0,
            format!("expiring:{session_id}"),
        ));
        Ok(members
            .into_iter()
            .map(|user_id| Recipient {
                user_id,
                notification: notification.clone(),
            })
            .collect())
    }

    async fn invite_recipient(&self, event: &event::Model) -> anyhow::Result<Vec<Recipient>> {
        let (Some(session_id), Some(EventPayload::MemberInvited { user_id: invitee })) =
            (event.session_id, EventPayload::read(event))
        else {
            return Ok(Vec::new());
        };
        let Some(session) = live_session(&self.db, session_id).await? else {
            return Ok(Vec::new());
        };
        // Joined in the meantime: nothing to invite them to.
        let member = session_member::Entity::find_by_id((session_id, invitee))
            .filter(session_member::Column::LeftAt.is_null())
            .one(&self.db)
            .await?;
        if member.is_some() {
            return Ok(Vec::new());
        }
        let inviter = event.actor_id.unwrap_or(session.owner_id);
        let names = self.names(&[inviter]).await?;
        Ok(vec![Recipient {
            user_id: invitee,
            notification: Arc::new(message::session_invite(
                &session.title,
                ids::encode(Kind::Session, session_id).0,
                // The code as it is now: it may have been rotated since the invite.
                invite_code::display(&session.invite_code),
                name(&names, inviter),
                format!("invite:{session_id}"),
            )),
        }])
    }

    async fn friend_request_recipient(
        &self,
        event: &event::Model,
    ) -> anyhow::Result<Vec<Recipient>> {
        let Some(EventPayload::FriendRequested { request_id, .. }) = EventPayload::read(event)
        else {
            return Ok(Vec::new());
        };
        // Only a request still waiting for an answer is worth a push, and only if it is still
        // the one this event recorded (the pair's row is reused when the other side asks).
        let Some(request) = friendship::Entity::find_by_id(request_id)
            .filter(friendship::Column::Status.eq(FriendshipStatus::Pending))
            .one(&self.db)
            .await?
            .filter(|r| Some(r.requester_id) == event.actor_id)
        else {
            return Ok(Vec::new());
        };
        let requester = request.requester_id;
        let names = self.names(&[requester]).await?;
        Ok(vec![Recipient {
            user_id: request.addressee_id(),
            notification: Arc::new(message::friend_request(
                name(&names, requester),
                ids::encode(Kind::FriendRequest, request_id).0,
                ids::encode(Kind::User, requester).0,
                format!("friend:{request_id}"),
            )),
        }])
    }

    /// Which members block which uploaders.
    async fn blocked_pairs(
        &self,
        members: &[Uuid],
        uploads: &[Uuid],
    ) -> anyhow::Result<std::collections::HashSet<(Uuid, Uuid)>> {
        let mut uploaders = uploads.to_vec();
        uploaders.sort_unstable();
        uploaders.dedup();
        blocks::pairs_among(&self.db, members, &uploaders)
            .await
            .job()
    }

    async fn names(&self, user_ids: &[Uuid]) -> anyhow::Result<HashMap<Uuid, String>> {
        Ok(user::Entity::find()
            .select_only()
            .column(user::Column::Id)
            .column(user::Column::Name)
            .filter(user::Column::Id.is_in(user_ids.iter().copied()))
            .into_tuple::<(Uuid, String)>()
            .all(&self.db)
            .await?
            .into_iter()
            .collect())
    }

    pub(super) async fn devices_of(
        &self,
        user_ids: &[Uuid],
    ) -> anyhow::Result<HashMap<Uuid, Vec<device::Model>>> {
        let mut devices: HashMap<Uuid, Vec<device::Model>> = HashMap::new();
        let mut user_ids = user_ids.to_vec();
        user_ids.sort_unstable();
        user_ids.dedup();
        for chunk in user_ids.chunks(500) {
            for row in device::Entity::find()
                .filter(device::Column::UserId.is_in(chunk.iter().copied()))
                .all(&self.db)
                .await?
            {
                devices.entry(row.user_id).or_default().push(row);
            }
        }
        Ok(devices)
    }
}

/// A session that has not ended.
async fn live_session(
    db: &DatabaseConnection,
    session_id: Uuid,
) -> anyhow::Result<Option<session::Model>> {
    Ok(session::Entity::find_by_id(session_id)
        .filter(session::Column::EndedAt.is_null())
        .one(db)
        .await?)
}

/// The session's current members whose notification level is one of `levels`.
async fn members_at(
    db: &DatabaseConnection,
    session_id: Uuid,
    levels: &[NotificationLevel],
) -> anyhow::Result<Vec<Uuid>> {
    Ok(session_member::Entity::find()
        .select_only()
        .column(session_member::Column::UserId)
        .filter(session_member::Column::SessionId.eq(session_id))
        .filter(session_member::Column::LeftAt.is_null())
        .filter(session_member::Column::Notifications.is_in(levels.iter().copied()))
        .into_tuple()
        .all(db)
        .await?)
}

/// Distinct uploaders, the most recent first, from uploads listed oldest first.
fn newest_first(uploads: &[Uuid]) -> Vec<Uuid> {
    let mut uploaders: Vec<Uuid> = Vec::new();
    for uploader in uploads.iter().rev() {
        if !uploaders.contains(uploader) {
            uploaders.push(*uploader);
        }
    }
    uploaders
}

fn name(names: &HashMap<Uuid, String>, user_id: Uuid) -> &str {
    names.get(&user_id).map_or("Someone", String::as_str)
}
