//! Availability: which start times a barber can take for a service, and
//! whether one given start time can be booked.
//!
//! Working hours are read in the shop's time zone on the shop-local date;
//! every instant is compared in UTC, so a day with a daylight-saving change
//! has the hours it really has.

use chrono::{DateTime, Duration, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;
use entity::{BookingStatus, barber, booking, service, shop, time_off, working_hours};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, FromQueryResult, QueryFilter, Statement,
    Value,
    sea_query::{Expr, Query, UnionType},
};

use super::local_time::{self, boundary, day_bounds};
use crate::{
    db::prefixed,
    error::{AppError, AppResult},
};

/// A shop's booking policy, in the shop's time zone.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    pub tz: Tz,
    /// Start times are multiples of this many minutes after local midnight.
    pub step_minutes: i32,
    pub min_notice: Duration,
    pub max_advance: Duration,
    /// Kept free after every appointment.
    pub buffer: Duration,
}

impl Rules {
    /// The policy of `shop`; an unknown stored zone reads as UTC.
    pub fn of(shop: &shop::Model) -> Self {
        Self {
            tz: local_time::zone(&shop.timezone),
            step_minutes: shop.slot_step_minutes.max(1),
            min_notice: Duration::minutes(i64::from(shop.min_notice_minutes)),
            max_advance: Duration::days(i64::from(shop.max_advance_days)),
            buffer: Duration::minutes(i64::from(shop.buffer_minutes)),
        }
    }
}

/// What keeps a barber busy around some day.
#[derive(Clone, Debug, Default)]
pub struct Calendar {
    pub hours: Vec<working_hours::Model>,
    /// Active bookings: (id, start, busy until).
    pub busy: Vec<(i64, DateTime<Utc>, DateTime<Utc>)>,
    pub time_off: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

/// Why a start time cannot be booked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unbookable {
    Past,
    TooSoon { minutes: i64 },
    TooFar { days: i64 },
    OutsideHours,
    OffGrid { step: i32 },
    TimeOff,
    Taken,
}

impl From<Unbookable> for AppError {
    fn from(refusal: Unbookable) -> Self {
        let hint = "; pick a time from `availableSlots`";
        match refusal {
            Unbookable::Past => AppError::bad_input(format!("`startsAt` is in the past{hint}")),
            Unbookable::TooSoon { minutes } => AppError::bad_input(format!(
                "`startsAt` is too soon: this shop takes bookings at least {minutes} minutes ahead{hint}"
            )),
            Unbookable::TooFar { days } => AppError::bad_input(format!(
                "`startsAt` is too far ahead: this shop takes bookings at most {days} days ahead{hint}"
            )),
            Unbookable::OutsideHours => AppError::bad_input(format!(
                "`startsAt` is outside the barber's working hours, or the service would run past them{hint}"
            )),
            Unbookable::OffGrid { step } => AppError::bad_input(format!(
                "`startsAt` must be on the shop's {step}-minute grid (for example 10:00, 10:{step:02}){hint}"
            )),
            Unbookable::TimeOff => {
                AppError::bad_input(format!("the barber is off at that time{hint}"))
            }
            Unbookable::Taken => AppError::Conflict(format!("that time is already booked{hint}")),
        }
    }
}

/// Whether a booking of `duration` starting at `start` can be made.
/// `ignore` is a booking that does not count as busy (when rescheduling it).
pub fn check(
    rules: &Rules,
    calendar: &Calendar,
    start: DateTime<Utc>,
    duration: Duration,
    now: DateTime<Utc>,
    ignore: Option<i64>,
) -> Result<(), Unbookable> {
    if start <= now {
        return Err(Unbookable::Past);
    }
    if start < now + rules.min_notice {
        return Err(Unbookable::TooSoon { minutes: rules.min_notice.num_minutes() });
    }
    if start > now + rules.max_advance {
        return Err(Unbookable::TooFar { days: rules.max_advance.num_days() });
    }
    let local = start.with_timezone(&rules.tz);
    let date = local.date_naive();
    let weekday = local_time::weekday(date);
    let end = start + duration;
    let blocks_until = end + rules.buffer;
    let fits = calendar.hours.iter().filter(|h| h.weekday == weekday).any(|h| {
        match (
            boundary(rules.tz, date, h.opens_minute, false),
            boundary(rules.tz, date, h.closes_minute, true),
        ) {
            (Some(opens), Some(closes)) => opens <= start && blocks_until <= closes,
            _ => false,
        }
    });
    if !fits {
        return Err(Unbookable::OutsideHours);
    }
    let minute_of_day = i64::from(local.time().num_seconds_from_midnight()) / 60;
    if local.time().second() != 0
        || start.timestamp_subsec_nanos() != 0
        || minute_of_day % i64::from(rules.step_minutes) != 0
    {
        return Err(Unbookable::OffGrid { step: rules.step_minutes });
    }
    if calendar.time_off.iter().any(|(from, to)| *from < blocks_until && start < *to) {
        return Err(Unbookable::TimeOff);
    }
    let taken = calendar
        .busy
        .iter()
        .any(|(id, from, until)| Some(*id) != ignore && *from < blocks_until && start < *until);
    if taken {
        return Err(Unbookable::Taken);
    }
    Ok(())
}

