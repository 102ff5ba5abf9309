//! Shop analytics over shop-local dates.
//!
//! Bookings are counted by their start. Each section comes two ways:
//!
//! - Over a whole range at once ([`summary`], [`by_day`], …: the
//!   definition, used when the cache is unavailable, and the oracle of the
//!   tests). These group in the database and return aggregates only (counts
//!   per status, per barber, per service, per 15-minute bucket of UTC
//!   time), turned into shop-local dates and hours here; that works for
//!   every time zone (all offsets are multiples of 15 minutes).
//! - As one [`Partial`] per shop-local day and section ([`day_partials`]),
//!   which the dashboard caches and merges, so that a write recomputes only
//!   the days it touched. All five sections' partials of any set of days
//!   come from one pass over the columns they need of those days'
//!   bookings (a day's partial keeps its clients, so grouping in the
//!   database would not shrink the rows).
//!
//! Every partial adds up exactly: counts and sums are summed, rates and the
//! average ticket are divided only at the end, and distinct clients are
//! kept per day as client ids with their booking counts, merged over the
//! range.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Datelike, NaiveDate, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use entity::{barber, shop, working_hours};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, FromQueryResult, QueryFilter,
    QuerySelect, Statement, Value,
};
use serde::{Deserialize, Serialize};

use super::local_time::{self, boundary, day_bounds};
use crate::error::{AppError, AppResult};

/// Longest range, in days.
pub const MAX_DAYS: i64 = 366;

/// A valid range of shop-local dates, `from..=to`, and its UTC bounds.
#[derive(Clone, Copy, Debug)]
pub struct Range {
    pub tz: Tz,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub starts: DateTime<Utc>,
    pub ends: DateTime<Utc>,
}

impl Range {
    pub fn new(shop: &shop::Model, from: NaiveDate, to: NaiveDate) -> AppResult<Self> {
        if from > to {
            return Err(AppError::bad_input("`from` must not be after `to`"));
        }
        let days = (to - from).num_days() + 1;
        if days > MAX_DAYS {
            return Err(AppError::bad_input(format!(
                "the range is {days} days; ask for at most {MAX_DAYS} days at a time"
            )));
        }
        let tz = local_time::zone(&shop.timezone);
        let out_of_range = || AppError::bad_input("the dates are out of range");
        let (starts, _) = day_bounds(tz, from).ok_or_else(out_of_range)?;
        let (_, ends) = day_bounds(tz, to).ok_or_else(out_of_range)?;
        Ok(Self { tz, from, to, starts, ends })
    }

    /// Every date of the range, in order.
    pub fn dates(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.from.iter_days().take_while(move |d| *d <= self.to)
    }

    /// The dates `from..=to` of this range's shop, with their bounds.
    pub fn part(&self, from: NaiveDate, to: NaiveDate) -> Option<Range> {
        let (starts, _) = day_bounds(self.tz, from)?;
        let (_, ends) = day_bounds(self.tz, to)?;
        Some(Self { tz: self.tz, from, to, starts, ends })
    }
}

/// A part of the dashboard computed and cached as one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Section {
    Summary,
    ByDay,
    Barbers,
    Services,
    PeakHours,
}

impl Section {
    pub const ALL: [Section; 5] =
        [Section::Summary, Section::ByDay, Section::Barbers, Section::Services, Section::PeakHours];

    /// Its name in cache keys and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Section::Summary => "summary",
            Section::ByDay => "by_day",
            Section::Barbers => "barbers",
            Section::Services => "services",
            Section::PeakHours => "peak_hours",
        }
    }

    /// Its place in [`Section::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Counts by status, revenue and booked minutes of a set of bookings.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Tally {
    pub bookings: i64,
    pub completed: i64,
    pub cancelled: i64,
    pub no_show: i64,
    /// Prices of COMPLETED bookings.
    pub revenue_cents: i64,
    /// Minutes of CONFIRMED and COMPLETED bookings.
    pub booked_minutes: i64,
}

impl Tally {
    fn add(&mut self, row: &StatusRow) {
        self.bookings += row.bookings;
        match row.status.as_str() {
            "COMPLETED" => {
                self.completed += row.bookings;
                self.revenue_cents += row.revenue;
                self.booked_minutes += row.minutes;
            }
            "CONFIRMED" => self.booked_minutes += row.minutes,
            "CANCELLED" => self.cancelled += row.bookings,
            "NO_SHOW" => self.no_show += row.bookings,
            _ => {}
        }
    }

