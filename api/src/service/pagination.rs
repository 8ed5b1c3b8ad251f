//! Keyset pagination for Relay connections: `first` is bounded, cursors are opaque (base64 of
//! a small JSON key) and stable while rows are added, unlike offsets.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Datelike, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;

use entity::user;
use sea_orm::sea_query::{Alias, Asterisk, Expr, ExprTrait, Query, SelectStatement, TableRef};
use sea_orm::{
    ConnectionTrait, EntityTrait, FromQueryResult, IdenStatic, Iterable, Order, QuerySelect,
    QueryTrait, Select,
};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

pub const DEFAULT_PAGE_SIZE: u64 = 20;
pub const MAX_PAGE_SIZE: u64 = 100;

/// A position in a list, as carried inside a cursor. Cursors come back from clients, so a
/// decoded key is checked like any other input before it reaches a query: text with a NUL
/// or a timestamp outside the database's range would otherwise fail there as an internal
/// error.
pub trait CursorKey: Serialize + DeserializeOwned {
    fn is_plausible(&self) -> bool;
}

impl CursorKey for Uuid {
    fn is_plausible(&self) -> bool {
        true
    }
}

/// An event id: a position in the event log.
impl CursorKey for i64 {
    fn is_plausible(&self) -> bool {
        *self >= 0
    }
}

impl CursorKey for (DateTime<Utc>, Uuid) {
    fn is_plausible(&self) -> bool {
        (2000..=2200).contains(&self.0.year())
    }
}

impl CursorKey for (String, Uuid) {
    fn is_plausible(&self) -> bool {
        self.0.len() <= 1024 && !self.0.chars().any(char::is_control)
    }
}

/// A validated request for one page, after the position `after`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageRequest<K> {
    pub first: u64,
    pub after: Option<K>,
}

impl<K: CursorKey> PageRequest<K> {
    pub fn parse(first: Option<i32>, after: Option<&str>) -> ApiResult<Self> {
        let first = match first {
            None => DEFAULT_PAGE_SIZE,
            Some(n) if n < 0 => {
                return Err(ApiError::bad_input("first", "first must not be negative"));
            }
            Some(n) if n as u64 > MAX_PAGE_SIZE => {
                return Err(ApiError::bad_input(
                    "first",
                    format!("first must be at most {MAX_PAGE_SIZE}"),
                ));
            }
            Some(n) => n as u64,
        };
        let after = after.map(decode_cursor).transpose()?;
        Ok(Self { first, after })
    }
}

impl<K> PageRequest<K> {
    /// Rows to fetch: one more than asked, to learn whether a next page exists.
    pub fn limit(&self) -> u64 {
        self.first + 1
    }
}

