//! Shop-local time: a shop's zone, its dates and its wall-clock minutes, and
//! the UTC instants they stand for. The API (availability, analytics) and
//! the seed all read local time through these functions, so they agree on
//! the days a daylight-saving change makes odd:
//!
//! - a wall-clock time skipped by a spring-forward change has no instant: no
//!   slot starts there, and no booking is seeded there;
//! - a wall-clock time repeated by a fall-back change has two: both are
//!   slots;
//! - working hours that open or close inside a gap open or close at its end,
//!   and a repeated time opens at its first and closes at its second
//!   occurrence, so a day keeps the hours it really has;
//! - a day starts at local midnight, or at the end of the gap when midnight
//!   itself is skipped.

use chrono::{DateTime, Datelike, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::invalid::Invalid;

/// Minutes in a (wall-clock) day.
const DAY_MINUTES: i32 = 24 * 60;

/// An IANA time zone name such as `Europe/London`, as a client sends it.
pub fn parse_zone(raw: &str) -> Result<Tz, Invalid> {
    raw.trim().parse::<Tz>().map_err(|_| {
        Invalid(format!(
            "{raw:?} is not an IANA time zone; use a name like `Europe/London` or `America/New_York`"
        ))
    })
}

/// The zone of a stored shop; a name the zone database no longer knows
/// reads as UTC.
pub fn zone(name: &str) -> Tz {
    name.parse().unwrap_or(Tz::UTC)
}

/// The weekday of `date` as working hours store it: 1 = Monday … 7 = Sunday.
pub fn weekday(date: NaiveDate) -> i16 {
    i16::try_from(date.weekday().number_from_monday()).unwrap_or(1)
}

/// Every UTC instant whose local time is `minute` after midnight of `date`,
/// earliest first: none in a daylight-saving gap, two in a repeated hour.
/// Minute 1440 is the next midnight.
pub fn instants(tz: Tz, date: NaiveDate, minute: i32) -> Vec<DateTime<Utc>> {
    let Some((date, minute)) = normalise(date, minute) else {
        return Vec::new();
    };
    let Some(time) = NaiveTime::from_hms_opt(minute / 60, minute % 60, 0) else {
        return Vec::new();
    };
    match tz.from_local_datetime(&date.and_time(time)) {
        LocalResult::Single(t) => vec![t.with_timezone(&Utc)],
        LocalResult::Ambiguous(a, b) => vec![a.with_timezone(&Utc), b.with_timezone(&Utc)],
        LocalResult::None => Vec::new(),
    }
}

/// `minute` of `date` with minute 1440 and later carried into the next day.
fn normalise(date: NaiveDate, minute: i32) -> Option<(NaiveDate, u32)> {
    let (date, minute) = if minute >= DAY_MINUTES {
        (date.succ_opt()?, minute - DAY_MINUTES)
    } else {
        (date, minute)
    };
    Some((date, u32::try_from(minute).ok()?))
}

/// The instant working hours open (`closing = false`) or close at `minute`
/// after local midnight of `date`. A time skipped by a daylight-saving
/// change moves to the end of the gap; a repeated time opens at its first
/// and closes at its second occurrence.
pub fn boundary(tz: Tz, date: NaiveDate, minute: i32, closing: bool) -> Option<DateTime<Utc>> {
    let (date, minute) = normalise(date, minute)?;
    let minute = i32::try_from(minute).ok()?;
    // Gaps last at most a few hours (most are one).
    (minute..minute + 180).find_map(|m| {
        let instants = instants(tz, date, m);
        if closing { instants.last().copied() } else { instants.first().copied() }
    })
}

/// The UTC instants of the start and the end of a shop-local date.
pub fn day_bounds(tz: Tz, date: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let start = boundary(tz, date, 0, false)?;
    let end = boundary(tz, date.succ_opt()?, 0, false)?;
    Some((start, end))
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, Timelike};

    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn spring_forward_skips_its_hour() {
        // New York skips 02:00–03:00 on 2026-03-08.
        let tz = chrono_tz::America::New_York;
        let day = date(2026, 3, 8);
        assert!(instants(tz, day, 2 * 60 + 30).is_empty(), "no 02:30 that day");
        assert_eq!(instants(tz, day, 60), vec![utc("2026-03-08T06:00:00Z")]);
        assert_eq!(instants(tz, day, 3 * 60), vec![utc("2026-03-08T07:00:00Z")]);
        // Hours opening or closing in the gap move to its end.
        assert_eq!(boundary(tz, day, 2 * 60 + 30, false), Some(utc("2026-03-08T07:00:00Z")));
        assert_eq!(boundary(tz, day, 2 * 60 + 30, true), Some(utc("2026-03-08T07:00:00Z")));
        let (start, end) = day_bounds(tz, day).unwrap();
        assert_eq!(end - start, Duration::hours(23));
    }

    #[test]
    fn fall_back_repeats_its_hour() {
        // New York repeats 01:00–02:00 on 2026-11-01.
        let tz = chrono_tz::America::New_York;
        let day = date(2026, 11, 1);
        let both = instants(tz, day, 90);
        assert_eq!(both, vec![utc("2026-11-01T05:30:00Z"), utc("2026-11-01T06:30:00Z")]);
        assert_eq!(boundary(tz, day, 90, false), Some(both[0]));
        assert_eq!(boundary(tz, day, 90, true), Some(both[1]));
        let (start, end) = day_bounds(tz, day).unwrap();
        assert_eq!(end - start, Duration::hours(25));
    }

    #[test]
    fn a_day_whose_midnight_is_skipped_starts_when_the_gap_ends() {
        // Santiago goes from 00:00 to 01:00 on 2026-09-06. The seed used to
        // take a day as midnight to midnight and drop such a day's time
        // off, where the API counted it from 01:00.
        let tz = chrono_tz::America::Santiago;
        let day = date(2026, 9, 6);
        assert!(instants(tz, day, 0).is_empty());
        let (start, end) = day_bounds(tz, day).unwrap();
        assert_eq!(start.with_timezone(&tz).hour(), 1);
        assert_eq!(end - start, Duration::hours(23));
        let (_, eve_end) = day_bounds(tz, day.pred_opt().unwrap()).unwrap();
        assert_eq!(eve_end, start, "days follow each other without a hole");
    }

    #[test]
    fn minute_1440_is_the_next_midnight_and_zones_parse_strictly() {
        let tz = chrono_tz::Europe::London;
        assert_eq!(instants(tz, date(2026, 6, 1), 1440), instants(tz, date(2026, 6, 2), 0));
        assert_eq!(weekday(date(2026, 11, 29)), 7);
        assert_eq!(parse_zone(" Europe/London ").unwrap(), tz);
        assert!(parse_zone("Mars/Olympus").is_err());
        assert_eq!(zone("Mars/Olympus"), Tz::UTC);
    }
}