    /// Adds `other`'s counts and sums to these.
    fn merge(&mut self, other: &Tally) {
        self.bookings += other.bookings;
        self.completed += other.completed;
        self.cancelled += other.cancelled;
        self.no_show += other.no_show;
        self.revenue_cents += other.revenue_cents;
        self.booked_minutes += other.booked_minutes;
    }

    pub fn no_show_rate(&self) -> f64 {
        rate(self.no_show, self.completed + self.no_show)
    }
}

/// The numbers of the summary section.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Summary {
    pub tally: Tally,
    /// Working minutes less time off, of every barber.
    pub available_minutes: i64,
    pub clients: i64,
    pub repeat_clients: i64,
    #[serde(with = "chrono::serde::ts_nanoseconds")]
    pub generated_at: DateTime<Utc>,
}

/// `numerator / denominator`, 0 when the denominator is.
pub fn rate(numerator: i64, denominator: i64) -> f64 {
    if denominator <= 0 { 0.0 } else { numerator as f64 / denominator as f64 }
}

impl Summary {
    /// Revenue per completed booking, rounded half away from zero.
    pub fn average_ticket_cents(&self) -> i64 {
        let t = &self.tally;
        if t.completed == 0 {
            0
        } else {
            (t.revenue_cents as f64 / t.completed as f64).round() as i64
        }
    }

    pub fn cancellation_rate(&self) -> f64 {
        rate(self.tally.cancelled, self.tally.bookings)
    }

    pub fn utilization(&self) -> f64 {
        rate(self.tally.booked_minutes, self.available_minutes)
    }

    pub fn repeat_client_rate(&self) -> f64 {
        rate(self.repeat_clients, self.clients)
    }
}

/// One shop-local day of the range.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Day {
    #[serde(with = "day_number")]
    pub date: NaiveDate,
    pub bookings: i64,
    pub revenue_cents: i64,
}

/// One barber's numbers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BarberNumbers {
    pub barber_id: i64,
    pub tally: Tally,
    pub available_minutes: i64,
}

impl BarberNumbers {
    pub fn utilization(&self) -> f64 {
        rate(self.tally.booked_minutes, self.available_minutes)
    }
}

/// One service's numbers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServiceNumbers {
    pub service_id: i64,
    pub bookings: i64,
    pub revenue_cents: i64,
}

/// Bookings starting in one shop-local weekday (1–7) and hour (0–23).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeakHour {
    pub weekday: u32,
    pub hour: u32,
    pub bookings: i64,
}

/// A section's rows and when they were computed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Rows<T> {
    pub rows: Vec<T>,
    #[serde(with = "chrono::serde::ts_nanoseconds")]
    pub generated_at: DateTime<Utc>,
}

/// A date kept as its day number (days from 0001-01-01, as
/// [`Datelike::num_days_from_ce`] counts), where serde's default writes
/// and parses text: a cached year holds hundreds of dates, and by `perf`
/// formatting and parsing them was a tenth of a dashboard's CPU.
pub mod day_number {
    use chrono::{Datelike, NaiveDate};
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(date: &NaiveDate, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i32(date.num_days_from_ce())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<NaiveDate, D::Error> {
        let number = i32::deserialize(deserializer)?;
        NaiveDate::from_num_days_from_ce_opt(number)
            .ok_or_else(|| D::Error::custom(format!("day number {number} is out of range")))
    }
}

/// Seconds since the epoch of a timestamp column, in the backend's dialect.
fn epoch(backend: DbBackend, column: &str) -> String {
    match backend {
        // `date_part` is a float; `EXTRACT` makes a numeric, slower to
        // compute over a year of bookings.
        DbBackend::Postgres => format!("CAST(date_part('epoch', {column}) AS BIGINT)"),
        _ => format!("CAST(strftime('%s', {column}) AS INTEGER)"),
    }
}

/// A statement from `sql` with `$1`-style parameters, in the backend's
/// dialect (`?1` on SQLite).
fn statement(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    let sql = match backend {
        DbBackend::Postgres => sql.to_owned(),
        _ => sql.replace('$', "?"),
    };
    Statement::from_sql_and_values(backend, sql, values)
}

/// The shop and range parameters `$1..$3` of every query.
fn params(shop_id: i64, range: &Range) -> Vec<Value> {
    vec![shop_id.into(), range.starts.into(), range.ends.into()]
}

const IN_RANGE: &str = "shop_id = $1 AND starts_at >= $2 AND starts_at < $3";

/// The shop's barbers, as a subquery in raw SQL.
const BARBERS: &str = "SELECT id FROM barbers WHERE shop_id = $1";

/// The ids of `shop_id`'s barbers, as a subquery.
fn shop_barbers(shop_id: i64) -> sea_orm::sea_query::SelectStatement {
    sea_orm::sea_query::Query::select()
        .column(barber::Column::Id)
        .from(barber::Entity)
        .and_where(barber::Column::ShopId.eq(shop_id))
        .to_owned()
}

#[derive(FromQueryResult)]
struct StatusRow {
    owner: i64,
    status: String,
    bookings: i64,
    revenue: i64,
    minutes: i64,
}

/// Counts, revenue and booked minutes per status, per `group` column
/// (`shop_id` or `barber_id`).
async fn by_status(
    db: &impl ConnectionTrait,
    shop_id: i64,
    range: &Range,
    group: &str,
) -> Result<Vec<StatusRow>, DbErr> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT {group} AS owner, status, COUNT(*) AS bookings, \
                CAST(COALESCE(SUM(price_cents), 0) AS BIGINT) AS revenue, \
                CAST(COALESCE(SUM({ends} - {starts}), 0) / 60 AS BIGINT) AS minutes \
         FROM bookings WHERE {IN_RANGE} GROUP BY {group}, status",
        ends = epoch(backend, "ends_at"),
        starts = epoch(backend, "starts_at"),
    );
    StatusRow::find_by_statement(statement(backend, &sql, params(shop_id, range))).all(db).await
}