/// What a barber offers for one service: the barber, the service, their
/// shop and the barber's weekly hours, checked to belong together. It
/// changes only with the shop's catalogue, so reads may keep it (see
/// `PublicReads::offer`).
#[derive(Clone, Debug)]
pub struct Offer {
    pub barber: barber::Model,
    pub service: service::Model,
    pub shop: shop::Model,
    pub hours: Vec<working_hours::Model>,
}

impl Offer {
    /// The offer of `service_id` by `barber_id`, read now.
    pub async fn load(
        db: &impl ConnectionTrait,
        barber_id: i64,
        service_id: i64,
    ) -> AppResult<Self> {
        let (barber, service, shop) = offer(db, barber_id, service_id).await?;
        let hours = working_hours::Entity::find()
            .filter(working_hours::Column::BarberId.eq(barber_id))
            .all(db)
            .await?;
        Ok(Self { barber, service, shop, hours })
    }

    /// Its free slots on the shop-local `date` as of `now`: one statement
    /// for the day's bookings and time off.
    pub async fn open_slots(
        &self,
        db: &impl ConnectionTrait,
        date: NaiveDate,
        now: DateTime<Utc>,
    ) -> AppResult<OpenSlots> {
        if !self.barber.active {
            return Ok(OpenSlots { slots: Vec::new(), until: None });
        }
        let rules = Rules::of(&self.shop);
        let (from, to) = day_bounds(rules.tz, date)
            .ok_or_else(|| AppError::bad_input("`date` is out of range"))?;
        let (busy, time_off) =
            load_blocked(db, self.barber.id, from - Duration::days(1), to + Duration::days(1))
                .await?;
        let calendar = Calendar { hours: self.hours.clone(), busy, time_off };
        let duration = Duration::minutes(i64::from(self.service.duration_minutes));
        Ok(open_slots(&rules, &calendar, date, duration, now))
    }
}

/// The barber, the service and the shop of a booking request, checked to
/// belong together: one statement (it was four, one per table, on every
/// booking).
pub(crate) async fn offer(
    db: &impl ConnectionTrait,
    barber_id: i64,
    service_id: i64,
) -> AppResult<(barber::Model, service::Model, shop::Model)> {
    let backend = db.get_database_backend();
    let (barber_param, service_param) = match backend {
        sea_orm::DbBackend::Postgres => ("$1", "$2"),
        _ => ("?1", "?2"),
    };
    // One row whatever is found: what is missing reads as nulls.
    let sql = format!(
        "SELECT {barbers}, {services}, {shops}, \
         CAST(CASE WHEN EXISTS (SELECT 1 FROM barber_services o \
             WHERE o.barber_id = b.id AND o.service_id = s.id) THEN 1 ELSE 0 END AS BIGINT) \
             AS offered \
         FROM (SELECT 1 AS one) one \
         LEFT JOIN barbers b ON b.id = {barber_param} \
         LEFT JOIN services s ON s.id = {service_param} \
         LEFT JOIN shops h ON h.id = b.shop_id",
        barbers = prefixed::<barber::Column>("b", "b_"),
        services = prefixed::<service::Column>("s", "s_"),
        shops = prefixed::<shop::Column>("h", "h_"),
    );
    let values = vec![Value::from(barber_id), Value::from(service_id)];
    let row = db
        .query_one_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("an offer's read returned no row")))?;
    let found = |id: &str| row.try_get::<Option<i64>>("", id).map(|id| id.is_some());
    if !found("b_id")? {
        return Err(AppError::not_found("no barber has this `barberId`"));
    }
    if !found("s_id")? {
        return Err(AppError::not_found("no service has this `serviceId`"));
    }
    let barber = barber::Model::from_query_result(&row, "b_")?;
    let service = service::Model::from_query_result(&row, "s_")?;
    if service.shop_id != barber.shop_id || row.try_get::<i64>("", "offered")? == 0 {
        return Err(AppError::bad_input(
            "this barber does not offer this service; see `Barber.services`",
        ));
    }
    if !found("h_id")? {
        return Err(AppError::Internal(anyhow::anyhow!("barber {barber_id} has no shop")));
    }
    Ok((barber, service, shop::Model::from_query_result(&row, "h_")?))
}

