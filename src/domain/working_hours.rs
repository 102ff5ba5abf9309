//! Working hours: when each barber works, per weekday, in shop-local time.

use std::collections::HashMap;

use entity::working_hours;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

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