/// Working minutes less time off, per barber of the shop.
async fn available_minutes(
    db: &impl ConnectionTrait,
    shop_id: i64,
    range: &Range,
) -> Result<HashMap<i64, i64>, DbErr> {
    let dates: Vec<NaiveDate> = range.dates().collect();
    let mut minutes: HashMap<i64, i64> = HashMap::new();
    for day in Schedule::read(db, shop_id, range).await?.available_by_day(range, &dates) {
        for (barber, free) in day {
            *minutes.entry(barber).or_default() += free;
        }
    }
    Ok(minutes)
}

/// One weekly working interval of a barber.
struct Interval {
    barber_id: i64,
    weekday: i16,
    opens_minute: i32,
    closes_minute: i32,
}

/// One time off of a barber.
struct Off {
    barber_id: i64,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
}

/// What a shop's available minutes over a range are made of: its barbers,
/// their weekly hours, and their time off within the range.
#[derive(Default)]
struct Schedule {
    barbers: Vec<i64>,
    hours: Vec<Interval>,
    time_off: Vec<Off>,
}

impl Schedule {
    /// The shop's schedule over `range`, three statements at once.
    async fn read(db: &impl ConnectionTrait, shop_id: i64, range: &Range) -> Result<Self, DbErr> {
        let barbers = barber::Entity::find()
            .select_only()
            .column(barber::Column::Id)
            .filter(barber::Column::ShopId.eq(shop_id))
            .into_tuple::<i64>()
            .all(db);
        let hours = working_hours::Entity::find()
            .filter(working_hours::Column::BarberId.in_subquery(shop_barbers(shop_id)))
            .all(db);
        let time_off = Self::time_off(db, shop_id, range);
        let (barbers, hours, time_off) = tokio::try_join!(barbers, hours, time_off)?;
        Ok(Self {
            barbers,
            hours: hours
                .into_iter()
                .map(|h| Interval {
                    barber_id: h.barber_id,
                    weekday: h.weekday,
                    opens_minute: h.opens_minute,
                    closes_minute: h.closes_minute,
                })
                .collect(),
            time_off,
        })
    }

    /// The time off of the shop's barbers within `range`, to the
    /// microsecond: an instant read as Unix seconds would round it.
    async fn time_off(
        db: &impl ConnectionTrait,
        shop_id: i64,
        range: &Range,
    ) -> Result<Vec<Off>, DbErr> {
        let time_off = entity::time_off::Entity::find()
            .filter(entity::time_off::Column::BarberId.in_subquery(shop_barbers(shop_id)))
            .filter(entity::time_off::Column::StartsAt.lt(range.ends))
            .filter(entity::time_off::Column::EndsAt.gt(range.starts))
            .all(db)
            .await?;
        Ok(time_off
            .into_iter()
            .map(|t| Off { barber_id: t.barber_id, starts_at: t.starts_at, ends_at: t.ends_at })
            .collect())
    }

