//! The Markdown report: KPIs with pass or fail, every operation's latency
//! and failures, the server's own view, and the correctness check.

use std::{collections::BTreeMap, fmt::Write};

use chrono::{DateTime, Utc};
use goose::metrics::GooseMetrics;

use crate::{
    cli::Options,
    fault::{Bucket, Effect},
    gql::{ABUSIVE_SCENARIO, FailureTable, is_expected_refusal, split_name},
    ledger::Verdict,
    server::ServerView,
};

/// The p95 latency the original report set as the target, in ms.
pub const P95_TARGET_MS: usize = 200;
/// The highest error rate the original report allowed.
pub const ERROR_RATE_TARGET: f64 = 0.001;

/// Everything a report is made from.
#[derive(Debug)]
pub struct Facts<'a> {
    pub options: &'a Options,
    pub started: DateTime<Utc>,
    pub prepare_secs: f64,
    pub shops: usize,
    pub barbers: usize,
    pub metrics: &'a GooseMetrics,
    pub failures: FailureTable,
    /// The measured operations ([`rows`] of the metrics and failures).
    pub rows: Vec<Row>,
    pub server: Option<ServerView>,
    pub ready: Option<String>,
    /// `None` when the scenario does not book.
    pub verdict: Option<Verdict>,
    /// What the injected fault did, when there was one.
    pub fault: Option<Effect>,
}

/// One measured operation.
#[derive(Debug, Default, Clone)]
pub struct Row {
    pub scenario: String,
    pub operation: String,
    pub requests: usize,
    /// Failures that count against the error rate.
    pub errors: u64,
    /// Refusals that are the system working: lost races, the scraper's 429s.
    pub refusals: u64,
    /// Response times in ms (goose rounds those over 100 ms) -> count.
    pub times: BTreeMap<usize, usize>,
    pub max_ms: usize,
}

impl Row {
    fn merge(&mut self, other: &Row) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.refusals += other.refusals;
        for (ms, n) in &other.times {
            *self.times.entry(*ms).or_default() += n;
        }
        self.max_ms = self.max_ms.max(other.max_ms);
    }

    /// The `p`-th percentile (0..=1), in ms.
    pub fn percentile(&self, p: f64) -> usize {
        let total: usize = self.times.values().sum();
        if total == 0 {
            return 0;
        }
        let rank = ((p * total as f64).ceil() as usize).clamp(1, total);
        let mut seen = 0;
        for (ms, n) in &self.times {
            seen += n;
            if seen >= rank {
                return *ms;
            }
        }
        self.max_ms
    }

    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 { 0.0 } else { self.errors as f64 / self.requests as f64 }
    }
}

/// The measured operations, from goose's metrics and the failure tally.
pub fn rows(metrics: &GooseMetrics, failures: &FailureTable) -> Vec<Row> {
    let mut rows: Vec<Row> = metrics
        .requests
        .iter()
        .map(|(key, aggregate)| {
            // Goose keys requests as "METHOD name"; ours are "scenario op".
            let name = key.split_once(' ').map_or(key.as_str(), |(_, name)| name);
            let (scenario, operation) = split_name(name);
            let (mut errors, mut refusals) = (0, 0);
            for (code, failures) in failures.get(name).into_iter().flatten() {
                if is_expected_refusal(scenario, operation, code) {
                    refusals += failures.count;
                } else {
                    errors += failures.count;
                }
            }
            Row {
                scenario: scenario.to_owned(),
                operation: operation.to_owned(),
                requests: aggregate.raw_data.counter,
                errors,
                refusals,
                times: aggregate.raw_data.times.clone(),
                max_ms: aggregate.raw_data.maximum_time,
            }
        })
        .collect();
    rows.sort_by(|a, b| (&a.scenario, &a.operation).cmp(&(&b.scenario, &b.operation)));
    rows
}

