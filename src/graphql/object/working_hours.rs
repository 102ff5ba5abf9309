//! `WorkingHours`: one working interval on one weekday.

use async_graphql::Object;
use entity::working_hours;

use crate::domain::working_hours::format_minute;

/// One interval a barber works on a weekday, in the shop's local time.
pub struct WorkingHours(pub working_hours::Model);

#[Object]
impl WorkingHours {
    /// ISO weekday: 1 = Monday … 7 = Sunday.
    async fn weekday(&self) -> i16 {
        self.0.weekday
    }

    /// Local opening time, `"HH:MM"`.
    async fn opens_at(&self) -> String {
        format_minute(self.0.opens_minute)
    }

    /// Local closing time, `"HH:MM"`.
    async fn closes_at(&self) -> String {
        format_minute(self.0.closes_minute)
    }
}