    /// Working minutes less time off of every barber (zeros included), on
    /// each of `dates` (within `range`), in their order.
    fn available_by_day(&self, range: &Range, dates: &[NaiveDate]) -> Vec<BTreeMap<i64, i64>> {
        dates
            .iter()
            .map(|&date| {
                let mut minutes: BTreeMap<i64, i64> =
                    self.barbers.iter().map(|b| (*b, 0)).collect();
                let weekday = local_time::weekday(date);
                for interval in self.hours.iter().filter(|h| h.weekday == weekday) {
                    let (Some(opens), Some(closes)) = (
                        boundary(range.tz, date, interval.opens_minute, false),
                        boundary(range.tz, date, interval.closes_minute, true),
                    ) else {
                        continue;
                    };
                    let mut free = (closes - opens).num_minutes();
                    for off in self.time_off.iter().filter(|t| t.barber_id == interval.barber_id) {
                        let overlap = off.ends_at.min(closes) - off.starts_at.max(opens);
                        free -= overlap.num_minutes().max(0);
                    }
                    *minutes.entry(interval.barber_id).or_default() += free.max(0);
                }
                minutes
            })
            .collect()
    }
}

#[derive(FromQueryResult)]
struct Clients {
    clients: i64,
    repeaters: Option<i64>,
}

/// The summary section.
#[tracing::instrument(skip_all, fields(shop.id = shop_id))]
pub async fn summary(
    db: &impl ConnectionTrait,
    shop_id: i64,
    range: &Range,
) -> Result<Summary, DbErr> {
    let backend = db.get_database_backend();
    let mut summary = Summary { generated_at: Utc::now(), ..Summary::default() };
    for row in by_status(db, shop_id, range, "shop_id").await? {
        summary.tally.add(&row);
    }
    let sql = format!(
        "SELECT COUNT(*) AS clients, CAST(SUM(CASE WHEN n >= 2 THEN 1 ELSE 0 END) AS BIGINT) AS repeaters \
         FROM (SELECT client_id, COUNT(*) AS n FROM bookings \
               WHERE {IN_RANGE} AND status <> 'CANCELLED' GROUP BY client_id) AS per_client"
    );
    if let Some(clients) =
        Clients::find_by_statement(statement(backend, &sql, params(shop_id, range))).one(db).await?
    {
        summary.clients = clients.clients;
        summary.repeat_clients = clients.repeaters.unwrap_or(0);
    }
    summary.available_minutes = available_minutes(db, shop_id, range).await?.values().sum();
    Ok(summary)
}

#[derive(FromQueryResult)]
struct Bucket {
    bucket: i64,
    bookings: i64,
    revenue: i64,
}

/// Bookings and completed revenue per 15-minute bucket of UTC time.
async fn buckets(
    db: &impl ConnectionTrait,
    shop_id: i64,
    range: &Range,
) -> Result<Vec<(DateTime<Utc>, i64, i64)>, DbErr> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT {starts} / 900 AS bucket, COUNT(*) AS bookings, \
                CAST(COALESCE(SUM(CASE WHEN status = 'COMPLETED' THEN price_cents ELSE 0 END), 0) AS BIGINT) AS revenue \
         FROM bookings WHERE {IN_RANGE} GROUP BY {starts} / 900",
        starts = epoch(backend, "starts_at"),
    );
    let rows =
        Bucket::find_by_statement(statement(backend, &sql, params(shop_id, range))).all(db).await?;
    Ok(rows
        .into_iter()
        .filter_map(|b| Some((DateTime::from_timestamp(b.bucket * 900, 0)?, b.bookings, b.revenue)))
        .collect())
}

/// Every day of the range, zeros included.
#[tracing::instrument(skip_all, fields(shop.id = shop_id))]
pub async fn by_day(
    db: &impl ConnectionTrait,
    shop_id: i64,
    range: &Range,
) -> Result<Rows<Day>, DbErr> {
    let mut days: BTreeMap<NaiveDate, (i64, i64)> = range.dates().map(|d| (d, (0, 0))).collect();
    for (start, bookings, revenue) in buckets(db, shop_id, range).await? {
        let date = start.with_timezone(&range.tz).date_naive();
        if let Some(day) = days.get_mut(&date) {
            day.0 += bookings;
            day.1 += revenue;
        }
    }
    Ok(Rows {
        rows: days
            .into_iter()
            .map(|(date, (bookings, revenue_cents))| Day { date, bookings, revenue_cents })
            .collect(),
        generated_at: Utc::now(),
    })
}

