//! A shop's dashboard: the analytics sections over a range of shop-local
//! dates, each read through the cache on first use in a request and only
//! then, so a client that asks for one number computes one section.
//!
//! Entries live in the shared byte cache under keys that hold the shop's
//! analytics version; a write that changes a shop's numbers bumps it (see
//! [`super::change::Effects`]), so an entry is never read after the data
//! under it changed.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
};

use sea_orm::{DatabaseConnection, DbErr};
use serde::{Serialize, de::DeserializeOwned};
use tokio::sync::OnceCell;

use super::analytics::{self, BarberNumbers, Day, PeakHour, Range, Rows, ServiceNumbers, Summary};
use crate::{
    cache::{Cache, Lookup},
    error::{AppError, AppResult},
};

/// Bumped when the layout of cached sections changes, so that replicas of
/// two releases sharing one Redis never read each other's entries.
const FORMAT: u32 = 1;

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
}

/// What happened to one section's lookup, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Served from the cache.
    Hit,
    /// Computed and stored.
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

/// The analytics kept in the byte cache, with counts of how lookups went;
/// cheap to clone.
#[derive(Clone, Debug)]
pub struct AnalyticsCache {
    cache: Cache,
    stats: Arc<Mutex<HashMap<(Section, Outcome), u64>>>,
}

/// The version scope of a shop's analytics. Its Redis key,
/// `{prefix}:analytics:version:{shop}`, is the one earlier releases used,
/// so replicas of both bump and read one version during a rolling deploy.
fn scope(shop_id: i64) -> String {
    format!("analytics:version:{shop_id}")
}

impl AnalyticsCache {
    pub fn new(cache: Cache) -> Self {
        Self { cache, stats: Arc::default() }
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

    /// How often `section` had `outcome` in this process.
    pub fn stat(&self, section: Section, outcome: Outcome) -> u64 {
        self.stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(section, outcome))
            .copied()
            .unwrap_or(0)
    }

    /// Makes every cached section of `shop_id` stale.
    pub async fn invalidate_shop(&self, shop_id: i64) {
        self.cache.bump(&scope(shop_id)).await;
    }

    /// The shop's analytics version; `None` when the cache cannot say.
    async fn version(&self, shop_id: i64) -> Option<u64> {
        self.cache.version(&scope(shop_id)).await.ok()
    }

    /// `section` of `shop_id` over `range` at `version`, from the cache or
    /// from `compute`.
    async fn get<T, F>(
        &self,
        version: Option<u64>,
        shop_id: i64,
        range: &Range,
        section: Section,
        compute: F,
    ) -> AppResult<T>
    where
        T: Serialize + DeserializeOwned,
        F: Future<Output = Result<T, DbErr>>,
    {
        let Some(version) = version else {
            for outcome in Outcome::of(Lookup::Fallback) {
                self.count(section, *outcome);
            }
            return Ok(compute.await?);
        };
        let key = format!(
            "analytics:f{FORMAT}:{shop_id}:v{version}:{}..{}:{}",
            range.from,
            range.to,
            section.name()
        );
        // Boxed: a section's computation is a large future, and with the
        // cache's own futures around it a debug build's stack runs out.
        let computation = Box::pin(async {
            let value = compute.await?;
            serde_json::to_vec(&value).map_err(|e| {
                AppError::Internal(anyhow::anyhow!("serialising {}: {e}", section.name()))
            })
        });
        let decode = |bytes: &[u8]| serde_json::from_slice::<T>(bytes).ok();
        let (value, lookup) = self.cache.get_or_compute(&key, decode, computation).await?;
        for outcome in Outcome::of(lookup) {
            self.count(section, *outcome);
        }
        Ok(value)
    }
}

/// A shop's numbers over `from..=to` (shop-local dates), by booking start.
pub struct Dashboard {
    db: DatabaseConnection,
    cache: AnalyticsCache,
    shop_id: i64,
    range: Range,
    /// The shop's cache version, read once for all sections.
    version: OnceCell<Option<u64>>,
    summary: OnceCell<Summary>,
    by_day: OnceCell<Rows<Day>>,
    barbers: OnceCell<Rows<BarberNumbers>>,
    services: OnceCell<Rows<ServiceNumbers>>,
    peak_hours: OnceCell<Rows<PeakHour>>,
}

impl Dashboard {
    pub fn new(db: DatabaseConnection, cache: AnalyticsCache, shop_id: i64, range: Range) -> Self {
        Self {
            db,
            cache,
            shop_id,
            range,
            version: OnceCell::new(),
            summary: OnceCell::new(),
            by_day: OnceCell::new(),
            barbers: OnceCell::new(),
            services: OnceCell::new(),
            peak_hours: OnceCell::new(),
        }
    }

    pub fn range(&self) -> &Range {
        &self.range
    }

    /// A section through the cache, once per dashboard.
    async fn section<'a, T, F, Fut>(
        &'a self,
        cell: &'a OnceCell<T>,
        section: Section,
        compute: F,
    ) -> AppResult<&'a T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(&'a DatabaseConnection, i64, &'a Range) -> Fut,
        Fut: Future<Output = Result<T, DbErr>>,
    {
        cell.get_or_try_init(|| async {
            let version = *self.version.get_or_init(|| self.cache.version(self.shop_id)).await;
            let computation = compute(&self.db, self.shop_id, &self.range);
            Box::pin(self.cache.get(version, self.shop_id, &self.range, section, computation)).await
        })
        .await
    }

    pub async fn summary(&self) -> AppResult<&Summary> {
        self.section(&self.summary, Section::Summary, |db, shop, range| {
            analytics::summary(db, shop, range)
        })
        .await
    }

    pub async fn by_day(&self) -> AppResult<&[Day]> {
        let rows = self
            .section(&self.by_day, Section::ByDay, |db, shop, range| {
                analytics::by_day(db, shop, range)
            })
            .await?;
        Ok(&rows.rows)
    }

    pub async fn barbers(&self) -> AppResult<&[BarberNumbers]> {
        let rows = self
            .section(&self.barbers, Section::Barbers, |db, shop, range| {
                analytics::barbers(db, shop, range)
            })
            .await?;
        Ok(&rows.rows)
    }

    pub async fn services(&self) -> AppResult<&[ServiceNumbers]> {
        let rows = self
            .section(&self.services, Section::Services, |db, shop, range| {
                analytics::services(db, shop, range)
            })
            .await?;
        Ok(&rows.rows)
    }

    pub async fn peak_hours(&self) -> AppResult<&[PeakHour]> {
        let rows = self
            .section(&self.peak_hours, Section::PeakHours, |db, shop, range| {
                analytics::peak_hours(db, shop, range)
            })
            .await?;
        Ok(&rows.rows)
    }
}
