//! Friendships: requests, answers and the friend list. Friendship needs consent: it exists
//! only once the addressee accepts (or sends a request back, which accepts the first).
//!
//! Declining is silent: to its sender a declined request still looks pending, and sending it
//! again is refused like any duplicate, so declining someone does not invite a new request
//! (and a new push) at once. The sender may cancel it; the one who declined may still change
//! their mind by sending a request back, which makes them friends.
//!
//! Races are settled by the database, never by check-then-write: the pair's unique index
//! makes concurrent requests collide, and every state change is an `UPDATE … WHERE status =
//! <the state we saw>`, which only one of several racing requests can win.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use entity::friendship::{self, FriendshipStatus};
use entity::user;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    Order, QueryFilter, QueryOrder, QuerySelect, QueryTrait, TransactionTrait, TryInsertResult,
    sea_query::Expr,
};
use uuid::Uuid;

use crate::clock;
use crate::error::{ApiError, ApiResult};
use crate::events::{self, EventPayload, NewEvent};
use crate::push::marks;
use crate::service::pagination::{Page, PageRequest};
use crate::service::{Viewer, blocks, guests};

/// How another user stands with the viewer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    SelfUser,
    None,
    RequestSent,
    RequestReceived,
    Friends,
}

/// The viewer's standing with `other`, given their friendship row (if any).
pub fn standing(me: Uuid, other: Uuid, row: Option<&friendship::Model>) -> Standing {
    if me == other {
        return Standing::SelfUser;
    }
    match row {
        Some(row) => match visible_status(me, row) {
            FriendshipStatus::Accepted => Standing::Friends,
            FriendshipStatus::Pending if row.requester_id == me => Standing::RequestSent,
            FriendshipStatus::Pending => Standing::RequestReceived,
            FriendshipStatus::Declined | FriendshipStatus::Cancelled => Standing::None,
        },
        None => Standing::None,
    }
}

/// A request's status as `me` may see it: a declined request looks pending to its sender.
pub fn visible_status(me: Uuid, row: &friendship::Model) -> FriendshipStatus {
    match row.status {
        FriendshipStatus::Declined if row.requester_id == me => FriendshipStatus::Pending,
        status => status,
    }
}

/// Which side of requests to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Incoming,
    Outgoing,
}

const NO_SUCH_REQUEST: ApiError = ApiError::NotFound("no such friend request");
const NO_SUCH_USER: ApiError = ApiError::NotFound("no such user");

fn pair(a: Uuid, b: Uuid) -> (Uuid, Uuid) {
    if a < b { (a, b) } else { (b, a) }
}

fn pair_filter(a: Uuid, b: Uuid) -> Condition {
    let (low, high) = pair(a, b);
    Condition::all()
        .add(friendship::Column::UserLowId.eq(low))
        .add(friendship::Column::UserHighId.eq(high))
}

fn involves(me: Uuid) -> Condition {
    Condition::any()
        .add(friendship::Column::UserLowId.eq(me))
        .add(friendship::Column::UserHighId.eq(me))
}

async fn find_pair(
    db: &impl ConnectionTrait,
    a: Uuid,
    b: Uuid,
) -> ApiResult<Option<friendship::Model>> {
    Ok(friendship::Entity::find()
        .filter(pair_filter(a, b))
        .one(db)
        .await?)
}

async fn reload(db: &impl ConnectionTrait, id: Uuid) -> ApiResult<friendship::Model> {
    friendship::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(NO_SUCH_REQUEST)
}

/// Records the "someone wants to be your friend" event; it pushes the addressee only if no
/// request from the same sender did in the last day (cancel and re-send is not a way to ring
/// someone's phone at will).
async fn record_request(db: &impl ConnectionTrait, row: &friendship::Model) -> ApiResult<()> {
    let mark = marks::friend_request(row.requester_id, row.addressee_id());
    let push = marks::take(db, mark, marks::FRIEND_REQUEST_WINDOW, clock::now()).await?;
    events::record(
        db,
        NewEvent {
            session_id: None,
            actor_id: row.requester_id,
            payload: EventPayload::FriendRequested {
                request_id: row.id,
                to: row.addressee_id(),
            },
            push,
        },
    )
    .await?;
    Ok(())
}