/// Bookings per shop-local weekday and hour, non-zero ones only.
#[tracing::instrument(skip_all, fields(shop.id = shop_id))]
pub async fn peak_hours(
    db: &impl ConnectionTrait,
    shop_id: i64,
    range: &Range,
) -> Result<Rows<PeakHour>, DbErr> {
    let mut hours: BTreeMap<(u32, u32), i64> = BTreeMap::new();
    for (start, bookings, _) in buckets(db, shop_id, range).await? {
        let local = start.with_timezone(&range.tz);
        *hours.entry((local.weekday().number_from_monday(), local.hour())).or_default() += bookings;
    }
    Ok(Rows {
        rows: hours
            .into_iter()
            .filter(|(_, bookings)| *bookings > 0)
            .map(|((weekday, hour), bookings)| PeakHour { weekday, hour, bookings })
            .collect(),
        generated_at: Utc::now(),
    })
}

/// Every barber of the shop, in id order.
#[tracing::instrument(skip_all, fields(shop.id = shop_id))]
pub async fn barbers(
    db: &impl ConnectionTrait,
    shop_id: i64,
    range: &Range,
) -> Result<Rows<BarberNumbers>, DbErr> {
    let available = available_minutes(db, shop_id, range).await?;
    let mut rows: BTreeMap<i64, BarberNumbers> = available
        .iter()
        .map(|(barber_id, minutes)| {
            let numbers = BarberNumbers {
                barber_id: *barber_id,
                tally: Tally::default(),
                available_minutes: *minutes,
            };
            (*barber_id, numbers)
        })
        .collect();
    for row in by_status(db, shop_id, range, "barber_id").await? {
        if let Some(numbers) = rows.get_mut(&row.owner) {
            numbers.tally.add(&row);
        }
    }
    Ok(Rows { rows: rows.into_values().collect(), generated_at: Utc::now() })
}

#[derive(FromQueryResult)]
struct ServiceRow {
    service_id: i64,
    bookings: i64,
    revenue: i64,
}

/// Services with bookings in the range, highest revenue first.
#[tracing::instrument(skip_all, fields(shop.id = shop_id))]
pub async fn services(
    db: &impl ConnectionTrait,
    shop_id: i64,
    range: &Range,
) -> Result<Rows<ServiceNumbers>, DbErr> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT service_id, COUNT(*) AS bookings, \
                CAST(COALESCE(SUM(CASE WHEN status = 'COMPLETED' THEN price_cents ELSE 0 END), 0) AS BIGINT) AS revenue \
         FROM bookings WHERE {IN_RANGE} GROUP BY service_id ORDER BY revenue DESC, bookings DESC, service_id"
    );
    let rows = ServiceRow::find_by_statement(statement(backend, &sql, params(shop_id, range)))
        .all(db)
        .await?;
    Ok(Rows {
        rows: rows
            .into_iter()
            .map(|r| ServiceNumbers {
                service_id: r.service_id,
                bookings: r.bookings,
                revenue_cents: r.revenue,
            })
            .collect(),
        generated_at: Utc::now(),
    })
}

/// A section's numbers over a range.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Numbers {
    Summary(Summary),
    ByDay(Rows<Day>),
    Barbers(Rows<BarberNumbers>),
    Services(Rows<ServiceNumbers>),
    PeakHours(Rows<PeakHour>),
}

/// `section` over `range`, computed from the bookings at once: the
/// definition the cached parts must add up to.
pub async fn from_scratch(
    db: &impl ConnectionTrait,
    shop_id: i64,
    section: Section,
    range: &Range,
) -> Result<Numbers, DbErr> {
    Ok(match section {
        Section::Summary => Numbers::Summary(summary(db, shop_id, range).await?),
        Section::ByDay => Numbers::ByDay(by_day(db, shop_id, range).await?),
        Section::Barbers => Numbers::Barbers(barbers(db, shop_id, range).await?),
        Section::Services => Numbers::Services(services(db, shop_id, range).await?),
        Section::PeakHours => Numbers::PeakHours(peak_hours(db, shop_id, range).await?),
    })
}

/// A section over a set of days, kept in a form that adds up: counts and
/// sums, and distinct clients as ids with their booking counts. Rates and
/// the average ticket are divided only when [`Partial::finish`] makes the
/// section, so the parts of a range's days (or months) merge into exactly
/// what the range computed at once would be.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Partial {
    Summary {
        tally: Tally,
        available_minutes: i64,
        /// `(client, non-cancelled bookings)`, by client.
        clients: Vec<(i64, i64)>,
    },
    /// By date.
    ByDay(Vec<Day>),
    /// Every barber of the shop, by id.
    Barbers(Vec<BarberNumbers>),
    /// Services with bookings, by id.
    Services(Vec<ServiceNumbers>),
    /// Non-zero weekday-hours, by weekday and hour.
    PeakHours(Vec<PeakHour>),
}

