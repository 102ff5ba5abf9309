//! Keyset pagination: pages of rows ordered by id, stable under inserts.
//!
//! A page request is validated once (size bounds, direction) and then applied
//! either to one query or, for a page per parent, to one windowed query over
//! all parents (`ROW_NUMBER() OVER (PARTITION BY parent)`), so a page of
//! children for N parents is a single statement.

use std::collections::HashMap;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, FromQueryResult, QueryFilter, QueryOrder,
    QuerySelect, Select,
    sea_query::{Alias, Asterisk, Expr, ExprTrait, Order, Query, SelectStatement, WindowStatement},
};

use crate::error::{AppError, AppResult};

/// Largest page a client may ask for.
pub const MAX_PAGE_SIZE: u64 = 100;
/// Page size when the client names none.
pub const DEFAULT_PAGE_SIZE: u64 = 20;

/// Which end of the ordering a page is taken from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `first` items, after `after`.
    Forward,
    /// `last` items, before `before`.
    Backward,
}

/// A valid request for one page of rows ordered by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PageRequest {
    pub direction: Direction,
    pub limit: u64,
    /// Only rows with an id greater than this.
    pub after: Option<i64>,
    /// Only rows with an id less than this.
    pub before: Option<i64>,
}

impl PageRequest {
    /// Validates Relay arguments whose cursors are already decoded.
    pub fn new(
        first: Option<i32>,
        after: Option<i64>,
        last: Option<i32>,
        before: Option<i64>,
    ) -> AppResult<Self> {
        let size = |name: &str, value: i32| -> AppResult<u64> {
            u64::try_from(value)
                .ok()
                .filter(|n| *n <= MAX_PAGE_SIZE)
                .ok_or_else(|| {
                    AppError::bad_input(format!(
                        "`{name}` must be between 0 and {MAX_PAGE_SIZE}, got {value}; \
                         ask for the next page with `after: pageInfo.endCursor`"
                    ))
                })
        };
        let (direction, limit) = match (first, last) {
            (Some(_), Some(_)) => {
                return Err(AppError::bad_input(
                    "pass either `first` or `last`, not both",
                ));
            }
            (Some(first), None) => (Direction::Forward, size("first", first)?),
            (None, Some(last)) => (Direction::Backward, size("last", last)?),
            (None, None) if before.is_some() => (Direction::Backward, DEFAULT_PAGE_SIZE),
            (None, None) => (Direction::Forward, DEFAULT_PAGE_SIZE),
        };
        Ok(Self {
            direction,
            limit,
            after,
            before,
        })
    }

    fn order(&self) -> Order {
        match self.direction {
            Direction::Forward => Order::Asc,
            Direction::Backward => Order::Desc,
        }
    }

    /// Restricts a query to this page (one row more than asked, to learn
    /// whether another page follows).
    pub fn apply<E, C>(&self, select: Select<E>, id: C) -> Select<E>
    where
        E: EntityTrait,
        C: ColumnTrait,
    {
        let mut select = select;
        if let Some(after) = self.after {
            select = select.filter(id.gt(after));
        }
        if let Some(before) = self.before {
            select = select.filter(id.lt(before));
        }
        select.order_by(id, self.order()).limit(self.limit + 1)
    }

    /// One statement that selects this page for each of `parents`.
    fn windowed<E, P, C>(&self, parent: P, id: C, parents: &[i64]) -> SelectStatement
    where
        E: EntityTrait,
        P: ColumnTrait,
        C: ColumnTrait,
    {
        let mut inner = Query::select();
        inner
            .column((E::default(), Asterisk))
            .expr_window_as(
                Expr::cust("ROW_NUMBER()"),
                WindowStatement::partition_by(parent)
                    .order_by(id, self.order())
                    .to_owned(),
                Alias::new("page_rn"),
            )
            .from(E::default())
            .and_where(parent.is_in(parents.iter().copied()));
        if let Some(after) = self.after {
            inner.and_where(id.gt(after));
        }
        if let Some(before) = self.before {
            inner.and_where(id.lt(before));
        }
        let window = Alias::new("page_window");
        Query::select()
            .column(Asterisk)
            .from_subquery(inner, window.clone())
            .and_where(Expr::col((window.clone(), Alias::new("page_rn"))).lte(self.limit + 1))
            .order_by((window.clone(), Alias::new("page_rn")), Order::Asc)
            .to_owned()
    }

    /// Loads this page of `E` for every parent in one statement.
    pub async fn load_per_parent<E, P, C>(
        &self,
        db: &impl ConnectionTrait,
        parent: P,
        id: C,
        parents: &[i64],
        parent_of: impl Fn(&E::Model) -> i64,
    ) -> Result<HashMap<i64, Page<E::Model>>, DbErr>
    where
        E: EntityTrait,
        E::Model: FromQueryResult,
        P: ColumnTrait,
        C: ColumnTrait,
    {
        let stmt = db
            .get_database_backend()
            .build(&self.windowed::<E, P, C>(parent, id, parents));
        let rows = E::Model::find_by_statement(stmt).all(db).await?;
        let mut groups = super::group_by(rows, parent_of);
        Ok(parents
            .iter()
            .map(|key| {
                (
                    *key,
                    Page::from_rows(groups.remove(key).unwrap_or_default(), self),
                )
            })
            .collect())
    }
}

/// One page of rows, in ascending id order.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub has_previous_page: bool,
    pub has_next_page: bool,
}

impl<T> Page<T> {
    /// Builds the page from rows fetched with [`PageRequest::apply`] (in the
    /// request's order, at most one more than the limit).
    pub fn from_rows(mut rows: Vec<T>, request: &PageRequest) -> Self {
        let limit = usize::try_from(request.limit).unwrap_or(usize::MAX);
        let more = rows.len() > limit;
        rows.truncate(limit);
        match request.direction {
            Direction::Forward => Self {
                items: rows,
                has_previous_page: request.after.is_some(),
                has_next_page: more,
            },
            Direction::Backward => {
                rows.reverse();
                Self {
                    items: rows,
                    has_previous_page: more,
                    has_next_page: request.before.is_some(),
                }
            }
        }
    }
}