/// Sends a friend request to `target`, or accepts theirs if they already sent one.
pub async fn send_request(
    db: &DatabaseConnection,
    viewer: Viewer,
    target: Uuid,
) -> ApiResult<friendship::Model> {
    let me = guests::account_id(db, viewer).await?;
    if me == target {
        return Err(ApiError::bad_input(
            "userId",
            "you cannot send a friend request to yourself",
        ));
    }
    // Guests cannot be befriended: to everyone outside their session they do not exist.
    let found = user::Entity::find_by_id(target).one(db).await?;
    if found.is_none_or(|u| u.is_guest) {
        return Err(NO_SUCH_USER);
    }
    // Blocked by them: it looks sent, and nothing is stored or sent (see `blocks`).
    if blocks::blocks(db, target, me).await? {
        return Ok(blocks::unsent_request(me, target));
    }
    let (low, high) = pair(me, target);
    // Each round either wins a conditional write or sees a state another request just
    // created; three rounds outlast any realistic interleaving of two users.
    for _ in 0..3 {
        let txn = db.begin().await?;
        let now = clock::now();
        let inserted = friendship::Entity::insert(friendship::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_low_id: Set(low),
            user_high_id: Set(high),
            requester_id: Set(me),
            status: Set(FriendshipStatus::Pending),
            created_at: Set(now),
            responded_at: Set(None),
        })
        .on_conflict_do_nothing_on([
            friendship::Column::UserLowId,
            friendship::Column::UserHighId,
        ])
        .exec(&txn)
        .await?;
        if matches!(inserted, TryInsertResult::Inserted(_)) {
            let row = find_pair(&txn, me, target).await?.ok_or(NO_SUCH_REQUEST)?;
            record_request(&txn, &row).await?;
            txn.commit().await?;
            return Ok(row);
        }
        let Some(row) = find_pair(&txn, me, target).await? else {
            // Removed between our insert and read: go round again.
            txn.rollback().await?;
            continue;
        };
        match row.status {
            FriendshipStatus::Accepted => {
                return Err(ApiError::Conflict("you are already friends"));
            }
            // Pending, or declined without the sender being told: a duplicate either way.
            FriendshipStatus::Pending | FriendshipStatus::Declined if row.requester_id == me => {
                return Err(ApiError::Conflict(
                    "you already sent this user a friend request",
                ));
            }
            FriendshipStatus::Pending | FriendshipStatus::Declined => {
                // They asked first (and we may have declined): asking back is consent.
                let won = friendship::Entity::update_many()
                    .col_expr(
                        friendship::Column::Status,
                        Expr::value(FriendshipStatus::Accepted),
                    )
                    .col_expr(friendship::Column::RespondedAt, Expr::value(now))
                    .filter(friendship::Column::Id.eq(row.id))
                    .filter(friendship::Column::Status.eq(row.status))
                    .filter(friendship::Column::RequesterId.eq(target))
                    .exec(&txn)
                    .await?;
                if won.rows_affected == 1 {
                    let row = reload(&txn, row.id).await?;
                    txn.commit().await?;
                    return Ok(row);
                }
            }
            FriendshipStatus::Cancelled => {
                // A withdrawn request: this is a new one, from us.
                let won = friendship::Entity::update_many()
                    .col_expr(friendship::Column::RequesterId, Expr::value(me))
                    .col_expr(
                        friendship::Column::Status,
                        Expr::value(FriendshipStatus::Pending),
                    )
                    .col_expr(friendship::Column::CreatedAt, Expr::value(now))
                    .col_expr(
                        friendship::Column::RespondedAt,
                        Expr::value(Option::<DateTime<Utc>>::None),
                    )
                    .filter(friendship::Column::Id.eq(row.id))
                    .filter(friendship::Column::Status.eq(FriendshipStatus::Cancelled))
                    .exec(&txn)
                    .await?;
                if won.rows_affected == 1 {
                    let row = reload(&txn, row.id).await?;
                    record_request(&txn, &row).await?;
                    txn.commit().await?;
                    return Ok(row);
                }
            }
        }
        txn.rollback().await?;
    }
    Err(ApiError::Conflict(
        "the friendship changed while you asked; try again",
    ))
}

