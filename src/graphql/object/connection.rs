//! Relay connections: arguments, cursors and building a connection from a page.

use async_graphql::{
    ObjectType, OutputType,
    connection::{Connection, Edge},
};

use crate::{
    domain::page::{Page, PageRequest},
    error::AppResult,
    graphql::id,
};

/// Validates Relay pagination arguments (`first`, `after`, `last`,
/// `before`) into a page request.
pub fn page_request(
    first: Option<i32>,
    after: Option<String>,
    last: Option<i32>,
    before: Option<String>,
) -> AppResult<PageRequest> {
    let after = after.map(|c| id::decode_cursor(&c, "after")).transpose()?;
    let before = before
        .map(|c| id::decode_cursor(&c, "before"))
        .transpose()?;
    PageRequest::new(first, after, last, before)
}

/// A connection over `page`, each node wrapped by `wrap`.
pub fn connection_from_page<M, N, F>(
    page: Page<M>,
    key: impl Fn(&M) -> i64,
    wrap: impl Fn(M) -> N,
    fields: F,
) -> Connection<String, N, F>
where
    N: OutputType,
    F: ObjectType,
{
    let mut connection =
        Connection::with_additional_fields(page.has_previous_page, page.has_next_page, fields);
    connection.edges = page
        .items
        .into_iter()
        .map(|model| Edge::new(id::encode_cursor(key(&model)), wrap(model)))
        .collect();
    connection
}