/// All requests of the well-behaved users (the scraper is judged apart).
pub fn overall(rows: &[Row]) -> Row {
    let mut all = Row { operation: "all".to_owned(), ..Row::default() };
    for row in rows.iter().filter(|r| r.scenario != ABUSIVE_SCENARIO) {
        all.merge(row);
    }
    all
}

/// Whether the KPIs and the correctness check passed.
pub fn passed(rows: &[Row], verdict: Option<&Verdict>) -> (bool, bool) {
    let all = overall(rows);
    let kpis = all.requests > 0
        && all.percentile(0.95) < P95_TARGET_MS
        && all.error_rate() < ERROR_RATE_TARGET;
    (kpis, verdict.is_none_or(Verdict::passed))
}

fn verdict_word(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

fn percent(rate: f64) -> String {
    format!("{:.3} %", rate * 100.0)
}

/// Writes the report, section by section.
pub fn render(facts: &Facts<'_>) -> String {
    let all = overall(&facts.rows);
    let secs = facts.metrics.duration.max(1) as f64;
    let mut out = String::new();
    write_settings(&mut out, facts);
    write_kpis(&mut out, facts, &all);
    write_throughput(&mut out, facts, &all, secs);
    write_operations(&mut out, &facts.rows, secs);
    write_failures(&mut out, &facts.failures);
    write_server(&mut out, facts.server.as_ref());
    if let Some(effect) = &facts.fault {
        write_fault(&mut out, effect);
    }
    write_correctness(&mut out, facts.verdict.as_ref());
    write_files(&mut out);
    out
}

/// The title and the run's settings: target, load, think time, fixture.
fn write_settings(w: &mut String, facts: &Facts<'_>) {
    let o = facts.options;
    let _ = writeln!(w, "# BookedBarber load test: `{}`, {} users\n", o.scenario.name(), o.users);
    let _ = writeln!(w, "| | |\n|---|---|");
    let _ = writeln!(w, "| Target | {} |", o.target.join(", "));
    let _ = writeln!(w, "| Started | {} |", facts.started.format("%Y-%m-%d %H:%M:%S UTC"));
    let _ = writeln!(
        w,
        "| Load | {} users, started over {}, then held for {} ({} s measured in all) |",
        o.users,
        humantime::format_duration(o.ramp_up),
        humantime::format_duration(o.duration),
        facts.metrics.duration
    );
    let _ = writeln!(
        w,
        "| Think time | {} to {} between steps (the scraper: 25 to 40 ms) |",
        humantime::format_duration(o.think_min),
        humantime::format_duration(o.think_max)
    );
    let _ = writeln!(
        w,
        "| Prepared | {} shops, {} barbers with accounts, in {:.1} s |",
        facts.shops, facts.barbers, facts.prepare_secs
    );
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let _ = writeln!(w, "| Load generator | {cores} CPU cores, goose |");
    if let Some(ready) = &facts.ready {
        let _ = writeln!(w, "| Server `/ready` at the start | `{}` |", ready.trim());
    }
}

/// The KPIs against their targets (`all`: the well-behaved users'
/// requests), and what the error rate leaves out.
fn write_kpis(w: &mut String, facts: &Facts<'_>, all: &Row) {
    let (kpis_ok, check_ok) = passed(&facts.rows, facts.verdict.as_ref());
    let _ = writeln!(w, "\n## KPIs: {}\n", verdict_word(kpis_ok && check_ok));
    let _ = writeln!(w, "| KPI | Target | Measured | Result |\n|---|---|---|---|");
    let p95 = all.percentile(0.95);
    let _ = writeln!(
        w,
        "| p95 latency, all requests | < {P95_TARGET_MS} ms | {p95} ms | {} |",
        verdict_word(p95 < P95_TARGET_MS)
    );
    let rate = all.error_rate();
    let _ = writeln!(
        w,
        "| Error rate | < {} | {} ({} of {}) | {} |",
        percent(ERROR_RATE_TARGET),
        percent(rate),
        all.errors,
        all.requests,
        verdict_word(all.requests > 0 && rate < ERROR_RATE_TARGET)
    );
    if let Some(verdict) = &facts.verdict {
        let _ = writeln!(
            w,
            "| Bookings: none lost, doubled or overlapping | all | {} confirmed to users, {} stored | {} |",
            verdict.expected,
            verdict.stored,
            verdict_word(verdict.passed())
        );
    }
    let _ = writeln!(
        w,
        "\nLatency is measured by goose from sending a request to its response's headers; it rounds \
         times over 100 ms to 10 ms and over 500 ms to 100 ms. The error rate leaves out refusals \
         that are the system keeping its promises: `CONFLICT` (a slot or email just taken), a barber's \
         payment refused because the booking changed since their screen loaded, and the scraper's \
         `RATE_LIMITED`; a 429 to any other user counts as an error. The scraper's \
         requests are left out of the KPIs."
    );
}

/// Requests, latency, errors and refusals by scenario, then of `all` the
/// well-behaved users together, over `secs` measured.
fn write_throughput(w: &mut String, facts: &Facts<'_>, all: &Row, secs: f64) {
    let _ = writeln!(w, "\n## Throughput\n");
    let _ = writeln!(
        w,
        "| Scenario | Users | Requests | Requests/s | p50 | p95 | p99 | Errors | Refused |"
    );
    let _ = writeln!(w, "|---|---|---|---|---|---|---|---|---|");
    let mut by_scenario: BTreeMap<&str, Row> = BTreeMap::new();
    for row in &facts.rows {
        by_scenario.entry(row.scenario.as_str()).or_default().merge(row);
    }
    for (name, row) in &by_scenario {
        let users =
            facts.metrics.scenarios.iter().find(|s| s.name == *name).map_or(0, |s| s.users.len());
        let _ = writeln!(
            w,
            "| {name} | {users} | {} | {:.1} | {} ms | {} ms | {} ms | {} | {} |",
            row.requests,
            row.requests as f64 / secs,
            row.percentile(0.5),
            row.percentile(0.95),
            row.percentile(0.99),
            row.errors,
            row.refusals
        );
    }
    let _ = writeln!(
        w,
        "| **all but the scraper** | | {} | {:.1} | {} ms | {} ms | {} ms | {} | {} |",
        all.requests,
        all.requests as f64 / secs,
        all.percentile(0.5),
        all.percentile(0.95),
        all.percentile(0.99),
        all.errors,
        all.refusals
    );
}

/// Every operation's rate, latency and error rate, over `secs` measured.
fn write_operations(w: &mut String, rows: &[Row], secs: f64) {
    let _ = writeln!(w, "\n## Operations\n");
    let _ = writeln!(
        w,
        "| Scenario | Operation | Requests | Requests/s | p50 | p95 | p99 | Max | Error rate |"
    );
    let _ = writeln!(w, "|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        let _ = writeln!(
            w,
            "| {} | `{}` | {} | {:.1} | {} ms | {} ms | {} ms | {} ms | {} |",
            row.scenario,
            row.operation,
            row.requests,
            row.requests as f64 / secs,
            row.percentile(0.5),
            row.percentile(0.95),
            row.percentile(0.99),
            row.max_ms,
            percent(row.error_rate())
        );
    }
}