/// A row of a partial: rows with equal keys add up into one.
trait Row: Clone {
    type Key: Ord;
    fn key(&self) -> Self::Key;
    fn add(&mut self, other: Self);
}

/// A client and their non-cancelled bookings.
impl Row for (i64, i64) {
    type Key = i64;
    fn key(&self) -> i64 {
        self.0
    }
    fn add(&mut self, other: Self) {
        self.1 += other.1;
    }
}

impl Row for Day {
    type Key = NaiveDate;
    fn key(&self) -> NaiveDate {
        self.date
    }
    fn add(&mut self, other: Self) {
        self.bookings += other.bookings;
        self.revenue_cents += other.revenue_cents;
    }
}

impl Row for BarberNumbers {
    type Key = i64;
    fn key(&self) -> i64 {
        self.barber_id
    }
    fn add(&mut self, other: Self) {
        self.tally.merge(&other.tally);
        self.available_minutes += other.available_minutes;
    }
}

impl Row for ServiceNumbers {
    type Key = i64;
    fn key(&self) -> i64 {
        self.service_id
    }
    fn add(&mut self, other: Self) {
        self.bookings += other.bookings;
        self.revenue_cents += other.revenue_cents;
    }
}

impl Row for PeakHour {
    type Key = (u32, u32);
    fn key(&self) -> (u32, u32) {
        (self.weekday, self.hour)
    }
    fn add(&mut self, other: Self) {
        self.bookings += other.bookings;
    }
}

/// `rows` sorted by key, those with equal keys added into one.
fn coalesce<T: Row>(mut rows: Vec<T>) -> Vec<T> {
    rows.sort_by_key(T::key);
    let mut out: Vec<T> = Vec::with_capacity(rows.len());
    for row in rows {
        match out.last_mut() {
            Some(last) if last.key() == row.key() => last.add(row),
            _ => out.push(row),
        }
    }
    out
}

/// The rows `pick` finds in each of `parts`, coalesced; `None` when a part
/// has none (it is of another section).
fn merged_rows<'a, T: Row + 'a>(
    parts: impl Iterator<Item = &'a Partial>,
    pick: impl Fn(&'a Partial) -> Option<&'a Vec<T>>,
) -> Option<Vec<T>> {
    let mut rows = Vec::new();
    for part in parts {
        rows.extend_from_slice(pick(part)?);
    }
    Some(coalesce(rows))
}

impl Partial {
    /// `section` over the union of the days of `parts`; `None` when a part
    /// is of another section.
    pub fn merge<'a>(
        section: Section,
        parts: impl IntoIterator<Item = &'a Partial>,
    ) -> Option<Self> {
        let parts = parts.into_iter();
        Some(match section {
            Section::Summary => {
                let (mut tally, mut available, mut clients) = (Tally::default(), 0, Vec::new());
                for part in parts {
                    let Partial::Summary { tally: t, available_minutes, clients: c } = part else {
                        return None;
                    };
                    tally.merge(t);
                    available += available_minutes;
                    clients.extend_from_slice(c);
                }
                Partial::Summary { tally, available_minutes: available, clients: coalesce(clients) }
            }
            Section::ByDay => Partial::ByDay(merged_rows(parts, |p| match p {
                Partial::ByDay(rows) => Some(rows),
                _ => None,
            })?),
            Section::Barbers => Partial::Barbers(merged_rows(parts, |p| match p {
                Partial::Barbers(rows) => Some(rows),
                _ => None,
            })?),
            Section::Services => Partial::Services(merged_rows(parts, |p| match p {
                Partial::Services(rows) => Some(rows),
                _ => None,
            })?),
            Section::PeakHours => Partial::PeakHours(merged_rows(parts, |p| match p {
                Partial::PeakHours(rows) => Some(rows),
                _ => None,
            })?),
        })
    }

    /// The section's numbers, divided and ordered as the whole-range
    /// computation makes them.
    pub fn finish(self, generated_at: DateTime<Utc>) -> Numbers {
        match self {
            Partial::Summary { tally, available_minutes, clients } => Numbers::Summary(Summary {
                tally,
                available_minutes,
                clients: i64::try_from(clients.len()).unwrap_or(i64::MAX),
                repeat_clients: i64::try_from(clients.iter().filter(|c| c.1 >= 2).count())
                    .unwrap_or(i64::MAX),
                generated_at,
            }),
            Partial::ByDay(rows) => Numbers::ByDay(Rows { rows, generated_at }),
            Partial::Barbers(rows) => Numbers::Barbers(Rows { rows, generated_at }),
            Partial::Services(mut rows) => {
                // As `services` orders them.
                rows.sort_by(|a, b| {
                    (b.revenue_cents, b.bookings, a.service_id).cmp(&(
                        a.revenue_cents,
                        a.bookings,
                        b.service_id,
                    ))
                });
                Numbers::Services(Rows { rows, generated_at })
            }
            Partial::PeakHours(mut rows) => {
                rows.retain(|h| h.bookings > 0);
                Numbers::PeakHours(Rows { rows, generated_at })
            }
        }
    }
}

