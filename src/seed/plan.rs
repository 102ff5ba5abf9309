//! The deterministic part of seeding: which shops, people, menus, schedules
//! and bookings to create, decided by a seeded random generator before
//! anything touches the database.
//!
//! Bookings are laid out per barber, day by day, one after the other inside
//! working hours and outside time off, so no two active bookings of a barber
//! ever overlap.

#[cfg(test)]
use chrono::TimeZone;
use chrono::{DateTime, Days, NaiveDate, Utc};
use chrono_tz::Tz;
use entity::BookingStatus;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{DEMO_BARBER_EMAIL, DEMO_CLIENT_EMAIL, DEMO_OWNER_EMAIL};
use crate::{config::SeedArgs, domain::local_time};

/// (time zone, city, currency) of seeded shops, used in turn.
const LOCATIONS: [(&str, &str, &str); 6] = [
    ("Europe/London", "London", "GBP"),
    ("America/New_York", "New York", "USD"),
    ("Europe/Berlin", "Berlin", "EUR"),
    ("America/Los_Angeles", "Los Angeles", "USD"),
    ("Australia/Sydney", "Sydney", "AUD"),
    ("Europe/Paris", "Paris", "EUR"),
];

const SHOP_NAMES: [&str; 12] = [
    "Sharp & Co",
    "The Gentlemen's Chair",
    "Fade Factory",
    "Blade Runners",
    "Clippers Corner",
    "Old Town Barbers",
    "Cut Above",
    "The Barber Lounge",
    "Razor's Edge",
    "Crown & Comb",
    "Main Street Cuts",
    "Northside Grooming",
];

const FIRST_NAMES: [&str; 16] = [
    "Alex", "Sam", "Jordan", "Taylor", "Chris", "Jamie", "Morgan", "Riley", "Casey", "Drew",
    "Robin", "Charlie", "Max", "Noah", "Leo", "Mia",
];
const LAST_NAMES: [&str; 12] = [
    "Smith", "Jones", "Garcia", "Brown", "Miller", "Davis", "Lopez", "Wilson", "Moore", "Clark",
    "Lewis", "Young",
];

/// (name, description, minutes, price in cents) of every seeded shop's menu.
pub const MENU: [(&str, &str, i32, i64); 6] = [
    ("Classic Cut", "Scissor and clipper cut, washed and styled", 30, 2500),
    ("Skin Fade", "Fade down to the skin, finished with a razor line", 45, 3200),
    ("Beard Trim", "Shape and line-up of the beard", 20, 1500),
    ("Cut & Beard", "Classic cut with a full beard trim", 60, 4000),
    ("Hot Towel Shave", "Traditional straight-razor shave", 30, 2800),
    ("Kids Cut", "For under-12s", 20, 1800),
];

/// Minutes between possible start times in the seeded schedules.
const STEP: i32 = 15;
/// Share of bookings laid out in the future.
const FUTURE_PERCENT: u64 = 15;
/// Furthest ahead a seeded booking starts, matching the default policy.
const FUTURE_DAYS: u64 = 60;
/// Furthest back a seeded booking starts.
const PAST_DAYS: u64 = 5 * 366;

pub struct PlannedUser {
    pub email: String,
    pub name: String,
}

pub struct PlannedShop {
    pub name: String,
    pub slug: String,
    pub timezone: Tz,
    pub address: String,
    pub currency: &'static str,
    /// Index into the owners.
    pub owner: usize,
}

pub struct PlannedBarber {
    pub shop: usize,
    /// Index into the barber users.
    pub user: usize,
    pub display_name: String,
    pub bio: Option<String>,
    /// Indexes into [`MENU`].
    pub services: Vec<usize>,
    /// (ISO weekday, opens minute, closes minute).
    pub hours: Vec<(i16, i32, i32)>,
    /// Whole local days off.
    pub time_off: Vec<NaiveDate>,
}

pub struct PlannedBooking {
    pub barber: usize,
    /// Index into the clients.
    pub client: usize,
    /// Index into [`MENU`].
    pub service: usize,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub status: BookingStatus,
    pub notes: Option<&'static str>,
    pub cancellation_reason: Option<&'static str>,
    pub created_at: DateTime<Utc>,
}