/// Free slots as of one instant, and how long they stay so.
#[derive(Debug)]
pub struct OpenSlots {
    /// Each bookable start, with its end.
    pub slots: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// The first instant at which time alone changes the answer (a slot
    /// comes inside the notice, or one inside the advance window); `None`
    /// when time alone never does. Writes change it too; they say so.
    pub until: Option<DateTime<Utc>>,
}

/// Every bookable start for `service_id` with `barber_id` on the
/// shop-local `date`, with its end; none for an inactive barber.
#[tracing::instrument(skip_all, fields(barber.id = barber_id, service.id = service_id))]
pub async fn available_slots(
    db: &impl ConnectionTrait,
    barber_id: i64,
    service_id: i64,
    date: NaiveDate,
    now: DateTime<Utc>,
) -> AppResult<OpenSlots> {
    Offer::load(db, barber_id, service_id).await?.open_slots(db, date, now).await
}

/// Every bookable start on the shop-local `date`, with its end.
pub fn free_slots(
    rules: &Rules,
    calendar: &Calendar,
    date: NaiveDate,
    duration: Duration,
    now: DateTime<Utc>,
) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    open_slots(rules, calendar, date, duration, now).slots
}

/// Every bookable start on the shop-local `date`, with its end, and until
/// when that holds.
pub fn open_slots(
    rules: &Rules,
    calendar: &Calendar,
    date: NaiveDate,
    duration: Duration,
    now: DateTime<Utc>,
) -> OpenSlots {
    let weekday = local_time::weekday(date);
    let candidates: Vec<DateTime<Utc>> = calendar
        .hours
        .iter()
        .filter(|h| h.weekday == weekday)
        .flat_map(|h| {
            let step = rules.step_minutes;
            let first = (h.opens_minute + step - 1) / step * step;
            (first..h.closes_minute).step_by(usize::try_from(step).unwrap_or(15))
        })
        // A local time repeated when clocks go back is two start times.
        .flat_map(|minute| local_time::instants(rules.tz, date, minute))
        .collect();
    // Only the notice and the advance window depend on the time: a start
    // leaves when `now` passes start - notice, and enters when it reaches
    // start - advance. The first such instant ends the answer.
    let until = candidates
        .iter()
        .flat_map(|start| [*start - rules.min_notice, *start - rules.max_advance])
        .filter(|instant| *instant > now)
        .min();
    let mut starts: Vec<DateTime<Utc>> = candidates
        .into_iter()
        .filter(|start| check(rules, calendar, *start, duration, now, None).is_ok())
        .collect();
    starts.sort();
    starts.dedup();
    OpenSlots { slots: starts.into_iter().map(|start| (start, start + duration)).collect(), until }
}