/// The UTC offset in seconds of `tz` at the instant `at` (Unix seconds).
fn offset_at(tz: Tz, at: i64) -> i64 {
    DateTime::from_timestamp(at, 0).map_or(0, |t| {
        i64::from(tz.offset_from_utc_datetime(&t.naive_utc()).fix().local_minus_utc())
    })
}

/// Shop-local days and hours of instants within a range: the UTC offsets
/// in force over it and the instants they change, found once.
struct LocalClock {
    /// `(from, offset)`: the offset in seconds from that instant on.
    offsets: Vec<(i64, i64)>,
    /// The naive local midnight starting the range, in Unix seconds.
    origin: i64,
}

impl LocalClock {
    fn new(range: &Range) -> Self {
        let (start, end) = (range.starts.timestamp(), range.ends.timestamp());
        let mut offsets = vec![(start, offset_at(range.tz, start))];
        let mut at = start;
        while at < end {
            let next = (at + 86_400).min(end);
            let current = offsets.last().map_or(0, |o| o.1);
            if offset_at(range.tz, next) == current {
                at = next;
                continue;
            }
            // The first second of the new offset.
            let (mut before, mut after) = (at, next);
            while after - before > 1 {
                let middle = before + (after - before) / 2;
                if offset_at(range.tz, middle) == current {
                    before = middle;
                } else {
                    after = middle;
                }
            }
            offsets.push((after, offset_at(range.tz, after)));
            at = after;
        }
        let origin = range.from.and_hms_opt(0, 0, 0).map_or(0, |t| t.and_utc().timestamp());
        Self { offsets, origin }
    }

    /// The day of the range (0 for its first) and the local hour of the
    /// instant `at` (Unix seconds); no day before the range.
    fn day_and_hour(&self, at: i64) -> (Option<usize>, u32) {
        let offset = self.offsets.iter().rev().find(|o| o.0 <= at).map_or(0, |o| o.1);
        let local = at + offset - self.origin;
        let day = usize::try_from(local.div_euclid(86_400)).ok();
        let hour = u32::try_from(local.rem_euclid(86_400) / 3600).unwrap_or(0);
        (day, hour)
    }
}

/// The columns of a booking the sections need.
struct BookingRow {
    starts: i64,
    ends: i64,
    barber_id: i64,
    service_id: i64,
    client_id: i64,
    status: String,
    price_cents: i64,
}