/// One page of results, each with its cursor.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<(String, T)>,
    pub has_next_page: bool,
    pub has_previous_page: bool,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit()` rows fetched in order.
    pub fn from_rows<K: Serialize, R>(
        request: &PageRequest<R>,
        mut rows: Vec<T>,
        key: impl Fn(&T) -> K,
    ) -> Self {
        let has_next_page = rows.len() as u64 > request.first;
        rows.truncate(request.first as usize);
        Self {
            items: rows
                .into_iter()
                .map(|row| (encode_cursor(&key(&row)), row))
                .collect(),
            has_next_page,
            has_previous_page: request.after.is_some(),
        }
    }

    /// A page with nothing on it.
    pub fn empty() -> Self {
        Self {
            items: Vec::new(),
            has_next_page: false,
            has_previous_page: false,
        }
    }

    pub fn map<U>(self, f: impl Fn(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(|(c, t)| (c, f(t))).collect(),
            has_next_page: self.has_next_page,
            has_previous_page: self.has_previous_page,
        }
    }

    /// Like [`Page::map`], dropping the items `f` has nothing for (rows gone since the page
    /// was read); the cursors of the rest stay as they were.
    pub fn filter_map<U>(self, f: impl Fn(T) -> Option<U>) -> Page<U> {
        Page {
            items: self
                .items
                .into_iter()
                .filter_map(|(c, t)| f(t).map(|u| (c, u)))
                .collect(),
            has_next_page: self.has_next_page,
            has_previous_page: self.has_previous_page,
        }
    }
}

/// One page per session from a single statement: `select` holds the rows of several sessions
/// (already filtered past the page's cursor); a window function numbers each session's rows
/// in `order` (trusted SQL such as `"joined_at, user_id"`, never client input), and only the
/// first `page.limit()` of each come back. This is what lets a list of sessions show each
/// one's members or photos without a query per session.
pub async fn pages_per_session<E, K, R>(
    db: &impl ConnectionTrait,
    select: Select<E>,
    order: &'static str,
    session_ids: &[Uuid],
    page: &PageRequest<R>,
    session_of: impl Fn(&E::Model) -> Uuid,
    key: impl Fn(&E::Model) -> K,
) -> ApiResult<HashMap<Uuid, Page<E::Model>>>
where
    E: EntityTrait,
    K: Serialize,
{
    let query = ranked(select, order, page);
    let statement = db.get_database_backend().build(&query);
    let rows = E::find().from_raw_sql(statement).all(db).await?;
    Ok(file_pages(rows, session_ids, page, session_of, key))
}

/// [`pages_per_session`], with the user each row names in `user_column` (a member, an
/// uploader) read in the same statement, so that a list and the people in it cost one round
/// trip rather than two.
#[allow(clippy::too_many_arguments)]
pub async fn pages_per_session_with_users<E, K, R>(
    db: &impl ConnectionTrait,
    select: Select<E>,
    order: &'static str,
    user_column: &'static str,
    session_ids: &[Uuid],
    page: &PageRequest<R>,
    session_of: impl Fn(&E::Model) -> Uuid,
    key: impl Fn(&E::Model) -> K,
) -> ApiResult<(HashMap<Uuid, Page<E::Model>>, Vec<user::Model>)>
where
    E: EntityTrait,
    K: Serialize,
{
    let mut query = ranked(select, order, page);
    let users = Alias::new("u");
    for column in user::Column::iter() {
        let name = column.as_str();
        query.expr_as(
            Expr::col((users.clone(), Alias::new(name))),
            Alias::new(format!("{USER_PREFIX}{name}")),
        );
    }
    query.left_join(
        TableRef::Table(user::Entity.into(), Some(users.clone().into())),
        Expr::col((users.clone(), user::Column::Id))
            .equals((Alias::new("ranked"), Alias::new(user_column))),
    );
    let statement = db.get_database_backend().build(&query);
    let results = db.query_all_raw(statement).await?;
    let mut rows = Vec::with_capacity(results.len());
    let mut people: HashMap<Uuid, user::Model> = HashMap::new();
    for result in &results {
        rows.push(E::Model::from_query_result(result, "")?);
        if let Some(person) = user::Model::from_query_result_optional(result, USER_PREFIX)? {
            people.entry(person.id).or_insert(person);
        }
    }
    Ok((
        file_pages(rows, session_ids, page, session_of, key),
        people.into_values().collect(),
    ))
}

/// The prefix of the user's columns in [`pages_per_session_with_users`]' rows.
const USER_PREFIX: &str = "u_";

/// Each session's first `page.limit()` rows of `select` in `order`, numbered `rn`.
fn ranked<E: EntityTrait, R>(
    select: Select<E>,
    order: &'static str,
    page: &PageRequest<R>,
) -> SelectStatement {
    let window = format!("ROW_NUMBER() OVER (PARTITION BY session_id ORDER BY {order})");
    let inner = select.column_as(Expr::cust(window), "rn").into_query();
    Query::select()
        .column((Alias::new("ranked"), Asterisk))
        .from_subquery(inner, Alias::new("ranked"))
        .and_where(Expr::col((Alias::new("ranked"), Alias::new("rn"))).lte(page.limit() as i64))
        .order_by((Alias::new("ranked"), Alias::new("session_id")), Order::Asc)
        .order_by((Alias::new("ranked"), Alias::new("rn")), Order::Asc)
        .to_owned()
}

/// Files rows (ordered by session, then rank) under their sessions, as pages.
fn file_pages<M, K, R>(
    rows: Vec<M>,
    session_ids: &[Uuid],
    page: &PageRequest<R>,
    session_of: impl Fn(&M) -> Uuid,
    key: impl Fn(&M) -> K,
) -> HashMap<Uuid, Page<M>>
where
    K: Serialize,
{
    let mut by_session: HashMap<Uuid, Vec<M>> = HashMap::new();
    for row in rows {
        by_session.entry(session_of(&row)).or_default().push(row);
    }
    session_ids
        .iter()
        .map(|id| {
            let rows = by_session.remove(id).unwrap_or_default();
            (*id, Page::from_rows(page, rows, &key))
        })
        .collect()
}

pub fn encode_cursor<K: Serialize>(key: &K) -> String {
    // Serializing plain keys (ids, timestamps, strings) cannot fail.
    let json = serde_json::to_vec(key).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

pub fn decode_cursor<K: CursorKey>(cursor: &str) -> ApiResult<K> {
    let invalid = || ApiError::bad_input("after", "invalid cursor");
    let json = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let key: K = serde_json::from_slice(&json).map_err(|_| invalid())?;
    key.is_plausible().then_some(key).ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    impl CursorKey for u32 {
        fn is_plausible(&self) -> bool {
            true
        }
    }

    impl CursorKey for (u32, String) {
        fn is_plausible(&self) -> bool {
            true
        }
    }

    #[test]
    fn implausible_keys_are_refused() {
        let nul = encode_cursor(&("a\u{0}".to_owned(), Uuid::nil()));
        assert!(PageRequest::<(String, Uuid)>::parse(None, Some(&nul)).is_err());
        let year_1900: DateTime<Utc> = "1900-01-01T00:00:00Z".parse().unwrap();
        let ancient = encode_cursor(&(year_1900, Uuid::nil()));
        assert!(PageRequest::<(DateTime<Utc>, Uuid)>::parse(None, Some(&ancient)).is_err());
        let fine = encode_cursor(&(Utc::now(), Uuid::nil()));
        assert!(PageRequest::<(DateTime<Utc>, Uuid)>::parse(None, Some(&fine)).is_ok());
    }

    #[test]
    fn first_is_bounded() {
        assert_eq!(
            PageRequest::<u32>::parse(None, None).map(|p| p.first).ok(),
            Some(20)
        );
        assert!(PageRequest::<u32>::parse(Some(-1), None).is_err());
        assert!(PageRequest::<u32>::parse(Some(101), None).is_err());
        assert_eq!(
            PageRequest::<u32>::parse(Some(0), None)
                .map(|p| p.first)
                .ok(),
            Some(0)
        );
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let cursor = encode_cursor(&(7u32, "x"));
        let page = PageRequest::<(u32, String)>::parse(Some(5), Some(&cursor)).ok();
        assert_eq!(page.and_then(|p| p.after), Some((7, "x".to_owned())));
        assert!(PageRequest::<(u32, String)>::parse(None, Some("!!!")).is_err());
        assert!(PageRequest::<(u32, String)>::parse(None, Some("e30")).is_err());
    }

    #[test]
    fn an_extra_row_means_another_page() {
        let request = PageRequest::<u32> {
            first: 2,
            after: None,
        };
        let page = Page::from_rows(&request, vec![1u32, 2, 3], |n| *n);
        assert!(page.has_next_page);
        assert_eq!(page.items.len(), 2);
        let page = Page::from_rows(&request, vec![1u32, 2], |n| *n);
        assert!(!page.has_next_page);
    }
}
