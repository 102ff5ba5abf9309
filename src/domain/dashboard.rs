//! A shop's dashboard: the analytics sections over a range of shop-local
//! dates, each read through the cache on first use in a request and only
//! then, so a client that asks for one number reads one section's entry.
//!
//! Three layers of entries live in the shared byte cache, in a compact
//! binary form, holding [`analytics::Partial`]s (forms that add up):
//!
//! - **Days**: all five sections' partials of one shop-local day, under a
//!   key holding that day's version. A write bumps the versions of the
//!   days it touched only (the old and new day of a reschedule, the day of
//!   a paid booking, the days of a time off) and of their months; a change
//!   that moves every day (working hours, the time zone, a new barber)
//!   bumps the shop's base version, which every key holds.
//! - **Months**: a whole calendar month's days merged, under a key holding
//!   the month's version, so a year reads twelve entries and a write today
//!   makes one month be merged again from its days.
//! - **Sections**: a section over a range, under a key holding a digest of
//!   the versions of its months and other days, so a repeated dashboard
//!   reads one entry per section.
//!
//! All versions of a shop live in one hash, read in one `HMGET`. One script
//! then reads the sections' entries and, when one is missing, the months'
//! and the days' of the months not cached (`Cache::read_cascade`), so a
//! warm dashboard costs two round trips (one when every section is kept in
//! process), and so does a dashboard after a write before it computes.
//! A write makes every section miss at once, so on a miss all five are
//! merged together, once for concurrent dashboards of the same versions;
//! days not cached cost one statement for all of them, whichever days they
//! are, and everything made is stored in one pipeline.
//!
//! A version bump that cannot reach Redis raises the shop's analytics mark
//! in the database instead. Every dashboard reads the shop row, and every
//! key holds the mark, so no replica reads an entry older than the write,
//! even one that never noticed Redis was away.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use entity::shop;
use futures_util::FutureExt;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
    sea_query::{Expr, ExprTrait},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

pub use super::analytics::Section;
use super::{
    analytics::{
        self, BarberNumbers, Day, Numbers, Partial, PeakHour, Range, ServiceNumbers, Summary,
    },
    local_time,
};
use crate::{
    cache::{Cache, Entry, Fallback, Versioned},
    db::replica::{Freshness, ReadRoute},
    error::{AppError, AppResult},
};

/// Bumped when the layout of cached entries changes, so that replicas of
/// two releases sharing one Redis never read each other's entries.
const FORMAT: u32 = 4;

/// What happened to one section's lookup, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Served from the cache.
    Hit,
    /// Computed (from cached days where it could) and stored.
    Miss,
    /// A cache operation failed.
    Error,
    /// Answered from the database because the cache was unavailable.
    Fallback,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Error => "error",
            Outcome::Fallback => "fallback",
        }
    }

    fn of(source: Source) -> &'static [Outcome] {
        match source {
            Source::Cache => &[Outcome::Hit],
            Source::Computed { stored: true } => &[Outcome::Miss],
            Source::Computed { stored: false } => &[Outcome::Error, Outcome::Miss],
            Source::Database => &[Outcome::Error, Outcome::Fallback],
        }
    }
}

/// Where a section's numbers came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// Its cached entry, or a computation another caller made.
    Cache,
    /// Merged here from cached and computed partials; `stored` when the
    /// cache took the result.
    Computed { stored: bool },
    /// Computed from the bookings: the cache could not be read.
    Database,
}

/// Where one day of a section's range came from, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DayOutcome {
    /// The cache: its part, or the section combined.
    Cached,
    /// Its part was computed from the bookings.
    Recomputed,
}

impl DayOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            DayOutcome::Cached => "cached",
            DayOutcome::Recomputed => "recomputed",
        }
    }
}

/// The analytics kept in the byte cache, what makes them stale, and counts
/// of how lookups went; cheap to clone.
#[derive(Clone, Debug)]
pub struct AnalyticsCache {
    cache: Cache,
    db: DatabaseConnection,
    /// How long day and month partials are kept: their keys hold their
    /// versions, so they are never stale, and a past day rarely changes.
    partial_ttl: Duration,
    stats: Arc<Mutex<HashMap<(Section, Outcome), u64>>>,
    days: Arc<Mutex<HashMap<(Section, DayOutcome), u64>>>,
}

