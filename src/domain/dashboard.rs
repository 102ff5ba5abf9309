//! A shop's dashboard: the analytics sections over a range of shop-local
//! dates, each read through the cache on first use in a request and only
//! then, so a client that asks for one number computes one section.
//!
//! Two layers of entries live in the shared byte cache:
//!
//! - **Day parts**: each section's share of one shop-local day
//!   ([`analytics::DayPart`]), under a key holding that day's version. A
//!   write bumps the versions of the days it touched only (the old and new
//!   day of a reschedule, the day of a paid booking, the days of a time
//!   off); a change that moves every day (working hours, the time zone, a
//!   new barber) bumps the shop's base version, which every key holds.
//! - **Sections**: a section over a range, combined from its days' parts,
//!   under a key holding a digest of all those versions, so a repeated
//!   dashboard reads one entry per section.
//!
//! A section whose days are all cached costs no SQL; missing days are
//! computed in one statement per section, whichever days they are.
//!
//! A version bump that cannot reach Redis raises the shop's analytics mark
//! in the database instead. Every dashboard reads the shop row, and every
//! key holds the mark, so no replica reads an entry older than the write,
//! even one that never noticed Redis was away.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
};

use chrono::{DateTime, NaiveDate, Utc};
use entity::shop;
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
        self, BarberNumbers, Day, DayPart, Numbers, PeakHour, Range, ServiceNumbers, Summary,
    },
    local_time,
};
use crate::{
    cache::{Cache, Lookup},
    error::{AppError, AppResult},
};

/// Bumped when the layout of cached entries changes, so that replicas of
/// two releases sharing one Redis never read each other's entries.
const FORMAT: u32 = 2;

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

    fn of(lookup: Lookup) -> &'static [Outcome] {
        match lookup {
            Lookup::Hit => &[Outcome::Hit],
            Lookup::Miss => &[Outcome::Miss],
            Lookup::MissUnstored => &[Outcome::Error, Outcome::Miss],
            Lookup::Fallback => &[Outcome::Error, Outcome::Fallback],
        }
    }
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
    stats: Arc<Mutex<HashMap<(Section, Outcome), u64>>>,
    days: Arc<Mutex<HashMap<(Section, DayOutcome), u64>>>,
}

/// The version scope every key of a shop holds. Its Redis key,
/// `{prefix}:analytics:version:{shop}`, is the one earlier releases used,
/// so replicas of both bump and read one version during a rolling deploy.
fn base_scope(shop_id: i64) -> String {
    format!("analytics:version:{shop_id}")
}

/// The version scope of one shop-local day of a shop.
fn day_scope(shop_id: i64, date: NaiveDate) -> String {
    format!("analytics:day:{shop_id}:{date}")
}

/// A day part and when it was computed, as cached.
#[derive(Serialize, Deserialize)]
struct Part {
    at: DateTime<Utc>,
    part: DayPart,
}

impl AnalyticsCache {
    /// Kept in `cache`; `db` holds the shops' time zones and marks.
    pub fn new(cache: Cache, db: DatabaseConnection) -> Self {
        Self { cache, db, stats: Arc::default(), days: Arc::default() }
    }

    fn count(&self, section: Section, outcome: Outcome) {
        metrics::counter!(
            "bookedbarber_analytics_cache_total",
            "section" => section.name(),
            "outcome" => outcome.as_str()
        )
        .increment(1);
        *self
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((section, outcome))
            .or_default() += 1;
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
        *self
            .days
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((section, outcome))
            .or_default() += days;
    }

    /// How often `section` had `outcome` in this process.
    pub fn stat(&self, section: Section, outcome: Outcome) -> u64 {
        self.stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(section, outcome))
            .copied()
            .unwrap_or(0)
    }

    /// How many days' parts of `section` had `outcome` in this process.
    pub fn day_stat(&self, section: Section, outcome: DayOutcome) -> u64 {
        self.days
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(section, outcome))
            .copied()
            .unwrap_or(0)
    }

    /// Makes every cached entry of `shop_id` stale.
    pub async fn invalidate_shop(&self, shop_id: i64) {
        if !self.cache.bump(&base_scope(shop_id)).await {
            self.raise_mark(shop_id).await;
        }
    }

    /// Makes stale the shop-local days of `shop_id` that the instants
    /// `from..=to` of each span fall on (a booking's start is a span of
    /// one instant).
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
        let mut dates = BTreeSet::new();
        for (from, to) in spans {
            let (first, last) =
                (from.with_timezone(&tz).date_naive(), to.with_timezone(&tz).date_naive());
            dates.extend(first.iter_days().take_while(|d| *d <= last));
        }
        let mut reached = true;
        for date in dates {
            reached &= self.cache.bump(&day_scope(shop_id, date)).await;
        }
        if !reached {
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

    /// The shop's base version and the version of each day of `range`; `None`
    /// when the cache cannot say.
    async fn versions(&self, shop_id: i64, range: &Range) -> Option<Versions> {
        let scopes: Vec<String> = std::iter::once(base_scope(shop_id))
            .chain(range.dates().map(|date| day_scope(shop_id, date)))
            .collect();
        let read = self.cache.versions(&scopes).await.ok()?;
        let base = match read.first().copied().flatten() {
            Some(base) => base,
            // First use, or Redis lost its data: a new random base, so no
            // copy kept from before can match.
            None => self.cache.version(&scopes[0]).await.ok()?,
        };
        Some(Versions { base, days: read[1..].iter().map(|v| v.unwrap_or(0)).collect() })
    }
}