/// Every section's partial of each of `dates` (sorted, within `span`), in
/// their order, each in [`Section::ALL`]'s order. One statement reads the
/// columns the sections need of the span's bookings, and the barbers and
/// their hours (where three statements at once kept three connections
/// busy); the time off is read beside it, to the microsecond, as the
/// definitions read it. Everything is summed here in one pass. Columns
/// are read by place: by `perf`, reading the rows through
/// `FromQueryResult`, by column name, was a third of the CPU of a cold
/// year. Grouping in the database would not shrink the rows (a day's
/// partial keeps its clients, so there is about a group per booking), and
/// a six-column `GROUP BY` took PostgreSQL 17 ms for a shop-year where the
/// scan took 2.
#[tracing::instrument(skip_all, fields(shop.id = shop_id, days = dates.len()))]
pub async fn day_partials(
    db: &impl ConnectionTrait,
    shop_id: i64,
    span: &Range,
    dates: &[NaiveDate],
) -> Result<Vec<[Partial; 5]>, DbErr> {
    let backend = db.get_database_backend();
    let sql = format!(
        "SELECT 0 AS kind, {starts} AS a, {ends} AS b, barber_id, service_id AS c, \
                client_id AS d, status, price_cents AS e \
         FROM bookings WHERE {IN_RANGE} \
         UNION ALL \
         SELECT 1, opens_minute, closes_minute, barber_id, weekday, 0, NULL, 0 \
         FROM working_hours WHERE barber_id IN ({BARBERS}) \
         UNION ALL \
         SELECT 2, 0, 0, id, 0, 0, NULL, 0 FROM barbers WHERE shop_id = $1",
        ends = epoch(backend, "ends_at"),
        starts = epoch(backend, "starts_at"),
    );
    let read = db.query_all_raw(statement(backend, &sql, params(shop_id, span)));
    let (read, time_off) = tokio::try_join!(read, Schedule::time_off(db, shop_id, span))?;
    let mut rows = Vec::with_capacity(read.len());
    let mut schedule = Schedule::default();
    for row in &read {
        let kind: i32 = row.try_get_by_index(0)?;
        let (a, b, barber_id, c): (i64, i64, i64, i64) = (
            row.try_get_by_index(1)?,
            row.try_get_by_index(2)?,
            row.try_get_by_index(3)?,
            row.try_get_by_index(4)?,
        );
        match kind {
            0 => rows.push(BookingRow {
                starts: a,
                ends: b,
                barber_id,
                service_id: c,
                client_id: row.try_get_by_index(5)?,
                status: row.try_get_by_index(6)?,
                price_cents: row.try_get_by_index(7)?,
            }),
            1 => schedule.hours.push(Interval {
                barber_id,
                weekday: i16::try_from(c).unwrap_or(0),
                opens_minute: i32::try_from(a).unwrap_or(0),
                closes_minute: i32::try_from(b).unwrap_or(0),
            }),
            _ => schedule.barbers.push(barber_id),
        }
    }
    schedule.time_off = time_off;
    let available = schedule.available_by_day(span, dates);
    let local = LocalClock::new(span);
    // The place in `dates` of each day of the span.
    let span_days = usize::try_from((span.to - span.from).num_days() + 1).unwrap_or(0);
    let mut places: Vec<Option<usize>> = vec![None; span_days];
    for (i, date) in dates.iter().enumerate() {
        if let Some(place) =
            usize::try_from((*date - span.from).num_days()).ok().and_then(|d| places.get_mut(d))
        {
            *place = Some(i);
        }
    }
    let n = dates.len();
    let mut tallies = vec![Tally::default(); n];
    let mut clients: Vec<Vec<(i64, i64)>> = vec![Vec::new(); n];
    let mut totals = vec![(0, 0); n];
    let mut services: Vec<Vec<ServiceNumbers>> = vec![Vec::new(); n];
    let mut hours: Vec<Vec<PeakHour>> = vec![Vec::new(); n];
    let mut barbers: Vec<BTreeMap<i64, BarberNumbers>> = available
        .iter()
        .map(|minutes| {
            minutes
                .iter()
                .map(|(barber_id, available_minutes)| {
                    let numbers = BarberNumbers {
                        barber_id: *barber_id,
                        tally: Tally::default(),
                        available_minutes: *available_minutes,
                    };
                    (*barber_id, numbers)
                })
                .collect()
        })
        .collect();
    for row in rows {
        let (day, hour) = local.day_and_hour(row.starts);
        let Some(i) = day.and_then(|d| places.get(d).copied().flatten()) else {
            continue;
        };
        let completed_revenue = if row.status == "COMPLETED" { row.price_cents } else { 0 };
        if row.status != "CANCELLED" {
            clients[i].push((row.client_id, 1));
        }
        totals[i].0 += 1;
        totals[i].1 += completed_revenue;
        services[i].push(ServiceNumbers {
            service_id: row.service_id,
            bookings: 1,
            revenue_cents: completed_revenue,
        });
        hours[i].push(PeakHour {
            weekday: dates[i].weekday().number_from_monday(),
            hour,
            bookings: 1,
        });
        let status = StatusRow {
            owner: row.barber_id,
            status: row.status,
            bookings: 1,
            revenue: row.price_cents,
            minutes: (row.ends - row.starts) / 60,
        };
        tallies[i].add(&status);
        if let Some(numbers) = barbers[i].get_mut(&row.barber_id) {
            numbers.tally.add(&status);
        }
    }
    let mut days = Vec::with_capacity(n);
    for i in 0..n {
        let summary = Partial::Summary {
            tally: std::mem::take(&mut tallies[i]),
            available_minutes: available[i].values().sum(),
            clients: coalesce(std::mem::take(&mut clients[i])),
        };
        let by_day = Partial::ByDay(vec![Day {
            date: dates[i],
            bookings: totals[i].0,
            revenue_cents: totals[i].1,
        }]);
        let barbers = Partial::Barbers(std::mem::take(&mut barbers[i]).into_values().collect());
        let services = Partial::Services(coalesce(std::mem::take(&mut services[i])));
        let peaks = Partial::PeakHours(coalesce(std::mem::take(&mut hours[i])));
        days.push([summary, by_day, barbers, services, peaks]);
    }
    Ok(days)
}