/// Who may answer a request in a given way.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Party {
    Addressee,
    Requester,
}

/// Moves a pending request to `to`, if the viewer is the party allowed to.
async fn answer(
    db: &DatabaseConnection,
    viewer: Viewer,
    request_id: Uuid,
    to: FriendshipStatus,
    party: Party,
) -> ApiResult<friendship::Model> {
    let me = guests::account_id(db, viewer).await?;
    let (requester_filter, from) = match party {
        Party::Addressee => (
            friendship::Column::RequesterId.ne(me),
            vec![FriendshipStatus::Pending],
        ),
        // To its sender a declined request is still pending, so it can be withdrawn.
        Party::Requester => (
            friendship::Column::RequesterId.eq(me),
            vec![FriendshipStatus::Pending, FriendshipStatus::Declined],
        ),
    };
    let won = friendship::Entity::update_many()
        .col_expr(friendship::Column::Status, Expr::value(to))
        .col_expr(friendship::Column::RespondedAt, Expr::value(clock::now()))
        .filter(friendship::Column::Id.eq(request_id))
        .filter(friendship::Column::Status.is_in(from))
        .filter(involves(me))
        .filter(requester_filter)
        .exec(db)
        .await?;
    let row = friendship::Entity::find_by_id(request_id).one(db).await?;
    let Some(row) = row.filter(|row| row.involves(me)) else {
        return Err(NO_SUCH_REQUEST);
    };
    if won.rows_affected == 1 {
        return Ok(row);
    }
    let is_requester = row.requester_id == me;
    match (party, is_requester) {
        (Party::Addressee, true) => Err(ApiError::Forbidden(
            "only the user who received a request can answer it",
        )),
        (Party::Requester, false) => Err(ApiError::Forbidden(
            "only the user who sent a request can cancel it",
        )),
        _ => Err(ApiError::Conflict(
            "this friend request is no longer pending",
        )),
    }
}

pub async fn accept_request(
    db: &DatabaseConnection,
    viewer: Viewer,
    request_id: Uuid,
) -> ApiResult<friendship::Model> {
    answer(
        db,
        viewer,
        request_id,
        FriendshipStatus::Accepted,
        Party::Addressee,
    )
    .await
}

pub async fn decline_request(
    db: &DatabaseConnection,
    viewer: Viewer,
    request_id: Uuid,
) -> ApiResult<friendship::Model> {
    answer(
        db,
        viewer,
        request_id,
        FriendshipStatus::Declined,
        Party::Addressee,
    )
    .await
}

pub async fn cancel_request(
    db: &DatabaseConnection,
    viewer: Viewer,
    request_id: Uuid,
) -> ApiResult<friendship::Model> {
    answer(
        db,
        viewer,
        request_id,
        FriendshipStatus::Cancelled,
        Party::Requester,
    )
    .await
}

/// Ends a friendship. Returns false when the two were not friends.
pub async fn remove_friend(
    db: &DatabaseConnection,
    viewer: Viewer,
    other: Uuid,
) -> ApiResult<bool> {
    let me = guests::account_id(db, viewer).await?;
    if user::Entity::find_by_id(other).one(db).await?.is_none() {
        return Err(NO_SUCH_USER);
    }
    let result = friendship::Entity::delete_many()
        .filter(pair_filter(me, other))
        .filter(friendship::Column::Status.eq(FriendshipStatus::Accepted))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// A friend request by id, if the viewer is one of its two users.
pub async fn find_request(
    db: &impl ConnectionTrait,
    viewer: Viewer,
    id: Uuid,
) -> ApiResult<Option<friendship::Model>> {
    let me = viewer.user_id()?;
    let row = friendship::Entity::find_by_id(id).one(db).await?;
    Ok(row.filter(|row| row.involves(me)))
}

/// Ids of the viewer's friends among `others`.
pub async fn friends_among(
    db: &impl ConnectionTrait,
    me: Uuid,
    others: &[Uuid],
) -> ApiResult<HashSet<Uuid>> {
    let rows = load_friendships(db, me, others).await?;
    Ok(rows
        .into_iter()
        .filter(|(_, row)| row.status == FriendshipStatus::Accepted)
        .map(|(other, _)| other)
        .collect())
}

/// The viewer's friendship rows with each of `others`, keyed by the other user.
pub async fn load_friendships(
    db: &impl ConnectionTrait,
    me: Uuid,
    others: &[Uuid],
) -> ApiResult<HashMap<Uuid, friendship::Model>> {
    let others = others.iter().copied().filter(|o| *o != me);
    let rows = friendship::Entity::find()
        .filter(
            Condition::any()
                .add(
                    Condition::all()
                        .add(friendship::Column::UserLowId.eq(me))
                        .add(friendship::Column::UserHighId.is_in(others.clone())),
                )
                .add(
                    Condition::all()
                        .add(friendship::Column::UserHighId.eq(me))
                        .add(friendship::Column::UserLowId.is_in(others)),
                ),
        )
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let other = if row.user_low_id == me {
                row.user_high_id
            } else {
                row.user_low_id
            };
            (other, row)
        })
        .collect())
}