/// Every failure by operation and code, and whether it counts as an error
/// or as an expected refusal: decided as [`rows`] decides it for the KPIs.
fn write_failures(w: &mut String, table: &FailureTable) {
    let _ = writeln!(w, "\n## Failures by code\n");
    if table.is_empty() {
        let _ = writeln!(w, "None: every request succeeded.");
    } else {
        let _ = writeln!(
            w,
            "| Operation | Code | Count | Counted as | First message |\n|---|---|---|---|---|"
        );
        for (name, codes) in table {
            let (scenario, operation) = split_name(name);
            for (code, failures) in codes {
                let kind = if is_expected_refusal(scenario, operation, code) {
                    "refusal (expected)"
                } else {
                    "error"
                };
                let example = failures.example.replace('|', "\\|");
                let _ = writeln!(
                    w,
                    "| `{name}` | `{code}` | {} | {kind} | {example} |",
                    failures.count
                );
            }
        }
    }
}

/// What the server's `/metrics` moved by over the run, when they could be
/// read.
fn write_server(w: &mut String, server: Option<&ServerView>) {
    let _ = writeln!(w, "\n## The server's view (`/metrics`, change over the run)\n");
    match server {
        None => {
            let _ = writeln!(w, "`/metrics` could not be read.");
        }
        Some(view) => {
            let list = |map: &BTreeMap<String, f64>| {
                if map.is_empty() {
                    "none".to_owned()
                } else {
                    map.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", ")
                }
            };
            let _ = writeln!(w, "| | |\n|---|---|");
            let _ = writeln!(w, "| GraphQL requests by outcome | {} |", list(&view.requests));
            let _ = writeln!(w, "| GraphQL errors by code | {} |", list(&view.errors));
            let _ = writeln!(w, "| Rate-limit refusals by limiter | {} |", list(&view.refusals));
            let _ = writeln!(
                w,
                "| Refused as `OVERLOADED` (no turn came free) | {} |",
                view.overloaded
            );
            let ratio = view
                .cache_hit_ratio()
                .map_or("no analytics lookups".to_owned(), |r| format!("{:.1} %", r * 100.0));
            let days = view
                .cache_day_ratio()
                .map_or("no analytics days".to_owned(), |r| format!("{:.1} %", r * 100.0));
            // The day is what the cache keeps and a write invalidates.
            let _ = writeln!(
                w,
                "| Analytics cache hit ratio (days served from the cache, per section and day) | {days} ({}) |",
                list(&view.cache_days)
            );
            let _ = writeln!(
                w,
                "| Analytics sections served whole from the cache | {ratio} ({}) |",
                list(&view.cache)
            );
            if let Some(mean) = view.mean_request_secs {
                let _ =
                    writeln!(w, "| Mean time in the server per request | {:.2} ms |", mean * 1e3);
            }
            let _ = writeln!(w, "| Database pool at the end | {} |", list(&view.pool));
            if let Some(degraded) = view.cache_degraded {
                let _ = writeln!(
                    w,
                    "| Cache at the end | {} |",
                    if degraded { "degraded" } else { "healthy" }
                );
            }
        }
    }
}