/// The hash of a shop's analytics versions, `{prefix}:analytics:days:{shop}`:
/// field `base` (every key holds it), `m{YYYY-MM}` for each month and
/// `d{YYYY-MM-DD}` for each day that was ever bumped. One `HMGET` reads a
/// dashboard's versions; a day's bump also bumps its month's.
fn versions_scope(shop_id: i64) -> String {
    format!("analytics:days:{shop_id}")
}

const BASE: &str = "base";

fn month_field(date: NaiveDate) -> String {
    format!("m{}", date.format("%Y-%m"))
}

fn day_field(date: NaiveDate) -> String {
    format!("d{date}")
}

/// Every section's partial of some days (in [`Section::ALL`]'s order), and
/// when the newest of them was computed, as cached.
#[derive(Clone, Serialize, Deserialize)]
struct Kept {
    #[serde(with = "chrono::serde::ts_nanoseconds")]
    at: DateTime<Utc>,
    partials: [Partial; 5],
}

impl Kept {
    /// The partials of all of `kept`'s days merged, as new as the newest.
    fn merge<'a>(kept: impl IntoIterator<Item = &'a Kept>) -> AppResult<Kept> {
        let kept: Vec<&Kept> = kept.into_iter().collect();
        let at = kept.iter().map(|k| k.at).max().unwrap_or_else(Utc::now);
        let mut partials = Vec::with_capacity(Section::ALL.len());
        for section in Section::ALL {
            let parts = kept.iter().map(|k| &k.partials[section.index()]);
            partials.push(Partial::merge(section, parts).ok_or_else(mixed)?);
        }
        let partials = partials.try_into().map_err(|_| mixed())?;
        Ok(Kept { at, partials })
    }
}

fn mixed() -> AppError {
    AppError::Internal(anyhow::anyhow!("a cached partial of another section"))
}

/// Entries in a compact binary form: a year of days is read and written
/// as thousands of them.
fn encode<T: Serialize>(value: &T) -> Option<Vec<u8>> {
    postcard::to_stdvec(value).ok()
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    postcard::from_bytes(bytes).ok()
}

/// The index ranges of `dates` (consecutive) that are whole calendar months.
fn whole_months(dates: &[NaiveDate]) -> Vec<std::ops::Range<usize>> {
    let mut months = Vec::new();
    let mut start = 0;
    for i in 1..=dates.len() {
        if i < dates.len() && dates[i].month() == dates[start].month() {
            continue;
        }
        let (first, last) = (dates[start], dates[i - 1]);
        let next_month_starts = last.succ_opt().is_none_or(|next| next.day() == 1);
        if first.day() == 1 && next_month_starts {
            months.push(start..i);
        }
        start = i;
    }
    months
}

/// A digest of versions, for a key naming them all.
fn digest(versions: impl IntoIterator<Item = u64>) -> String {
    let mut digest = Sha256::new();
    for version in versions {
        digest.update(version.to_be_bytes());
    }
    format!("{:x}", digest.finalize())
}

/// Adds `n` to the count of `key`.
fn add_count<K: Eq + std::hash::Hash>(counts: &Mutex<HashMap<K, u64>>, key: K, n: u64) {
    *counts.lock().unwrap_or_else(|e| e.into_inner()).entry(key).or_default() += n;
}

/// The count of `key`.
fn count_of<K: Eq + std::hash::Hash>(counts: &Mutex<HashMap<K, u64>>, key: &K) -> u64 {
    counts.lock().unwrap_or_else(|e| e.into_inner()).get(key).copied().unwrap_or(0)
}

impl AnalyticsCache {
    /// Kept in `cache`, day and month partials for `partial_ttl`; `db`
    /// holds the shops' time zones and marks.
    pub fn new(cache: Cache, db: DatabaseConnection, partial_ttl: Duration) -> Self {
        Self { cache, db, partial_ttl, stats: Arc::default(), days: Arc::default() }
    }

    fn count(&self, section: Section, outcome: Outcome) {
        metrics::counter!(
            "bookedbarber_analytics_cache_total",
            "section" => section.name(),
            "outcome" => outcome.as_str()
        )
        .increment(1);
        add_count(&self.stats, (section, outcome), 1);
    }