/// Everything a seed run creates.
pub struct Plan {
    pub owners: Vec<PlannedUser>,
    pub barber_users: Vec<PlannedUser>,
    pub clients: Vec<PlannedUser>,
    pub shops: Vec<PlannedShop>,
    pub barbers: Vec<PlannedBarber>,
    pub bookings: Vec<PlannedBooking>,
}

fn person(rng: &mut ChaCha8Rng) -> String {
    let first = FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())];
    let last = LAST_NAMES[rng.random_range(0..LAST_NAMES.len())];
    format!("{first} {last}")
}

fn users(rng: &mut ChaCha8Rng, count: usize, first_email: &str, prefix: &str) -> Vec<PlannedUser> {
    (0..count)
        .map(|i| PlannedUser {
            email: if i == 0 {
                first_email.to_owned()
            } else {
                format!("{prefix}{}@demo.test", i + 1)
            },
            name: person(rng),
        })
        .collect()
}

fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.to_lowercase().chars() {
        if c == '\'' {
            continue;
        }
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    slug.trim_end_matches('-').to_owned()
}

/// Decides the whole data set; the same arguments and `now` give the same plan.
pub fn plan(args: &SeedArgs, now: DateTime<Utc>) -> Plan {
    let mut rng = ChaCha8Rng::seed_from_u64(args.random_seed);
    let shop_count = args.shops.max(1) as usize;
    let barber_count = (args.barbers as usize).max(shop_count);
    let client_count = (args.clients as usize).max(1);

    let owners = users(&mut rng, shop_count, DEMO_OWNER_EMAIL, "owner");
    let barber_users = users(&mut rng, barber_count, DEMO_BARBER_EMAIL, "barber");
    let clients = users(&mut rng, client_count, DEMO_CLIENT_EMAIL, "client");

    let shops: Vec<PlannedShop> = (0..shop_count)
        .map(|i| {
            let (tz, city, currency) = LOCATIONS[i % LOCATIONS.len()];
            let base = SHOP_NAMES[i % SHOP_NAMES.len()];
            let round = i / SHOP_NAMES.len();
            let name = if round == 0 {
                format!("{base} {city}")
            } else {
                format!("{base} {city} {}", round + 1)
            };
            PlannedShop {
                slug: slugify(&name),
                name,
                timezone: local_time::zone(tz),
                address: format!("{} High Street, {city}", 10 + i),
                currency,
                owner: i,
            }
        })
        .collect();

    let barbers: Vec<PlannedBarber> = (0..barber_count)
        .map(|i| {
            let shop = i % shop_count;
            // Everyone cuts hair; the rest of the menu varies.
            let mut services = vec![0];
            services.extend((1..MENU.len()).filter(|_| rng.random_bool(0.6)));
            // Five days of Monday to Saturday, early or late shift, with a break.
            let day_off = i16::try_from(1 + i % 6).unwrap_or(1);
            let (opens, break_at, closes) =
                if i % 2 == 0 { (9 * 60, 13 * 60, 18 * 60) } else { (11 * 60, 15 * 60, 20 * 60) };
            let hours = (1..=6)
                .filter(|d| *d != day_off)
                .flat_map(|d| [(d, opens, break_at), (d, break_at + 30, closes)])
                .collect();
            let today = now.with_timezone(&shops[shop].timezone).date_naive();
            let time_off = vec![today - Days::new(7 + (i as u64 % 21))];
            PlannedBarber {
                shop,
                user: i,
                display_name: barber_users[i].name.clone(),
                bio: rng
                    .random_bool(0.7)
                    .then(|| format!("{} years behind the chair.", rng.random_range(2..25))),
                services,
                hours,
                time_off,
            }
        })
        .collect();

    let total = args.bookings as u64;
    let mut bookings = Vec::with_capacity(args.bookings as usize);
    for (index, barber) in barbers.iter().enumerate() {
        let share =
            total / barber_count as u64 + u64::from((index as u64) < total % barber_count as u64);
        let tz = shops[barber.shop].timezone;
        let mut layout =
            Layout { rng: &mut rng, barber, barber_index: index, tz, clients: client_count, now };
        layout.lay_out(share, &mut bookings);
    }

    Plan { owners, barber_users, clients, shops, barbers, bookings }
}

