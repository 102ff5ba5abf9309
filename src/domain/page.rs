//! Keyset pagination: pages of rows in a stable order, robust to inserts.
//!
//! Rows are ordered by id, or by a timestamp and then id. A page request is
//! validated once (size bounds, direction) and then applied either to one
//! query or, for a page per parent, to one windowed query over all parents
//! (`ROW_NUMBER() OVER (PARTITION BY parent …)`), so a page of children for N
//! parents is a single statement.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, QuerySelect, Select,
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

/// A row's place in a list: its sort time (for lists ordered by time) and id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Position {
    pub time: Option<DateTime<Utc>>,
    pub id: i64,
}

impl Position {
    pub fn id(id: i64) -> Self {
        Self { time: None, id }
    }

    pub fn timed(time: DateTime<Utc>, id: i64) -> Self {
        Self { time: Some(time), id }
    }
}

/// How a list is ordered: by `id`, or by `time` and then `id`.
#[derive(Clone, Copy, Debug)]
pub struct Keyset<C> {
    pub time: Option<C>,
    pub id: C,
}

impl<C: ColumnTrait> Keyset<C> {
    pub fn by_id(id: C) -> Self {
        Self { time: None, id }
    }

    pub fn by_time(time: C, id: C) -> Self {
        Self { time: Some(time), id }
    }

    /// Rows strictly after (`after = true`) or before `position`.
    fn beyond(&self, position: &Position, after: bool) -> Condition {
        let id = if after { self.id.gt(position.id) } else { self.id.lt(position.id) };
        match (self.time, position.time) {
            (Some(column), Some(time)) => {
                let past = if after { column.gt(time) } else { column.lt(time) };
                Condition::any().add(past).add(Condition::all().add(column.eq(time)).add(id))
            }
            _ => Condition::all().add(id),
        }
    }

    fn columns(&self) -> impl Iterator<Item = C> {
        self.time.into_iter().chain(std::iter::once(self.id))
    }
}

/// A valid request for one page of rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PageRequest {
    pub direction: Direction,
    pub limit: u64,
    /// Only rows after this position.
    pub after: Option<Position>,
    /// Only rows before this position.
    pub before: Option<Position>,
}

impl PageRequest {
    /// Validates Relay arguments whose cursors are already decoded.
    pub fn new(
        first: Option<i32>,
        after: Option<Position>,
        last: Option<i32>,
        before: Option<Position>,
    ) -> AppResult<Self> {
        let size = |name: &str, value: i32| -> AppResult<u64> {
            u64::try_from(value).ok().filter(|n| *n <= MAX_PAGE_SIZE).ok_or_else(|| {
                AppError::bad_input(format!(
                    "`{name}` must be between 0 and {MAX_PAGE_SIZE}, got {value}; \
                         ask for the next page with `after: pageInfo.endCursor`"
                ))
            })
        };
        let (direction, limit) = match (first, last) {
            (Some(_), Some(_)) => {
                return Err(AppError::bad_input("pass either `first` or `last`, not both"));
            }
            (Some(first), None) => (Direction::Forward, size("first", first)?),
            (None, Some(last)) => (Direction::Backward, size("last", last)?),
            (None, None) if before.is_some() => (Direction::Backward, DEFAULT_PAGE_SIZE),
            (None, None) => (Direction::Forward, DEFAULT_PAGE_SIZE),
        };
        Ok(Self { direction, limit, after, before })
    }

    fn order(&self) -> Order {
        match self.direction {
            Direction::Forward => Order::Asc,
            Direction::Backward => Order::Desc,
        }
    }

    /// The conditions of this page's bounds.
    fn bounds<C: ColumnTrait>(&self, keyset: &Keyset<C>) -> Condition {
        let mut condition = Condition::all();
        if let Some(after) = &self.after {
            condition = condition.add(keyset.beyond(after, true));
        }
        if let Some(before) = &self.before {
            condition = condition.add(keyset.beyond(before, false));
        }
        condition
    }

    /// Restricts a query to this page (one row more than asked, to learn
    /// whether another page follows).
    pub fn apply<E: EntityTrait>(&self, select: Select<E>, keyset: Keyset<E::Column>) -> Select<E> {
        let mut select = select.filter(self.bounds(&keyset));
        for column in keyset.columns() {
            select = select.order_by(column, self.order());
        }
        select.limit(self.limit + 1)
    }