    fn count_days(&self, section: Section, outcome: DayOutcome, days: usize) {
        if days == 0 {
            return;
        }
        let days = u64::try_from(days).unwrap_or(u64::MAX);
        metrics::counter!(
            "bookedbarber_analytics_days_total",
            "section" => section.name(),
            "outcome" => outcome.as_str()
        )
        .increment(days);
        add_count(&self.days, (section, outcome), days);
    }

    /// How often `section` had `outcome` in this process.
    pub fn stat(&self, section: Section, outcome: Outcome) -> u64 {
        count_of(&self.stats, &(section, outcome))
    }

    /// How many days' parts of `section` had `outcome` in this process.
    pub fn day_stat(&self, section: Section, outcome: DayOutcome) -> u64 {
        count_of(&self.days, &(section, outcome))
    }

    /// Makes every cached entry of `shop_id` stale.
    pub async fn invalidate_shop(&self, shop_id: i64) {
        if !self.cache.bump_fields(&versions_scope(shop_id), &[BASE.to_owned()]).await {
            self.raise_mark(shop_id).await;
        }
    }

    /// Makes stale the shop-local days of `shop_id` that the instants
    /// `from..=to` of each span fall on (a booking's start is a span of
    /// one instant), and their months.
    pub async fn invalidate_spans(&self, shop_id: i64, spans: &[(DateTime<Utc>, DateTime<Utc>)]) {
        // The time zone as committed now: a change of it bumps the base
        // version after this write's commit, so days read in either zone
        // are covered.
        let tz = match shop::Entity::find_by_id(shop_id).one(&self.db).await {
            Ok(Some(shop)) => local_time::zone(&shop.timezone),
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, shop.id = shop_id, "reading a shop's time zone to invalidate its days; invalidating all of them");
                return self.invalidate_shop(shop_id).await;
            }
        };
        let mut fields = BTreeSet::new();
        for (from, to) in spans {
            let (first, last) =
                (from.with_timezone(&tz).date_naive(), to.with_timezone(&tz).date_naive());
            for date in first.iter_days().take_while(|d| *d <= last) {
                fields.insert(day_field(date));
                fields.insert(month_field(date));
            }
        }
        let fields: Vec<String> = fields.into_iter().collect();
        if !self.cache.bump_fields(&versions_scope(shop_id), &fields).await {
            self.raise_mark(shop_id).await;
        }
    }

    /// Records in the database that a write to `shop_id` could not make
    /// its entries stale in the cache: every key holds the mark.
    async fn raise_mark(&self, shop_id: i64) {
        let raised = shop::Entity::update_many()
            .col_expr(shop::Column::AnalyticsMark, Expr::col(shop::Column::AnalyticsMark).add(1))
            .filter(shop::Column::Id.eq(shop_id))
            .exec(&self.db)
            .await;
        match raised {
            Ok(_) => tracing::warn!(
                shop.id = shop_id,
                "the cache missed an invalidation; raised the shop's analytics mark"
            ),
            Err(error) => {
                tracing::error!(%error, shop.id = shop_id, "neither the cache nor the database took an invalidation; entries expire by their TTL")
            }
        }
    }

    /// The versions `range`'s keys hold, in one read: the base, its whole
    /// months' and its other days'; `None` when the cache cannot say.
    async fn versions(&self, shop_id: i64, range: &Range) -> Option<Versions> {
        let dates: Vec<NaiveDate> = range.dates().collect();
        let months = whole_months(&dates);
        let outside: Vec<usize> =
            (0..dates.len()).filter(|i| !months.iter().any(|m| m.contains(i))).collect();
        let fields: Vec<String> = std::iter::once(BASE.to_owned())
            .chain(months.iter().map(|m| month_field(dates[m.start])))
            .chain(outside.iter().map(|i| day_field(dates[*i])))
            .collect();
        let scope = versions_scope(shop_id);
        let read = self.cache.fields(&scope, &fields).await.ok()?;
        let base = match read.first().copied().flatten() {
            Some(base) => base,
            // First use, or Redis lost its data: a new random base, so no
            // copy kept from before can match.
            None => self.cache.field_version(&scope, BASE).await.ok()?,
        };
        let mut days = vec![None; dates.len()];
        for (i, version) in outside.iter().zip(&read[1 + months.len()..]) {
            days[*i] = Some(version.unwrap_or(0));
        }
        let months = months.into_iter().zip(&read[1..]).map(|(m, v)| (m, v.unwrap_or(0))).collect();
        Some(Versions { base, months, days })
    }
}

