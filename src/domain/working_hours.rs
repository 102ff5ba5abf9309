//! Working hours: when each barber works, per weekday, in shop-local time.

use std::collections::HashMap;

use entity::working_hours;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

use super::invalid::Invalid;

/// Each barber's week, ordered by weekday and opening time.
pub async fn by_barbers(
    db: &impl ConnectionTrait,
    barber_ids: &[i64],
) -> Result<HashMap<i64, Vec<working_hours::Model>>, DbErr> {
    let rows = working_hours::Entity::find()
        .filter(working_hours::Column::BarberId.is_in(barber_ids.iter().copied()))
        .order_by_asc(working_hours::Column::Weekday)
        .order_by_asc(working_hours::Column::OpensMinute)
        .all(db)
        .await?;
    Ok(super::group_by(rows, |w| w.barber_id))
}

/// `"HH:MM"` of a minute of the day.
pub fn format_minute(minute: i32) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// One valid working interval: weekday 1–7, opening before closing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    pub weekday: i16,
    pub opens_minute: i32,
    pub closes_minute: i32,
}

/// Minutes after midnight of `"HH:MM"` (`"24:00"` is the end of the day).
pub fn parse_minute(raw: &str) -> Result<i32, Invalid> {
    let invalid = || Invalid(format!("{raw:?} must be a time like \"09:30\""));
    let (hours, minutes) = raw.trim().split_once(':').ok_or_else(invalid)?;
    if hours.len() != 2 || minutes.len() != 2 {
        return Err(invalid());
    }
    let hours: i32 = hours.parse().map_err(|_| invalid())?;
    let minutes: i32 = minutes.parse().map_err(|_| invalid())?;
    let total = hours * 60 + minutes;
    if !(0..60).contains(&minutes) || !(0..=24 * 60).contains(&total) {
        return Err(invalid());
    }
    Ok(total)
}

/// A weekday as working hours store it: 1 (Monday) to 7 (Sunday).
pub fn parse_weekday(raw: i32) -> Result<i16, Invalid> {
    i16::try_from(raw)
        .ok()
        .filter(|d| (1..=7).contains(d))
        .ok_or_else(|| Invalid::new("must be 1 (Monday) to 7 (Sunday)"))
}

/// One interval, open before it closes.
pub fn interval(weekday: i16, opens_minute: i32, closes_minute: i32) -> Option<Interval> {
    (opens_minute < closes_minute).then_some(Interval { weekday, opens_minute, closes_minute })
}

/// A week of valid intervals, none overlapping another of its day.
pub fn week(intervals: Vec<Interval>) -> Result<Vec<Interval>, Invalid> {
    let mut sorted = intervals.clone();
    sorted.sort_by_key(|i| (i.weekday, i.opens_minute));
    if let Some(pair) = sorted.windows(2).find(|pair| {
        pair[0].weekday == pair[1].weekday && pair[1].opens_minute < pair[0].closes_minute
    }) {
        return Err(Invalid(format!(
            "overlap on weekday {}: {}–{} and {}–{}",
            pair[0].weekday,
            format_minute(pair[0].opens_minute),
            format_minute(pair[0].closes_minute),
            format_minute(pair[1].opens_minute),
            format_minute(pair[1].closes_minute)
        )));
    }
    Ok(intervals)
}