/// The fault section: the window, what users got around it, the recovery.
fn write_fault(w: &mut String, effect: &Effect) {
    let window = effect.window;
    let _ = writeln!(w, "\n## Fault: the database cut off\n");
    let _ = writeln!(
        w,
        "Every connection between the server and its database was cut, and new ones refused, from \
         {:.1} s to {:.1} s after the load started ({:.1} s).\n",
        window.from.as_secs_f64(),
        window.to.as_secs_f64(),
        (window.to - window.from).as_secs_f64()
    );
    let line = |bucket: &Bucket| {
        let failed: u64 = bucket.failed.values().sum();
        let codes = if bucket.failed.is_empty() {
            "none".to_owned()
        } else {
            bucket.failed.iter().map(|(c, n)| format!("`{c}` {n}")).collect::<Vec<_>>().join(", ")
        };
        format!("{} | {failed} | {codes}", bucket.ok)
    };
    let _ = writeln!(w, "| When | Answered | Failed | Failures by code |\n|---|---|---|---|");
    let _ = writeln!(w, "| Before the cut | {} |", line(&effect.before));
    let _ = writeln!(w, "| While cut off | {} |", line(&effect.during));
    let _ = writeln!(w, "| After it came back | {} |", line(&effect.after));
    let recovered = effect.recovered_after.map_or("never, within the run".to_owned(), |d| {
        format!("{:.1} s after the database came back", d.as_secs_f64())
    });
    let _ = writeln!(
        w,
        "\nServing again (the first tenth of a second with answers and no outage failures): \
         {recovered}. The KPIs above include the outage; the promise under test is the bookings \
         check below: nothing lost or doubled, whatever the users were told."
    );
}