/// The versions a dashboard's keys hold.
struct Versions {
    base: u64,
    /// The range's whole calendar months (places in its dates) and their
    /// versions.
    months: Vec<(std::ops::Range<usize>, u64)>,
    /// The version of each date of the range outside whole months; dates
    /// in them are read only when their month must be merged again.
    days: Vec<Option<u64>>,
}

impl Versions {
    /// A digest of every version the range's sections depend on.
    fn digest(&self) -> String {
        digest(self.months.iter().map(|m| m.1).chain(self.days.iter().flatten().copied()))
    }
}

/// What the cache held for a dashboard when it was first read.
struct Read {
    versions: Versions,
    /// The prefix of the keys of the range's sections at these versions.
    dashboard_key: String,
    section_keys: Vec<String>,
    /// Each section's entry (in [`Section::ALL`]'s order), `None` when
    /// missing.
    sections: Vec<Option<Vec<u8>>>,
    month_keys: Vec<String>,
    /// Each whole month's entry, `None` when missing or not read (every
    /// section was there).
    months: Vec<Option<Vec<u8>>>,
    /// For each date of the range read with the sections (a day of a
    /// month not cached, or outside whole months): its version and entry.
    days: Vec<Option<Versioned>>,
}

/// A shop's numbers over `from..=to` (shop-local dates), by booking start.
pub struct Dashboard {
    /// Where its reads go (the replica when it may serve them).
    route: Arc<ReadRoute>,
    cache: AnalyticsCache,
    shop_id: i64,
    mark: i64,
    range: Range,
    /// What the cache holds for the range, read once for all sections;
    /// `None` when it cannot be read.
    read: OnceCell<Option<Read>>,
    /// Every section, merged once when any of them misses.
    all: OnceCell<([Numbers; 5], Source)>,
    sections: [OnceCell<Numbers>; 5],
}

impl Dashboard {
    /// `shop`'s dashboard over `range`; `shop` as just read from the
    /// database (its mark is part of every key).
    pub fn new(
        route: Arc<ReadRoute>,
        cache: AnalyticsCache,
        shop: &shop::Model,
        range: Range,
    ) -> Self {
        Self {
            route,
            cache,
            shop_id: shop.id,
            mark: shop.analytics_mark,
            range,
            read: OnceCell::new(),
            all: OnceCell::new(),
            sections: Default::default(),
        }
    }

    pub fn range(&self) -> &Range {
        &self.range
    }

    /// The key prefix of the shop's entries at `base`.
    fn prefix(&self, base: u64) -> String {
        format!("analytics:f{FORMAT}:{}:m{}:b{base}", self.shop_id, self.mark)
    }

    /// A section through the cache, once per dashboard.
    async fn numbers(&self, section: Section) -> AppResult<&Numbers> {
        self.sections[section.index()]
            .get_or_try_init(|| async {
                let Some(read) = self.read.get_or_init(|| self.read_cached()).await else {
                    for outcome in Outcome::of(Source::Database) {
                        self.cache.count(section, *outcome);
                    }
                    // Not kept, and not shared with other requests.
                    return self.computed(section, Freshness::Shown).await;
                };
                let kept = read.sections[section.index()].as_deref().and_then(decode::<Numbers>);
                let (numbers, source) = match kept {
                    Some(numbers) => (numbers, Source::Cache),
                    None => {
                        // Boxed: the computation is a large future, and
                        // with the cache's own futures around it a debug
                        // build's stack runs out.
                        let (all, source) = self
                            .all
                            .get_or_try_init(|| Box::pin(self.shared_sections(read)))
                            .await?;
                        (all[section.index()].clone(), *source)
                    }
                };
                for outcome in Outcome::of(source) {
                    self.cache.count(section, *outcome);
                }
                if source == Source::Cache {
                    // Every day of the range came from the cache, combined
                    // (or its days were counted by the computation shared).
                    let days = self.range.dates().count();
                    self.cache.count_days(section, DayOutcome::Cached, days);
                }
                Ok(numbers)
            })
            .await
    }

