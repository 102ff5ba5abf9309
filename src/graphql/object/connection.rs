//! Relay connections: arguments, cursors and building a connection from a page.

use async_graphql::{
    ObjectType, OutputType,
    connection::{Connection, Edge},
};

use crate::{
    domain::page::{NewestFirst, Page, PageRequest, Position},
    error::AppResult,
    graphql::id,
};

/// A newest-first page of `first` rows after the cursor `after`.
pub fn newest_first(first: Option<i32>, after: Option<String>) -> AppResult<NewestFirst> {
    let before = after.map(|cursor| id::decode_cursor(&cursor, "after", false)).transpose()?;
    NewestFirst::new(first, before.map(|position| position.id))
}

/// Validates Relay pagination arguments (`first`, `after`, `last`,
/// `before`) of a list ordered by id into a page request.
pub fn page_request(
    first: Option<i32>,
    after: Option<String>,
    last: Option<i32>,
    before: Option<String>,
) -> AppResult<PageRequest> {
    page_request_in(first, after, last, before, false)
}

/// Like [`page_request`], for a list ordered by time (`timed`) or by id.
pub fn page_request_in(
    first: Option<i32>,
    after: Option<String>,
    last: Option<i32>,
    before: Option<String>,
    timed: bool,
) -> AppResult<PageRequest> {
    let decode = |cursor: Option<String>, argument| {
        cursor.map(|c| id::decode_cursor(&c, argument, timed)).transpose()
    };
    PageRequest::new(first, decode(after, "after")?, last, decode(before, "before")?)
}

/// A connection over `page`, each node wrapped by `wrap`.
pub fn connection_from_page<M, N, F>(
    page: Page<M>,
    key: impl Fn(&M) -> Position,
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
