//! Domain logic: what BookedBarber knows and decides, independent of GraphQL.
//!
//! Functions here take a database connection and plain values and return
//! entity models or domain values. The GraphQL layer calls them; they never
//! call back into it.

pub mod account;
pub mod analytics;
pub mod availability;
pub mod barber;
pub mod booking;
pub mod change;
pub mod dashboard;
pub mod event_log;
pub mod invalid;
pub mod lifecycle;
pub mod local_time;
pub mod page;
pub mod service;
pub mod session;
pub mod shop;
pub mod text;
pub mod webhook;
pub mod working_hours;

use std::collections::HashMap;

/// Groups `rows` by `key`, keeping the rows' order within each group.
pub(crate) fn group_by<K, V>(rows: Vec<V>, key: impl Fn(&V) -> K) -> HashMap<K, Vec<V>>
where
    K: std::hash::Hash + Eq,
{
    let mut groups: HashMap<K, Vec<V>> = HashMap::new();
    for row in rows {
        groups.entry(key(&row)).or_default().push(row);
    }
    groups
}

/// Indexes `rows` by `key`.
pub(crate) fn index_by<K, V>(rows: Vec<V>, key: impl Fn(&V) -> K) -> HashMap<K, V>
where
    K: std::hash::Hash + Eq,
{
    rows.into_iter().map(|row| (key(&row), row)).collect()
}