struct Layout<'a> {
    rng: &'a mut ChaCha8Rng,
    barber: &'a PlannedBarber,
    barber_index: usize,
    tz: Tz,
    clients: usize,
    now: DateTime<Utc>,
}

impl Layout<'_> {
    /// Lays out `share` bookings: some in the next weeks, the rest going back
    /// in time from today.
    fn lay_out(&mut self, share: u64, out: &mut Vec<PlannedBooking>) {
        let today = self.now.with_timezone(&self.tz).date_naive();
        let future_share = share * FUTURE_PERCENT / 100;
        let mut past_share = share - future_share;
        let mut future_left = future_share;

        // Future, from today on; today's earlier slots count as past.
        for offset in 0..FUTURE_DAYS {
            if future_left == 0 {
                break;
            }
            let day = today + Days::new(offset);
            for booking in self.day(day) {
                if booking.starts_at > self.now + chrono::Duration::hours(1) && future_left > 0 {
                    future_left -= 1;
                    out.push(self.finish(booking, false));
                } else if booking.starts_at < self.now && past_share > 0 {
                    past_share -= 1;
                    out.push(self.finish(booking, true));
                }
            }
        }
        // Whatever did not fit ahead goes into the past as well.
        past_share += future_left;
        for offset in 1..=PAST_DAYS {
            if past_share == 0 {
                break;
            }
            let day = today - Days::new(offset);
            for booking in self.day(day) {
                if past_share == 0 {
                    break;
                }
                past_share -= 1;
                out.push(self.finish(booking, true));
            }
        }
    }

    /// The bookings of one local day, back to back where the dice say so.
    fn day(&mut self, day: NaiveDate) -> Vec<PlannedBooking> {
        let weekday = local_time::weekday(day);
        if self.barber.time_off.contains(&day) {
            return Vec::new();
        }
        let mut bookings = Vec::new();
        let intervals: Vec<_> =
            self.barber.hours.iter().filter(|(d, _, _)| *d == weekday).copied().collect();
        for (_, opens, closes) in intervals {
            let mut minute = opens;
            while minute + STEP <= closes {
                if !self.rng.random_bool(0.6) {
                    minute += STEP;
                    continue;
                }
                let service =
                    self.barber.services[self.rng.random_range(0..self.barber.services.len())];
                let duration = MENU[service].2;
                if minute + duration > closes {
                    minute += STEP;
                    continue;
                }
                // A skipped time is no slot; a repeated one starts at its
                // first occurrence (both are slots to the API).
                let Some(&starts_at) = local_time::instants(self.tz, day, minute).first() else {
                    minute += STEP;
                    continue;
                };
                // Skew towards the first clients, so regulars come back.
                let client = ((self.rng.random::<f64>().powi(2)) * self.clients as f64) as usize;
                bookings.push(PlannedBooking {
                    barber: self.barber_index,
                    client: client.min(self.clients - 1),
                    service,
                    starts_at,
                    ends_at: starts_at + chrono::Duration::minutes(i64::from(duration)),
                    status: BookingStatus::Confirmed,
                    notes: None,
                    cancellation_reason: None,
                    created_at: starts_at,
                });
                // The next start is on the grid again, as the API requires.
                minute = (minute + duration + STEP - 1) / STEP * STEP;
            }
        }
        bookings
    }

    /// Gives a laid-out booking its status, notes and creation time.
    fn finish(&mut self, mut booking: PlannedBooking, past: bool) -> PlannedBooking {
        let roll: f64 = self.rng.random();
        // The shop closes the day's bookings in the evening: those of the
        // last hours are still waiting to be marked completed or no-show.
        let awaiting_close = past && booking.starts_at > self.now - chrono::Duration::hours(12);
        booking.status = match (past, roll) {
            _ if awaiting_close && roll < 0.9 => BookingStatus::Confirmed,
            (true, r) if r < 0.80 => BookingStatus::Completed,
            (true, r) if r < 0.87 => BookingStatus::NoShow,
            (true, _) => BookingStatus::Cancelled,
            (false, r) if r < 0.9 => BookingStatus::Confirmed,
            (false, _) => BookingStatus::Cancelled,
        };
        if booking.status == BookingStatus::Cancelled {
            booking.cancellation_reason = Some(
                ["Something came up", "Feeling unwell", "Double-booked myself"]
                    [self.rng.random_range(0..3)],
            );
        }
        if self.rng.random_bool(0.1) {
            booking.notes = Some(
                ["Scissors only, please", "Running 5 minutes late", "First visit"]
                    [self.rng.random_range(0..3)],
            );
        }
        let lead = chrono::Duration::hours(self.rng.random_range(2..24 * 14));
        booking.created_at = (booking.starts_at - lead).min(self.now);
        booking
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(bookings: u32) -> SeedArgs {
        SeedArgs { shops: 3, barbers: 7, clients: 20, bookings, random_seed: 7, anchor_date: None }
    }

    #[test]
    fn same_arguments_same_plan() {
        let now = Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).unwrap();
        let a = plan(&args(500), now);
        let b = plan(&args(500), now);
        assert_eq!(a.bookings.len(), 500);
        let starts = |p: &Plan| {
            p.bookings.iter().map(|b| (b.barber, b.starts_at, b.status)).collect::<Vec<_>>()
        };
        assert_eq!(starts(&a), starts(&b));
    }

    #[test]
    fn a_barbers_active_bookings_never_overlap() {
        let now = Utc.with_ymd_and_hms(2026, 3, 28, 12, 0, 0).unwrap();
        let plan = plan(&args(3_000), now);
        for barber in 0..plan.barbers.len() {
            let mut mine: Vec<_> = plan.bookings.iter().filter(|b| b.barber == barber).collect();
            mine.sort_by_key(|b| b.starts_at);
            for pair in mine.windows(2) {
                assert!(pair[0].ends_at <= pair[1].starts_at, "overlap for barber {barber}");
            }
        }
        assert!(plan.bookings.iter().any(|b| b.status == BookingStatus::NoShow));
        assert!(
            plan.bookings.iter().any(|b| b.status == BookingStatus::Confirmed && b.starts_at > now)
        );
    }

    #[test]
    fn every_seeded_booking_starts_at_a_slot_the_api_offers() {
        use crate::domain::availability::{Calendar, Rules, free_slots};
        // London and Berlin spring forward on 2026-03-29, New York and Los
        // Angeles on 2026-03-08, Sydney falls back on 2026-04-05: the plan
        // covers weeks around each.
        let now = Utc.with_ymd_and_hms(2026, 3, 20, 12, 0, 0).unwrap();
        let plan = plan(&SeedArgs { shops: 6, ..args(6_000) }, now);
        let long_ago = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap();
        for booking in &plan.bookings {
            let barber = &plan.barbers[booking.barber];
            let tz = plan.shops[barber.shop].timezone;
            let rules = Rules {
                tz,
                step_minutes: STEP,
                min_notice: chrono::Duration::zero(),
                max_advance: chrono::Duration::days(100_000),
                buffer: chrono::Duration::zero(),
            };
            let calendar = Calendar {
                hours: barber
                    .hours
                    .iter()
                    .map(|&(weekday, opens_minute, closes_minute)| entity::working_hours::Model {
                        id: 0,
                        barber_id: 0,
                        weekday,
                        opens_minute,
                        closes_minute,
                    })
                    .collect(),
                ..Calendar::default()
            };
            let day = booking.starts_at.with_timezone(&tz).date_naive();
            let duration = booking.ends_at - booking.starts_at;
            let slots = free_slots(&rules, &calendar, day, duration, long_ago);
            assert!(
                slots.contains(&(booking.starts_at, booking.ends_at)),
                "{} in {tz} is no slot of the API",
                booking.starts_at
            );
        }
    }
}