/// Position in the friend list, which is ordered by name.
pub type FriendKey = (String, Uuid);

/// The viewer's friends, by name.
pub async fn list_friends(
    db: &impl ConnectionTrait,
    viewer: Viewer,
    page: PageRequest<FriendKey>,
) -> ApiResult<Page<user::Model>> {
    let me = guests::account_id(db, viewer).await?;
    let accepted = friendship::Column::Status.eq(FriendshipStatus::Accepted);
    let as_low = friendship::Entity::find()
        .select_only()
        .column(friendship::Column::UserHighId)
        .filter(friendship::Column::UserLowId.eq(me))
        .filter(accepted.clone())
        .into_query();
    let as_high = friendship::Entity::find()
        .select_only()
        .column(friendship::Column::UserLowId)
        .filter(friendship::Column::UserHighId.eq(me))
        .filter(accepted)
        .into_query();
    let mut query = user::Entity::find().filter(
        Condition::any()
            .add(user::Column::Id.in_subquery(as_low))
            .add(user::Column::Id.in_subquery(as_high)),
    );
    if let Some((name, id)) = &page.after {
        query = query.filter(
            Condition::any()
                .add(user::Column::Name.gt(name.as_str()))
                .add(
                    Condition::all()
                        .add(user::Column::Name.eq(name.as_str()))
                        .add(user::Column::Id.gt(*id)),
                ),
        );
    }
    let rows = query
        .order_by(user::Column::Name, Order::Asc)
        .order_by(user::Column::Id, Order::Asc)
        .limit(page.limit())
        .all(db)
        .await?;
    Ok(Page::from_rows(&page, rows, |u| (u.name.clone(), u.id)))
}

/// Position in a request list, newest first.
pub type RequestKey = (DateTime<Utc>, Uuid);

/// Pending requests the viewer received or sent, newest first (a sender's list keeps the
/// requests that were silently declined).
pub async fn list_requests(
    db: &impl ConnectionTrait,
    viewer: Viewer,
    direction: Direction,
    page: PageRequest<RequestKey>,
) -> ApiResult<Page<friendship::Model>> {
    let me = guests::account_id(db, viewer).await?;
    let mut query = friendship::Entity::find()
        .filter(involves(me))
        .filter(match direction {
            Direction::Incoming => Condition::all()
                .add(friendship::Column::RequesterId.ne(me))
                .add(friendship::Column::Status.eq(FriendshipStatus::Pending)),
            Direction::Outgoing => Condition::all()
                .add(friendship::Column::RequesterId.eq(me))
                .add(
                    friendship::Column::Status
                        .is_in([FriendshipStatus::Pending, FriendshipStatus::Declined]),
                ),
        });
    if let Some((created_at, id)) = page.after {
        query = query.filter(
            Condition::any()
                .add(friendship::Column::CreatedAt.lt(created_at))
                .add(
                    Condition::all()
                        .add(friendship::Column::CreatedAt.eq(created_at))
                        .add(friendship::Column::Id.lt(id)),
                ),
        );
    }
    let rows = query
        .order_by(friendship::Column::CreatedAt, Order::Desc)
        .order_by(friendship::Column::Id, Order::Desc)
        .limit(page.limit())
        .all(db)
        .await?;
    Ok(Page::from_rows(&page, rows, |r| (r.created_at, r.id)))
}