/// The versions a dashboard's keys hold.
struct Versions {
    base: u64,
    /// One per date of the range, in order.
    days: Vec<u64>,
}

/// A shop's numbers over `from..=to` (shop-local dates), by booking start.
pub struct Dashboard {
    db: DatabaseConnection,
    cache: AnalyticsCache,
    shop_id: i64,
    mark: i64,
    range: Range,
    /// Read once for all sections.
    versions: OnceCell<Option<Versions>>,
    sections: [OnceCell<Numbers>; 5],
}

impl Dashboard {
    /// `shop`'s dashboard over `range`; `shop` as just read from the
    /// database (its mark is part of every key).
    pub fn new(
        db: DatabaseConnection,
        cache: AnalyticsCache,
        shop: &shop::Model,
        range: Range,
    ) -> Self {
        Self {
            db,
            cache,
            shop_id: shop.id,
            mark: shop.analytics_mark,
            range,
            versions: OnceCell::new(),
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
                let versions = self
                    .versions
                    .get_or_init(|| self.cache.versions(self.shop_id, &self.range))
                    .await;
                let Some(versions) = versions else {
                    for outcome in Outcome::of(Lookup::Fallback) {
                        self.cache.count(section, *outcome);
                    }
                    let numbers =
                        analytics::from_scratch(&self.db, self.shop_id, section, &self.range);
                    return Ok(Box::pin(numbers).await?);
                };
                let mut digest = Sha256::new();
                for version in &versions.days {
                    digest.update(version.to_be_bytes());
                }
                let digest = digest.finalize();
                let key = format!(
                    "{}:{}..{}:{}:{}",
                    self.prefix(versions.base),
                    self.range.from,
                    self.range.to,
                    hex(&digest[..16]),
                    section.name()
                );
                // Boxed: a section's computation is a large future, and
                // with the cache's own futures around it a debug build's
                // stack runs out.
                let computation = Box::pin(async {
                    let numbers = self.combined(section, versions).await?;
                    serde_json::to_vec(&numbers).map_err(|e| {
                        AppError::Internal(anyhow::anyhow!("serialising {}: {e}", section.name()))
                    })
                });
                let decode = |bytes: &[u8]| serde_json::from_slice::<Numbers>(bytes).ok();
                let (numbers, lookup) =
                    self.cache.cache.get_or_compute(&key, decode, computation).await?;
                for outcome in Outcome::of(lookup) {
                    self.cache.count(section, *outcome);
                }
                if lookup == Lookup::Hit {
                    // Every day of the range came from the cache, combined.
                    let days = self.range.dates().count();
                    self.cache.count_days(section, DayOutcome::Cached, days);
                }
                Ok(numbers)
            })
            .await
    }

    /// `section` combined from its days' parts, computing the missing ones
    /// in one go and caching them.
    async fn combined(&self, section: Section, versions: &Versions) -> AppResult<Numbers> {
        let dates: Vec<NaiveDate> = self.range.dates().collect();
        let prefix = self.prefix(versions.base);
        let keys: Vec<String> = dates
            .iter()
            .zip(&versions.days)
            .map(|(date, version)| format!("{prefix}:d{date}:v{version}:{}", section.name()))
            .collect();
        let cached = self.cache.cache.read_many(&keys).await.unwrap_or_default();
        let mut parts: Vec<Option<Part>> = (0..dates.len())
            .map(|i| {
                cached
                    .get(i)
                    .and_then(Option::as_deref)
                    .and_then(|bytes| serde_json::from_slice::<Part>(bytes).ok())
            })
            .collect();
        let missing: Vec<usize> = (0..dates.len()).filter(|i| parts[*i].is_none()).collect();
        if let (Some(first), Some(last)) = (missing.first(), missing.last()) {
            let span = self.range.part(dates[*first], dates[*last]).ok_or_else(|| {
                AppError::Internal(anyhow::anyhow!("a date of a valid range has no bounds"))
            })?;
            let wanted: Vec<NaiveDate> = missing.iter().map(|i| dates[*i]).collect();
            let computed =
                analytics::day_parts(&self.db, self.shop_id, section, &span, &wanted).await?;
            let at = Utc::now();
            let mut entries = Vec::with_capacity(missing.len());
            for (i, part) in missing.iter().zip(computed) {
                let part = Part { at, part };
                if let Ok(bytes) = serde_json::to_vec(&part) {
                    entries.push((keys[*i].clone(), bytes));
                }
                parts[*i] = Some(part);
            }
            // A part the cache could not keep is computed again next time.
            let _ = self.cache.cache.write_many(&entries).await;
        }
        self.cache.count_days(section, DayOutcome::Cached, dates.len() - missing.len());
        self.cache.count_days(section, DayOutcome::Recomputed, missing.len());
        let generated_at = parts.iter().flatten().map(|p| p.at).max().unwrap_or_else(Utc::now);
        let parts: Vec<(NaiveDate, &DayPart)> = dates
            .iter()
            .zip(&parts)
            .filter_map(|(date, part)| Some((*date, &part.as_ref()?.part)))
            .collect();
        if parts.len() != dates.len() {
            return Err(AppError::Internal(anyhow::anyhow!("a day of the range has no part")));
        }
        analytics::combine(section, &parts, generated_at).ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!("a cached day part of another section"))
        })
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