/// What keeps barber `barber_id` busy between `from` and `to`.
pub async fn load_calendar(
    db: &impl ConnectionTrait,
    barber_id: i64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Calendar, DbErr> {
    let hours = working_hours::Entity::find()
        .filter(working_hours::Column::BarberId.eq(barber_id))
        .all(db)
        .await?;
    let (busy, time_off) = load_blocked(db, barber_id, from, to).await?;
    Ok(Calendar { hours, busy, time_off })
}

/// A row of [`load_blocked`]: a booking (`off` 0) or time off (1).
#[derive(Debug, FromQueryResult)]
struct Blocked {
    id: i64,
    starts_at: DateTime<Utc>,
    blocks_until: DateTime<Utc>,
    off: i32,
}

/// Barber `barber_id`'s active bookings (id, start, busy until) and time
/// off between `from` and `to`, in one statement.
pub async fn load_blocked(
    db: &impl ConnectionTrait,
    barber_id: i64,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<BusyAndOff, DbErr> {
    let mut bookings = Query::select();
    bookings
        .columns([booking::Column::Id, booking::Column::StartsAt, booking::Column::BlocksUntil])
        .expr_as(Expr::cust("0"), "off")
        .from(booking::Entity)
        .and_where(booking::Column::BarberId.eq(barber_id))
        .and_where(booking::Column::Status.ne(BookingStatus::Cancelled))
        .and_where(booking::Column::StartsAt.lt(to))
        .and_where(booking::Column::BlocksUntil.gt(from))
        // No booking is longer than a day: this bound lets the index skip
        // the barber's history.
        .and_where(booking::Column::StartsAt.gt(from - Duration::days(1)));
    let mut off = Query::select();
    off.column(time_off::Column::Id)
        .column(time_off::Column::StartsAt)
        .expr_as(Expr::col(time_off::Column::EndsAt), "blocks_until")
        .expr_as(Expr::cust("1"), "off")
        .from(time_off::Entity)
        .and_where(time_off::Column::BarberId.eq(barber_id))
        .and_where(time_off::Column::StartsAt.lt(to))
        .and_where(time_off::Column::EndsAt.gt(from));
    bookings.union(UnionType::All, off);
    let rows =
        Blocked::find_by_statement(db.get_database_backend().build(&bookings)).all(db).await?;
    let mut busy = Vec::new();
    let mut time_off = Vec::new();
    for row in rows {
        match row.off {
            0 => busy.push((row.id, row.starts_at, row.blocks_until)),
            _ => time_off.push((row.starts_at, row.blocks_until)),
        }
    }
    Ok((busy, time_off))
}

/// Bookings (id, start, busy until) and time off (start, end).
pub type BusyAndOff =
    (Vec<(i64, DateTime<Utc>, DateTime<Utc>)>, Vec<(DateTime<Utc>, DateTime<Utc>)>);

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn rules(tz: &str) -> Rules {
        Rules {
            tz: tz.parse().unwrap(),
            step_minutes: 60,
            min_notice: Duration::zero(),
            max_advance: Duration::days(3650),
            buffer: Duration::zero(),
        }
    }

    fn all_day(weekday: i16) -> Calendar {
        Calendar {
            hours: vec![working_hours::Model {
                id: 1,
                barber_id: 1,
                weekday,
                opens_minute: 0,
                closes_minute: 24 * 60,
            }],
            ..Calendar::default()
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap()
    }

    #[test]
    fn free_slots_hold_until_time_alone_changes_them() {
        // 2026-06-03 is a Wednesday; hourly slots all day, UTC.
        let date = NaiveDate::from_ymd_opt(2026, 6, 3).unwrap();
        let rules = Rules {
            min_notice: Duration::minutes(90),
            max_advance: Duration::days(2),
            ..rules("UTC")
        };
        let at = |day: u32, hour: u32, minute: u32| {
            Utc.with_ymd_and_hms(2026, 6, day, hour, minute, 0).unwrap()
        };
        let hour = Duration::minutes(60);
        // On the day: 12:00 is the first slot past the notice at 10:10;
        // just after 10:30 (12:00 - 90 min) it leaves, so the answer ends then.
        let open = open_slots(&rules, &all_day(3), date, hour, at(3, 10, 10));
        assert_eq!(open.slots.first().map(|s| s.0), Some(at(3, 12, 0)));
        assert_eq!(open.until, Some(at(3, 10, 30)));
        let later = open_slots(&rules, &all_day(3), date, hour, at(3, 10, 31));
        assert_eq!(later.slots.first().map(|s| s.0), Some(at(3, 13, 0)));
        // Two days ahead, at the advance window's edge: 10:00 is inside,
        // 11:00 enters at 11:00 two days before.
        let open = open_slots(&rules, &all_day(3), date, hour, at(1, 10, 10));
        assert_eq!(open.slots.last().map(|s| s.0), Some(at(3, 10, 0)));
        assert_eq!(open.until, Some(at(1, 11, 0)));
        let later = open_slots(&rules, &all_day(3), date, hour, at(1, 11, 0));
        assert_eq!(later.slots.last().map(|s| s.0), Some(at(3, 11, 0)));
        // A day that time has left behind holds for ever.
        let gone = open_slots(&rules, &all_day(3), date, hour, at(4, 0, 0));
        assert_eq!((gone.slots.len(), gone.until), (0, None));
    }

    #[test]
    fn spring_forward_day_has_23_hourly_slots() {
        // Europe/London skips 01:00–02:00 on 2026-03-29 (a Sunday).
        let date = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
        let slots =
            free_slots(&rules("Europe/London"), &all_day(7), date, Duration::minutes(60), now());
        assert_eq!(slots.len(), 23);
        let locals: Vec<String> = slots
            .iter()
            .map(|(s, _)| s.with_timezone(&chrono_tz::Europe::London).format("%H:%M").to_string())
            .collect();
        assert!(!locals.contains(&"01:00".to_owned()));
        assert_eq!(locals[1], "02:00");
    }

    #[test]
    fn fall_back_day_has_25_hourly_slots() {
        // America/New_York repeats 01:00–02:00 on 2026-11-01 (a Sunday).
        let tz = "America/New_York";
        let date = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        let (start, end) = day_bounds(tz.parse().unwrap(), date).unwrap();
        assert_eq!(end - start, Duration::hours(25));
        let slots = free_slots(&rules(tz), &all_day(7), date, Duration::minutes(60), now());
        // 01:00 comes twice: once in summer time, once in standard time.
        assert_eq!(slots.len(), 25);
        let ones = slots
            .iter()
            .filter(|(s, _)| {
                s.with_timezone(&chrono_tz::America::New_York).format("%H:%M").to_string()
                    == "01:00"
            })
            .count();
        assert_eq!(ones, 2);
        // Slots are an hour long in real time even across the change.
        assert!(slots.iter().all(|(s, e)| *e - *s == Duration::hours(1)));
    }

    #[test]
    fn hours_that_open_or_close_in_a_gap_keep_the_rest_of_their_day() {
        // America/Santiago skips local midnight on 2026-09-06 (clocks go
        // from 00:00 to 01:00): hours to 24:00 the day before still close.
        let tz = "America/Santiago";
        let saturday = NaiveDate::from_ymd_opt(2026, 9, 5).unwrap();
        let mut calendar = all_day(6);
        calendar.hours[0].opens_minute = 18 * 60;
        let slots = free_slots(&rules(tz), &calendar, saturday, Duration::minutes(60), now());
        assert_eq!(slots.len(), 6, "18:00 to 23:00");
        // New York skips 02:00–03:00 on 2026-03-08: hours from 02:30 open at 03:00.
        let tz = "America/New_York";
        let sunday = NaiveDate::from_ymd_opt(2026, 3, 8).unwrap();
        let mut calendar = all_day(7);
        calendar.hours[0].opens_minute = 2 * 60 + 30;
        calendar.hours[0].closes_minute = 5 * 60;
        let slots = free_slots(&rules(tz), &calendar, sunday, Duration::minutes(60), now());
        let locals: Vec<String> = slots
            .iter()
            .map(|(s, _)| {
                s.with_timezone(&chrono_tz::America::New_York).format("%H:%M").to_string()
            })
            .collect();
        assert_eq!(locals, vec!["03:00", "04:00"]);
    }

    #[test]
    fn a_booking_blocks_its_slot_and_its_buffer() {
        let mut rules = rules("UTC");
        rules.step_minutes = 15;
        rules.buffer = Duration::minutes(15);
        let date = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap(); // Monday
        let mut calendar = all_day(1);
        calendar.hours[0].opens_minute = 9 * 60;
        calendar.hours[0].closes_minute = 11 * 60 + 30;
        let at = |h, m| Utc.with_ymd_and_hms(2026, 6, 1, h, m, 0).unwrap();
        calendar.busy.push((1, at(10, 0), at(10, 45)));
        let slots: Vec<_> = free_slots(&rules, &calendar, date, Duration::minutes(30), now())
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        // 09:00 and 09:15 end with their buffer by 10:00; 10:45 ends with its
        // buffer at closing; 11:00 would run past it.
        assert_eq!(slots, vec![at(9, 0), at(9, 15), at(10, 45)]);
        assert_eq!(
            check(&rules, &calendar, at(9, 30), Duration::minutes(30), now(), None),
            Err(Unbookable::Taken)
        );
        assert_eq!(
            check(&rules, &calendar, at(9, 30), Duration::minutes(30), now(), Some(1)),
            Ok(())
        );
        assert_eq!(
            check(&rules, &calendar, at(9, 5), Duration::minutes(30), now(), None),
            Err(Unbookable::OffGrid { step: 15 })
        );
    }
}