/// The bookings check: what the users were told against what is stored,
/// with the first findings of each kind.
fn write_correctness(w: &mut String, verdict: Option<&Verdict>) {
    let _ = writeln!(w, "\n## Correctness after the run\n");
    match verdict {
        None => {
            let _ = writeln!(w, "Not checked: this scenario makes no bookings.");
        }
        Some(v) => {
            let _ = writeln!(
                w,
                "Read back every booking of the prepared shops as their owners and compared them with \
                 what the users were told. **{}**\n",
                verdict_word(v.passed())
            );
            let _ = writeln!(w, "| Check | Found |\n|---|---|");
            let _ = writeln!(w, "| Bookings confirmed to users | {} |", v.expected);
            let _ = writeln!(w, "| Bookings stored in the prepared shops | {} |", v.stored);
            let _ = writeln!(w, "| Lost (confirmed, not stored) | {} |", v.lost.len());
            let _ = writeln!(
                w,
                "| Doubled or unexplained (stored, never confirmed; beyond {} creates of unknown outcome) | {} |",
                v.unknown_creates, v.unexplained
            );
            let _ = writeln!(
                w,
                "| Status, time or payments differ from what users were told | {} |",
                v.mismatched.len()
            );
            let _ =
                writeln!(w, "| Overlapping active bookings of one barber | {} |", v.overlaps.len());
            let _ = writeln!(
                w,
                "| Active bookings inside the shop's buffer | {} |",
                v.buffer_violations.len()
            );
            let _ = writeln!(
                w,
                "| Changes of unknown outcome (lost, cut off or internal error; not compared) | {} |",
                v.uncertain
            );
            for (id, told, has) in v.mismatched.iter().take(10) {
                let _ = writeln!(w, "\n- `{id}`: told {told}, stored {has}");
            }
            for (barber, a, b) in v.overlaps.iter().chain(&v.buffer_violations).take(10) {
                let _ = writeln!(w, "\n- barber `{barber}`: `{a}` and `{b}` collide");
            }
            for id in v.lost.iter().take(10) {
                let _ = writeln!(w, "\n- lost: `{id}`");
            }
        }
    }
}