    /// One statement that selects this page for each of `parents`.
    fn windowed<E: EntityTrait>(
        &self,
        parent: E::Column,
        keyset: &Keyset<E::Column>,
        filter: Condition,
        parents: &[i64],
    ) -> SelectStatement {
        let mut window = WindowStatement::partition_by(parent);
        for column in keyset.columns() {
            window.order_by(column, self.order());
        }
        let rank = Alias::new("page_rank");
        let mut inner = Query::select();
        inner
            .column((E::default(), Asterisk))
            .expr_window_as(Expr::cust("ROW_NUMBER()"), window, rank.clone())
            .from(E::default())
            .cond_where(
                Condition::all()
                    .add(parent.is_in(parents.iter().copied()))
                    .add(filter)
                    .add(self.bounds(keyset)),
            );
        let table = Alias::new("page_window");
        Query::select()
            .column(Asterisk)
            .from_subquery(inner, table.clone())
            .and_where(Expr::col((table.clone(), rank.clone())).lte(self.limit + 1))
            .order_by((table, rank), Order::Asc)
            .to_owned()
    }

    /// Loads this page of `E` for every parent in one statement. One parent
    /// (a barber's or a shop's own page, the usual case) reads its page
    /// straight off the index, where the window would rank all its rows.
    pub async fn load_per_parent<E>(
        &self,
        db: &impl ConnectionTrait,
        parent: E::Column,
        keyset: Keyset<E::Column>,
        filter: Condition,
        parents: &[i64],
        parent_of: impl Fn(&E::Model) -> i64,
    ) -> Result<HashMap<i64, Page<E::Model>>, DbErr>
    where
        E: EntityTrait,
        E::Model: FromQueryResult,
    {
        let rows = match parents {
            [only] => {
                self.apply(E::find().filter(parent.eq(*only)).filter(filter), keyset)
                    .all(db)
                    .await?
            }
            _ => {
                let statement = self.windowed::<E>(parent, &keyset, filter, parents);
                let stmt = db.get_database_backend().build(&statement);
                E::Model::find_by_statement(stmt).all(db).await?
            }
        };
        let mut groups = super::group_by(rows, parent_of);
        Ok(parents
            .iter()
            .map(|key| (*key, Page::from_rows(groups.remove(key).unwrap_or_default(), self)))
            .collect())
    }
}

/// One page of rows, in ascending order.
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

    /// An empty page, as a parent without children gets.
    pub fn empty(request: &PageRequest) -> Self {
        Self::from_rows(Vec::new(), request)
    }
}

/// A page of a list read newest first by id (an audit log, a webhook's
/// deliveries): `size` rows older than row `before`.
#[derive(Clone, Copy, Debug)]
pub struct NewestFirst {
    pub size: u64,
    /// The previous page's last row.
    pub before: Option<i64>,
}

impl NewestFirst {
    /// `first` rows (default [`DEFAULT_PAGE_SIZE`], 1 to [`MAX_PAGE_SIZE`])
    /// older than row `before`.
    pub fn new(first: Option<i32>, before: Option<i64>) -> AppResult<Self> {
        let size = first.map_or(DEFAULT_PAGE_SIZE, |first| u64::try_from(first).unwrap_or(0));
        if size == 0 || size > MAX_PAGE_SIZE {
            return Err(AppError::bad_input(format!(
                "`first` must be between 1 and {MAX_PAGE_SIZE}"
            )));
        }
        Ok(Self { size, before })
    }

    /// `select` newest first from the page's start, one row more than the
    /// page, to tell whether there are more.
    pub fn apply<E: EntityTrait>(&self, select: Select<E>, id: E::Column) -> Select<E> {
        let select = select.order_by_desc(id).limit(self.size + 1);
        match self.before {
            Some(before) => select.filter(id.lt(before)),
            None => select,
        }
    }

    /// The page's rows of what [`apply`](Self::apply) read, and whether
    /// there are more.
    pub fn split<T>(&self, mut rows: Vec<T>) -> (Vec<T>, bool) {
        let more = rows.len() as u64 > self.size;
        rows.truncate(usize::try_from(self.size).unwrap_or(usize::MAX));
        (rows, more)
    }
}