    /// The versions the range depends on, then what the cache holds for
    /// it, in one more round trip: its sections' entries; when one is
    /// missing, also its whole months' partials, and the days' of each
    /// month not cached and of the days outside whole months. Copies kept
    /// in process are used where they are enough: every section, or a
    /// month.
    async fn read_cached(&self) -> Option<Read> {
        let versions = self.cache.versions(self.shop_id, &self.range).await?;
        let dates: Vec<NaiveDate> = self.range.dates().collect();
        let prefix = self.prefix(versions.base);
        let dashboard_key =
            format!("{prefix}:{}..{}:{}", self.range.from, self.range.to, versions.digest());
        let section_keys: Vec<String> = Section::ALL
            .iter()
            .map(|section| format!("{dashboard_key}:{}", section.name()))
            .collect();
        let month_keys: Vec<String> = versions
            .months
            .iter()
            .map(|(m, version)| format!("{prefix}:m{}:v{version}", dates[m.start].format("%Y-%m")))
            .collect();
        let mut days = vec![None; dates.len()];
        let near = self.cache.cache.read_near(&section_keys).await;
        if near.iter().all(Option::is_some) {
            let months = vec![None; month_keys.len()];
            return Some(Read {
                versions,
                dashboard_key,
                section_keys,
                sections: near,
                month_keys,
                months,
                days,
            });
        }
        let mut months = self.cache.cache.read_near(&month_keys).await;
        // Each month not kept in process, then its days; the days outside
        // whole months.
        let mut fallbacks = Vec::new();
        let mut covers = Vec::new();
        for (place, ((month, _), key)) in versions.months.iter().zip(&month_keys).enumerate() {
            if months[place].is_none() {
                let fields = month.clone().map(|i| day_field(dates[i])).collect();
                fallbacks.push(Fallback { key: Some(key.clone()), fields });
                covers.push((Some(place), month.clone().collect::<Vec<usize>>()));
            }
        }
        let outside: Vec<usize> =
            (0..dates.len()).filter(|i| versions.days[*i].is_some()).collect();
        if !outside.is_empty() {
            let fields = outside.iter().map(|i| day_field(dates[*i])).collect();
            fallbacks.push(Fallback { key: None, fields });
            covers.push((None, outside));
        }
        let scope = versions_scope(self.shop_id);
        let read = self
            .cache
            .cache
            .read_cascade(&section_keys, &scope, &format!("{prefix}:"), &fallbacks)
            .await
            .ok()?;
        for ((month, places), (value, fields)) in
            covers.iter().zip(read.fallbacks.into_iter().flatten())
        {
            if let Some(month) = month {
                months[*month] = value;
            }
            for (i, day) in places.iter().zip(fields) {
                days[*i] = Some(day);
            }
        }
        let sections = read.first.into_iter().zip(near).map(|(far, near)| far.or(near)).collect();
        Some(Read { versions, dashboard_key, section_keys, sections, month_keys, months, days })
    }

