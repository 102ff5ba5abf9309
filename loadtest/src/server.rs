//! The server's own view of a run, from `/metrics` read before and after.

use std::collections::BTreeMap;

use prometheus_parse::{Scrape, Value};

/// Counters as they moved during the run, and gauges at its end.
#[derive(Debug, Default)]
pub struct ServerView {
    /// GraphQL requests by outcome (`ok`, `error`).
    pub requests: BTreeMap<String, f64>,
    /// GraphQL errors by code.
    pub errors: BTreeMap<String, f64>,
    /// Rate-limit refusals by limiter.
    pub refusals: BTreeMap<String, f64>,
    /// Requests refused with 503 `OVERLOADED` (no turn came free).
    pub overloaded: f64,
    /// Analytics cache lookups by outcome (`hit`, `miss`, `error`, `fallback`).
    pub cache: BTreeMap<String, f64>,
    /// Days behind analytics sections by where they came from (`cached`,
    /// `recomputed`).
    pub cache_days: BTreeMap<String, f64>,
    /// Mean time the server spent on a GraphQL request, in seconds.
    pub mean_request_secs: Option<f64>,
    /// Database pool connections at the end, by state.
    pub pool: BTreeMap<String, f64>,
    /// Whether the cache reported itself degraded at the end.
    pub cache_degraded: Option<bool>,
}

fn parse(text: &str) -> Option<Scrape> {
    Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).ok()
}

fn scalar(value: &Value) -> Option<f64> {
    match value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(*v),
        _ => None,
    }
}

/// Sums of `metric` by the value of `label`.
fn by_label(scrape: &Scrape, metric: &str, label: &str) -> BTreeMap<String, f64> {
    let mut sums = BTreeMap::new();
    for sample in scrape.samples.iter().filter(|s| s.metric == metric) {
        if let Some(v) = scalar(&sample.value) {
            let key = sample.labels.get(label).unwrap_or("").to_owned();
            *sums.entry(key).or_default() += v;
        }
    }
    sums
}

fn total(scrape: &Scrape, metric: &str) -> f64 {
    by_label(scrape, metric, "").values().sum()
}

fn delta(after: BTreeMap<String, f64>, before: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .into_iter()
        .map(|(key, v)| {
            let moved = v - before.get(&key).copied().unwrap_or(0.0);
            (key, moved)
        })
        .filter(|(_, moved)| *moved > 0.0)
        .collect()
}

impl ServerView {
    /// The change between two `/metrics` texts; `None` when either does not
    /// parse.
    pub fn between(before: &str, after: &str) -> Option<Self> {
        let (before, after) = (parse(before)?, parse(after)?);
        let moved = |metric: &str, label: &str| {
            delta(by_label(&after, metric, label), &by_label(&before, metric, label))
        };
        let duration = "bookedbarber_graphql_request_duration_seconds";
        let count = total(&after, &format!("{duration}_count"))
            - total(&before, &format!("{duration}_count"));
        let sum =
            total(&after, &format!("{duration}_sum")) - total(&before, &format!("{duration}_sum"));
        let degraded = by_label(&after, "bookedbarber_cache_degraded", "");
        Some(Self {
            requests: moved("bookedbarber_graphql_requests_total", "outcome"),
            errors: moved("bookedbarber_graphql_errors_total", "code"),
            refusals: moved("bookedbarber_rate_limit_refusals_total", "limiter"),
            overloaded: total(&after, "bookedbarber_overload_refusals_total")
                - total(&before, "bookedbarber_overload_refusals_total"),
            cache: moved("bookedbarber_analytics_cache_total", "outcome"),
            cache_days: moved("bookedbarber_analytics_days_total", "outcome"),
            mean_request_secs: (count > 0.0).then(|| sum / count),
            pool: by_label(&after, "bookedbarber_db_pool_connections", "state"),
            cache_degraded: degraded.values().next().map(|v| *v > 0.0),
        })
    }

    /// Hits over all analytics cache lookups.
    pub fn cache_hit_ratio(&self) -> Option<f64> {
        let lookups: f64 = self.cache.values().sum();
        (lookups > 0.0).then(|| self.cache.get("hit").copied().unwrap_or(0.0) / lookups)
    }

    /// Days served from the cache over all days the sections needed.
    pub fn cache_day_ratio(&self) -> Option<f64> {
        let days: f64 = self.cache_days.values().sum();
        (days > 0.0).then(|| self.cache_days.get("cached").copied().unwrap_or(0.0) / days)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_moved() {
        let before = "# TYPE bookedbarber_analytics_cache_total counter\n\
            bookedbarber_analytics_cache_total{section=\"summary\",outcome=\"hit\"} 5\n\
            bookedbarber_analytics_cache_total{section=\"summary\",outcome=\"miss\"} 2\n";
        let after = "# TYPE bookedbarber_analytics_cache_total counter\n\
            bookedbarber_analytics_cache_total{section=\"summary\",outcome=\"hit\"} 14\n\
            bookedbarber_analytics_cache_total{section=\"peaks\",outcome=\"hit\"} 1\n\
            bookedbarber_analytics_cache_total{section=\"summary\",outcome=\"miss\"} 4\n\
            # TYPE bookedbarber_analytics_days_total counter\n\
            bookedbarber_analytics_days_total{section=\"summary\",outcome=\"cached\"} 90\n\
            bookedbarber_analytics_days_total{section=\"summary\",outcome=\"recomputed\"} 10\n\
            # TYPE bookedbarber_rate_limit_refusals_total counter\n\
            bookedbarber_rate_limit_refusals_total{limiter=\"request\"} 3\n\
            # TYPE bookedbarber_overload_refusals_total counter\n\
            bookedbarber_overload_refusals_total 7\n";
        let view = ServerView::between(before, after).unwrap();
        assert_eq!(view.cache.get("hit"), Some(&10.0));
        assert_eq!(view.cache.get("miss"), Some(&2.0));
        assert_eq!(view.cache_hit_ratio(), Some(10.0 / 12.0));
        assert_eq!(view.cache_day_ratio(), Some(0.9));
        assert_eq!(view.refusals.get("request"), Some(&3.0));
        assert_eq!(view.overloaded, 7.0);
    }
}
