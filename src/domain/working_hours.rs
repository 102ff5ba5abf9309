//! Working hours: when each barber works, per weekday, in shop-local time.

use std::collections::HashMap;

use entity::working_hours;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

use crate::error::{AppError, AppResult};

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
pub fn parse_minute(raw: &str, field: &str) -> AppResult<i32> {
    let invalid =
        || AppError::bad_input(format!("`{field}` {raw:?} must be a time like \"09:30\""));
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

/// A week of intervals, each valid and none overlapping another of its day.
pub fn parse_week(raw: &[(i32, String, String)]) -> AppResult<Vec<Interval>> {
    let mut week = Vec::with_capacity(raw.len());
    for (index, (weekday, opens, closes)) in raw.iter().enumerate() {
        let field = |name: &str| format!("hours[{index}].{name}");
        let weekday =
            i16::try_from(*weekday).ok().filter(|d| (1..=7).contains(d)).ok_or_else(|| {
                AppError::bad_input(format!(
                    "`{}` must be 1 (Monday) to 7 (Sunday)",
                    field("weekday")
                ))
            })?;
        let opens_minute = parse_minute(opens, &field("opensAt"))?;
        let closes_minute = parse_minute(closes, &field("closesAt"))?;
        if opens_minute >= closes_minute {
            return Err(AppError::bad_input(format!(
                "`{}` must be before `{}`",
                field("opensAt"),
                field("closesAt")
            )));
        }
        week.push(Interval { weekday, opens_minute, closes_minute });
    }
    let mut sorted = week.clone();
    sorted.sort_by_key(|i| (i.weekday, i.opens_minute));
    if let Some(pair) = sorted.windows(2).find(|pair| {
        pair[0].weekday == pair[1].weekday && pair[1].opens_minute < pair[0].closes_minute
    }) {
        return Err(AppError::bad_input(format!(
            "`hours` overlap on weekday {}: {}–{} and {}–{}",
            pair[0].weekday,
            format_minute(pair[0].opens_minute),
            format_minute(pair[0].closes_minute),
            format_minute(pair[1].opens_minute),
            format_minute(pair[1].closes_minute)
        )));
    }
    Ok(week)
}
