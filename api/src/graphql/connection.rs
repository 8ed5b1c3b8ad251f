//! Relay connections from service pages.

use async_graphql::OutputType;
use async_graphql::connection::{Connection, Edge};

use crate::service::pagination::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page};

pub type Conn<T> = Connection<String, T>;

pub fn from_page<T: OutputType, U>(page: Page<U>, node: impl Fn(U) -> T) -> Conn<T> {
    let mut connection = Connection::new(page.has_previous_page, page.has_next_page);
    connection.edges.extend(
        page.items
            .into_iter()
            .map(|(cursor, item)| Edge::new(cursor, node(item))),
    );
    connection
}

/// Complexity of a connection field: its page size times what each node selects, so that
/// nesting lists multiplies as it does in the database. An out-of-range `first` counts as
/// the nearest legal size, so the resolver can refuse it with a precise BAD_USER_INPUT.
pub fn complexity(first: Option<i32>, child_complexity: usize) -> usize {
    let first = first.map_or(DEFAULT_PAGE_SIZE, |n| (n.max(1) as u64).min(MAX_PAGE_SIZE)) as usize;
    first.saturating_mul(child_complexity).saturating_add(1)
}