/// Where goose's own reports are.
fn write_files(w: &mut String) {
    let _ = writeln!(
        w,
        "\n## Files\n\n- `goose.html`: goose's report, with charts over time\n- `goose.json`: goose's metrics"
    );
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use goose::{
        metrics::{GooseRequestMetricAggregate, GooseRequestMetricTimingData},
        prelude::GooseMethod,
    };

    use super::*;
    use crate::gql::Failures;

    /// Goose's aggregate of `count` requests named `name` (`scenario op`),
    /// each answered in `ms`, under the key goose gives it.
    fn measured(name: &str, count: usize, ms: usize) -> (String, GooseRequestMetricAggregate) {
        let timing = GooseRequestMetricTimingData {
            times: BTreeMap::from([(ms, count)]),
            minimum_time: ms,
            maximum_time: ms,
            total_time: ms * count,
            counter: count,
        };
        let aggregate = GooseRequestMetricAggregate {
            path: "/graphql".to_owned(),
            method: GooseMethod::Post,
            raw_data: timing,
            coordinated_omission_data: None,
            status_code_counts: HashMap::new(),
            success_count: count,
            fail_count: 0,
            load_test_hash: 0,
        };
        (format!("POST {name}"), aggregate)
    }

    /// The tally of `(operation, code, count, first message)`.
    fn tally(failures: &[(&str, &str, u64, &str)]) -> FailureTable {
        let mut table = FailureTable::new();
        for &(name, code, count, example) in failures {
            let failure = Failures { count, example: example.to_owned() };
            table.entry(name.to_owned()).or_default().insert(code.to_owned(), failure);
        }
        table
    }

    /// The "Counted as" cell of the failures of `name` with `code`.
    fn counted_as<'r>(report: &'r str, name: &str, code: &str) -> Option<&'r str> {
        let start = format!("| `{name}` | `{code}` | ");
        let line = report.lines().find(|line| line.starts_with(&start))?;
        line.split(" | ").nth(3)
    }

    #[test]
    fn failures_are_counted_as_the_kpis_count_them() {
        let mut metrics = GooseMetrics::default();
        metrics.requests.extend([
            measured("abuse availableSlots", 60, 5),
            measured("book availableSlots", 100, 20),
            measured("book createBooking", 50, 30),
            measured("staff recordPayment", 20, 10),
        ]);
        let failures = tally(&[
            ("abuse availableSlots", "RATE_LIMITED", 40, "too many requests"),
            ("book availableSlots", "RATE_LIMITED", 2, "too many requests"),
            ("book createBooking", "CONFLICT", 5, "that time is already booked"),
            ("book createBooking", "INTERNAL_SERVER_ERROR", 1, "internal error"),
            ("staff recordPayment", "BAD_USER_INPUT", 3, "the booking was cancelled"),
        ]);
        let options = Options::new("http://127.0.0.1:8080");
        let measured_rows = rows(&metrics, &failures);
        let facts = Facts {
            options: &options,
            started: Utc::now(),
            prepare_secs: 1.0,
            shops: 2,
            barbers: 4,
            metrics: &metrics,
            failures,
            rows: measured_rows,
            server: None,
            ready: None,
            verdict: None,
            fault: None,
        };
        let report = render(&facts);

        let refusal = Some("refusal (expected)");
        assert_eq!(counted_as(&report, "staff recordPayment", "BAD_USER_INPUT"), refusal);
        assert_eq!(counted_as(&report, "abuse availableSlots", "RATE_LIMITED"), refusal);
        assert_eq!(counted_as(&report, "book createBooking", "CONFLICT"), refusal);
        assert_eq!(counted_as(&report, "book availableSlots", "RATE_LIMITED"), Some("error"));
        assert_eq!(
            counted_as(&report, "book createBooking", "INTERNAL_SERVER_ERROR"),
            Some("error")
        );
        // Every operation's row counts what the table says, code by code.
        for row in &facts.rows {
            let name = format!("{} {}", row.scenario, row.operation);
            let (mut errors, mut refusals) = (0, 0);
            for (code, failure) in facts.failures.get(&name).into_iter().flatten() {
                match counted_as(&report, &name, code) {
                    Some("error") => errors += failure.count,
                    Some("refusal (expected)") => refusals += failure.count,
                    other => panic!("`{name}` `{code}` counted as {other:?}\n{report}"),
                }
            }
            assert_eq!((row.errors, row.refusals), (errors, refusals), "{name}");
        }
        // The well-behaved users' errors: the 429 to a client and the
        // internal error; the scraper's requests are left out.
        assert_eq!(overall(&facts.rows).errors, 3);
        assert!(
            report.contains("| Error rate | < 0.100 % | 1.765 % (3 of 170) | FAIL |"),
            "{report}"
        );
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let row = Row {
            requests: 100,
            times: BTreeMap::from([(1, 50), (2, 40), (30, 9), (250, 1)]),
            max_ms: 251,
            ..Row::default()
        };
        assert_eq!(row.percentile(0.5), 1);
        assert_eq!(row.percentile(0.9), 2);
        assert_eq!(row.percentile(0.95), 30);
        assert_eq!(row.percentile(0.99), 30);
        assert_eq!(row.percentile(1.0), 250);
    }
}
