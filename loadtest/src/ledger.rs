//! What the virtual users were told about their bookings, and the check
//! after the run that the server agrees: nothing lost, nothing doubled, no
//! barber booked twice at once.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
};

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use crate::{api::Api, fixture::Fixture};

/// The status a booking should have, from the answers the users saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Confirmed,
    Cancelled,
    Completed,
}

impl Status {
    fn wire(self) -> &'static str {
        match self {
            Status::Confirmed => "CONFIRMED",
            Status::Cancelled => "CANCELLED",
            Status::Completed => "COMPLETED",
        }
    }
}

#[derive(Debug, Clone)]
struct Expected {
    starts_at: DateTime<Utc>,
    status: Status,
    paid_cents: i64,
    /// A change whose outcome is unknown (answer lost, or internal error).
    uncertain: bool,
}

#[derive(Debug, Default)]
struct Book {
    bookings: HashMap<String, Expected>,
    /// `createBooking` calls that may or may not have booked: the answer
    /// was lost, or was an internal error.
    unknown_creates: u64,
}

/// Every booking the server said it made, and what happened to it since.
#[derive(Debug, Default)]
pub struct Ledger(Mutex<Book>);

impl Ledger {
    fn with<T>(&self, f: impl FnOnce(&mut Book) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    pub fn booked(&self, id: &str, starts_at: DateTime<Utc>) {
        self.with(|book| {
            book.bookings.insert(
                id.to_owned(),
                Expected { starts_at, status: Status::Confirmed, paid_cents: 0, uncertain: false },
            )
        });
    }

    pub fn create_unknown(&self) {
        self.with(|book| book.unknown_creates += 1);
    }

    pub fn rescheduled(&self, id: &str, starts_at: DateTime<Utc>) {
        self.update(id, |expected| expected.starts_at = starts_at);
    }

    pub fn set_status(&self, id: &str, status: Status) {
        self.update(id, |expected| expected.status = status);
    }

    pub fn paid(&self, id: &str, amount_cents: i64) {
        self.update(id, |expected| expected.paid_cents += amount_cents);
    }

    /// A change to `id` was sent and its outcome is unknown.
    pub fn uncertain(&self, id: &str) {
        self.update(id, |expected| expected.uncertain = true);
    }

    fn update(&self, id: &str, change: impl FnOnce(&mut Expected)) {
        self.with(|book| book.bookings.get_mut(id).map(change));
    }

    pub fn len(&self) -> usize {
        self.with(|book| book.bookings.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A booking as the server has it.
#[derive(Debug, Clone)]
struct Stored {
    id: String,
    barber: String,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    status: String,
    paid_cents: i64,
}

/// What the check found.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Bookings the users were told were made.
    pub expected: usize,
    /// Bookings the server has in the prepared shops.
    pub stored: usize,
    /// Told made, not stored.
    pub lost: Vec<String>,
    /// Stored but never reported to a user (beyond creates of unknown
    /// outcome).
    pub unexplained: usize,
    pub unknown_creates: u64,
    pub uncertain: usize,
    /// `(id, what the users were told, what is stored)`.
    pub mismatched: Vec<(String, String, String)>,
    /// Active bookings of one barber that overlap, as `(barber, first, second)`.
    pub overlaps: Vec<(String, String, String)>,
    /// Active bookings closer than the shop's buffer.
    pub buffer_violations: Vec<(String, String, String)>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.lost.is_empty()
            && self.mismatched.is_empty()
            && self.overlaps.is_empty()
            && self.buffer_violations.is_empty()
            && self.unexplained == 0
    }
}

const SHOP_BOOKINGS: &str = "query($shop: ID!, $after: String) {
  bookings(shopId: $shop, first: 100, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes { id status startsAt endsAt barber { id } payments { amountCents } }
  }
}";

fn instant(value: &Value) -> anyhow::Result<DateTime<Utc>> {
    let raw = value.as_str().context("an instant that is not a string")?;
    Ok(DateTime::parse_from_rfc3339(raw)?.with_timezone(&Utc))
}

/// Reads every booking of the prepared shops, as their owners, and compares.
pub async fn check(
    api: &Api,
    fixture: &Fixture,
    ledger: &Ledger,
    buffer: Duration,
) -> anyhow::Result<Verdict> {
    let mut stored = Vec::new();
    for shop in &fixture.shops {
        let mut after: Option<String> = None;
        loop {
            let data = api
                .gql(&shop.owner, SHOP_BOOKINGS, json!({ "shop": shop.id, "after": after }))
                .await
                .with_context(|| format!("reading the bookings of {}", shop.slug))?;
            let page = &data["bookings"];
            for node in page["nodes"].as_array().into_iter().flatten() {
                stored.push(Stored {
                    id: node["id"].as_str().unwrap_or_default().to_owned(),
                    barber: node["barber"]["id"].as_str().unwrap_or_default().to_owned(),
                    starts_at: instant(&node["startsAt"])?,
                    ends_at: instant(&node["endsAt"])?,
                    status: node["status"].as_str().unwrap_or_default().to_owned(),
                    paid_cents: node["payments"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|p| p["amountCents"].as_i64())
                        .sum(),
                });
            }
            if page["pageInfo"]["hasNextPage"].as_bool() != Some(true) {
                break;
            }
            after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
        }
    }
    Ok(ledger.with(|book| compare(book, &stored, buffer)))
}

fn compare(book: &Book, stored: &[Stored], buffer: Duration) -> Verdict {
    let by_id: HashMap<&str, &Stored> = stored.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut verdict = Verdict {
        expected: book.bookings.len(),
        stored: stored.len(),
        unknown_creates: book.unknown_creates,
        uncertain: book.bookings.values().filter(|e| e.uncertain).count(),
        ..Verdict::default()
    };
    for (id, expected) in &book.bookings {
        let Some(found) = by_id.get(id.as_str()) else {
            verdict.lost.push(id.clone());
            continue;
        };
        if expected.uncertain {
            continue;
        }
        let told = format!(
            "{} at {} paid {}",
            expected.status.wire(),
            expected.starts_at.to_rfc3339(),
            expected.paid_cents
        );
        let has = format!(
            "{} at {} paid {}",
            found.status,
            found.starts_at.to_rfc3339(),
            found.paid_cents
        );
        if told != has {
            verdict.mismatched.push((id.clone(), told, has));
        }
    }
    let unexplained = stored.iter().filter(|s| !book.bookings.contains_key(&s.id)).count();
    verdict.unexplained =
        unexplained.saturating_sub(usize::try_from(book.unknown_creates).unwrap_or(usize::MAX));

    let mut by_barber: BTreeMap<&str, Vec<&Stored>> = BTreeMap::new();
    // Every booking but a cancelled one holds the barber's time, as in the
    // database's own guard.
    for booking in stored.iter().filter(|s| s.status != "CANCELLED") {
        by_barber.entry(booking.barber.as_str()).or_default().push(booking);
    }
    for (barber, mut bookings) in by_barber {
        bookings.sort_by_key(|b| b.starts_at);
        for pair in bookings.windows(2) {
            let (first, second) = (pair[0], pair[1]);
            let finding = (barber.to_owned(), first.id.clone(), second.id.clone());
            if second.starts_at < first.ends_at {
                verdict.overlaps.push(finding);
            } else if second.starts_at < first.ends_at + buffer {
                verdict.buffer_violations.push(finding);
            }
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_900_000_000, 0).unwrap_or_default()
            + Duration::minutes(minute)
    }

    fn stored(id: &str, start: i64, end: i64, status: &str) -> Stored {
        Stored {
            id: id.to_owned(),
            barber: "b".to_owned(),
            starts_at: at(start),
            ends_at: at(end),
            status: status.to_owned(),
            paid_cents: 0,
        }
    }

    #[test]
    fn finds_lost_doubled_and_overlapping_bookings() {
        let ledger = Ledger::default();
        ledger.booked("a", at(0));
        ledger.booked("lost", at(100));
        ledger.booked("c", at(200));
        ledger.set_status("c", Status::Cancelled);
        let rows = [
            stored("a", 0, 30, "CONFIRMED"),
            stored("extra", 20, 50, "CONFIRMED"),
            stored("c", 200, 230, "CANCELLED"),
            stored("tight", 52, 60, "CONFIRMED"),
        ];
        let verdict = ledger.with(|book| compare(book, &rows, Duration::minutes(5)));
        assert_eq!(verdict.lost, ["lost"]);
        assert_eq!(verdict.unexplained, 2);
        assert_eq!(verdict.overlaps, [("b".to_owned(), "a".to_owned(), "extra".to_owned())]);
        assert_eq!(
            verdict.buffer_violations,
            [("b".to_owned(), "extra".to_owned(), "tight".to_owned())]
        );
        assert!(verdict.mismatched.is_empty());
        assert!(!verdict.passed());
    }

    #[test]
    fn a_no_show_still_holds_the_barbers_time() {
        let ledger = Ledger::default();
        let rows = [stored("gone", 0, 30, "NO_SHOW"), stored("late", 10, 40, "CANCELLED")];
        let mut clash = rows.to_vec();
        clash.push(stored("clash", 15, 45, "CONFIRMED"));
        let clean = ledger.with(|book| compare(book, &rows, Duration::minutes(5)));
        assert!(clean.overlaps.is_empty(), "a cancelled booking holds nothing");
        let verdict = ledger.with(|book| compare(book, &clash, Duration::minutes(5)));
        assert_eq!(verdict.overlaps, [("b".to_owned(), "gone".to_owned(), "clash".to_owned())]);
    }

    #[test]
    fn a_consistent_run_passes() {
        let ledger = Ledger::default();
        ledger.booked("a", at(0));
        ledger.rescheduled("a", at(60));
        ledger.paid("a", 2_500);
        let mut row = stored("a", 60, 90, "CONFIRMED");
        row.paid_cents = 2_500;
        let verdict = ledger.with(|book| compare(book, &[row], Duration::minutes(5)));
        assert!(verdict.passed(), "{verdict:?}");
    }
}