    /// Every section over the range, computed once for concurrent
    /// dashboards of the same versions.
    async fn shared_sections(&self, read: &Read) -> AppResult<([Numbers; 5], Source)> {
        let source = Mutex::new(Source::Cache);
        let computation = async {
            let (all, made) = self.all_sections(read).await?;
            *source.lock().unwrap_or_else(|e| e.into_inner()) = made;
            // Whether the numbers came from the database, so that callers
            // who share them count them as such.
            encode(&(made == Source::Database, all))
                .ok_or_else(|| AppError::Internal(anyhow::anyhow!("serialising the sections")))
        };
        let (bytes, computed) = self.cache.cache.share(&read.dashboard_key, computation).await?;
        let (database, all) = decode::<(bool, [Numbers; 5])>(&bytes).ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!("cannot read the sections just computed"))
        })?;
        let source = match (computed, database) {
            (true, _) => source.into_inner().unwrap_or_else(|e| e.into_inner()),
            (false, true) => Source::Database,
            (false, false) => Source::Cache,
        };
        Ok((all, source))
    }

    /// Every section over the range, merged from the partials of its whole
    /// calendar months and of its other days: a month not cached is merged
    /// from its days, and the days not cached are computed in one go. Once
    /// for all sections: a write makes all of them stale together, so they
    /// miss together. Stores what it made with the sections, and says
    /// whether the cache took it, or that the numbers came from the
    /// bookings alone because the cache went away.
    async fn all_sections(&self, read: &Read) -> AppResult<([Numbers; 5], Source)> {
        let versions = &read.versions;
        let dates: Vec<NaiveDate> = self.range.dates().collect();
        let prefix = self.prefix(versions.base);
        let mut month_parts: Vec<Option<Kept>> =
            read.months.iter().map(|bytes| bytes.as_deref().and_then(decode::<Kept>)).collect();
        // The days of the months not cached, and the days outside whole
        // months: their versions and partials, each pair read together after
        // the versions the keys hold (so never older than those).
        let unkept = versions.months.iter().zip(&month_parts).filter(|(_, kept)| kept.is_none());
        let mut needed: Vec<usize> = unkept.flat_map(|((m, _), _)| m.clone()).collect();
        needed.extend((0..dates.len()).filter(|i| versions.days[*i].is_some()));
        needed.sort_unstable();
        // Each needed day's version and entry: read with the sections, or
        // now (a month's entry was read but had expired).
        let unread: Vec<usize> =
            needed.iter().copied().filter(|i| read.days[*i].is_none()).collect();
        let read_now = if unread.is_empty() {
            Vec::new()
        } else {
            let fields: Vec<String> = unread.iter().map(|i| day_field(dates[*i])).collect();
            let scope = versions_scope(self.shop_id);
            let Ok(read) =
                self.cache.cache.read_versioned(&scope, &fields, &format!("{prefix}:")).await
            else {
                // The cache went away: answered from the bookings.
                return Ok((self.all_from_scratch().await?, Source::Database));
            };
            read
        };
        // `read_now` is in the order of the days `needed` lacks.
        let mut read_now = read_now.iter();
        let mut days = vec![0; dates.len()];
        let mut day_parts: Vec<Option<Kept>> = vec![None; dates.len()];
        for i in &needed {
            if let Some((version, bytes)) = read.days[*i].as_ref().or_else(|| read_now.next()) {
                days[*i] = *version;
                day_parts[*i] = bytes.as_deref().and_then(decode::<Kept>);
            }
        }
        let day_key = |i: usize| format!("{prefix}:{}:v{}", day_field(dates[i]), days[i]);
        let missing: Vec<usize> =
            needed.iter().copied().filter(|i| day_parts[*i].is_none()).collect();
        let mut entries = Vec::new();
        let partial =
            |key: String, bytes: Vec<u8>| Entry::new(key, bytes).for_ttl(self.cache.partial_ttl);
        if let (Some(first), Some(last)) = (missing.first(), missing.last()) {
            let span = self.range.part(dates[*first], dates[*last]).ok_or_else(|| {
                AppError::Internal(anyhow::anyhow!("a date of a valid range has no bounds"))
            })?;
            let wanted: Vec<NaiveDate> = missing.iter().map(|i| dates[*i]).collect();
            // Kept under the versions read before: the replica must hold
            // every write those versions stand for.
            let shop_id = self.shop_id;
            let wanted = Arc::new(wanted);
            let computed = self
                .route
                .run(Freshness::Kept, move |db| {
                    let wanted = wanted.clone();
                    async move { analytics::day_partials(&db, shop_id, &span, &wanted).await }
                        .boxed()
                })
                .await?;
            let at = Utc::now();
            for (i, partials) in missing.iter().zip(computed) {
                let kept = Kept { at, partials };
                if let Some(bytes) = encode(&kept) {
                    // A day is read again only when its month is merged
                    // again: not worth a copy in process.
                    entries.push(partial(day_key(*i), bytes).far_only());
                }
                day_parts[*i] = Some(kept);
            }
        }
        if needed.iter().any(|i| day_parts[*i].is_none()) {
            return Err(AppError::Internal(anyhow::anyhow!("a day of the range has no part")));
        }
        for (((month, _), key), kept) in
            versions.months.iter().zip(&read.month_keys).zip(&mut month_parts)
        {
            if kept.is_some() {
                continue;
            }
            let made = Kept::merge(day_parts[month.clone()].iter().flatten())?;
            if let Some(bytes) = encode(&made) {
                entries.push(partial(key.clone(), bytes));
            }
            *kept = Some(made);
        }
        for section in Section::ALL {
            self.cache.count_days(section, DayOutcome::Cached, dates.len() - missing.len());
            self.cache.count_days(section, DayOutcome::Recomputed, missing.len());
        }
        // Each month once, and the days outside them.
        let outside = day_parts
            .iter()
            .enumerate()
            .filter(|(i, _)| versions.days[*i].is_some())
            .filter_map(|(_, kept)| kept.as_ref());
        let merged = Kept::merge(month_parts.iter().flatten().chain(outside))?;
        let all = merged.partials.map(|partial| partial.finish(merged.at));
        for (key, numbers) in read.section_keys.iter().zip(&all) {
            if let Some(bytes) = encode(numbers) {
                entries.push(Entry::new(key.clone(), bytes));
            }
        }
        // A partial the cache could not keep is computed again next time.
        let stored = self.cache.cache.write_many(entries).await.is_ok();
        Ok((all, Source::Computed { stored }))
    }

    /// `section` over the range computed from the bookings.
    async fn computed(&self, section: Section, freshness: Freshness) -> AppResult<Numbers> {
        let (shop_id, range) = (self.shop_id, self.range);
        let numbers = self.route.run(freshness, move |db| {
            async move { analytics::from_scratch(&db, shop_id, section, &range).await }.boxed()
        });
        Ok(numbers.await?)
    }

    /// Every section over the range computed at once from the bookings,
    /// for every request of these versions that shares the computation.
    async fn all_from_scratch(&self) -> AppResult<[Numbers; 5]> {
        let mut all = Vec::with_capacity(Section::ALL.len());
        for section in Section::ALL {
            all.push(self.computed(section, Freshness::Kept).await?);
        }
        all.try_into().map_err(|_| AppError::Internal(anyhow::anyhow!("five sections")))
    }

    async fn section<'a, T: ?Sized + 'a>(
        &'a self,
        section: Section,
        pick: impl Fn(&'a Numbers) -> Option<&'a T>,
    ) -> AppResult<&'a T> {
        pick(self.numbers(section).await?).ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!(
                "the cache held other numbers for {}",
                section.name()
            ))
        })
    }

    pub async fn summary(&self) -> AppResult<&Summary> {
        self.section(Section::Summary, |n| match n {
            Numbers::Summary(summary) => Some(summary),
            _ => None,
        })
        .await
    }

    pub async fn by_day(&self) -> AppResult<&[Day]> {
        self.section(Section::ByDay, |n| match n {
            Numbers::ByDay(rows) => Some(rows.rows.as_slice()),
            _ => None,
        })
        .await
    }

    pub async fn barbers(&self) -> AppResult<&[BarberNumbers]> {
        self.section(Section::Barbers, |n| match n {
            Numbers::Barbers(rows) => Some(rows.rows.as_slice()),
            _ => None,
        })
        .await
    }

    pub async fn services(&self) -> AppResult<&[ServiceNumbers]> {
        self.section(Section::Services, |n| match n {
            Numbers::Services(rows) => Some(rows.rows.as_slice()),
            _ => None,
        })
        .await
    }

    pub async fn peak_hours(&self) -> AppResult<&[PeakHour]> {
        self.section(Section::PeakHours, |n| match n {
            Numbers::PeakHours(rows) => Some(rows.rows.as_slice()),
            _ => None,
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dates(from: (i32, u32, u32), to: (i32, u32, u32)) -> Vec<NaiveDate> {
        let from = NaiveDate::from_ymd_opt(from.0, from.1, from.2).unwrap();
        let to = NaiveDate::from_ymd_opt(to.0, to.1, to.2).unwrap();
        from.iter_days().take_while(|d| *d <= to).collect()
    }

    #[test]
    fn whole_months_are_only_those_the_range_covers_entirely() {
        // 2026-01-15 ..= 2026-04-30: February, March and April.
        let days = dates((2026, 1, 15), (2026, 4, 30));
        let months = whole_months(&days);
        let firsts: Vec<(u32, u32)> =
            months.iter().map(|m| (days[m.start].month(), days[m.start].day())).collect();
        assert_eq!(firsts, [(2, 1), (3, 1), (4, 1)]);
        let lengths: Vec<usize> = months.iter().map(|m| m.len()).collect();
        assert_eq!(lengths, [28, 31, 30]);
        // Within one month, or a month less a day: none.
        assert!(whole_months(&dates((2026, 3, 1), (2026, 3, 30))).is_empty());
        assert!(whole_months(&dates((2026, 3, 2), (2026, 3, 31))).is_empty());
        assert_eq!(whole_months(&dates((2024, 2, 1), (2024, 2, 29))), vec![0..29]);
        assert!(whole_months(&[]).is_empty());
    }
}
