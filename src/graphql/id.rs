//! Opaque global ids (`Node.id`) and page cursors.
//!
//! A global id is the base64url form of `Kind:number`, so one id names one
//! object across all types, and clients treat it as an opaque string.

use async_graphql::ID;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};

use crate::{
    domain::page::Position,
    error::{AppError, AppResult},
};

/// The kinds of object that have a global id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Shop,
    Barber,
    Service,
    User,
    Booking,
    Payment,
    TimeOff,
    Event,
    Webhook,
    WebhookDelivery,
}

impl Kind {
    const ALL: [Kind; 10] = [
        Kind::Shop,
        Kind::Barber,
        Kind::Service,
        Kind::User,
        Kind::Booking,
        Kind::Payment,
        Kind::TimeOff,
        Kind::Event,
        Kind::Webhook,
        Kind::WebhookDelivery,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Shop => "Shop",
            Kind::Barber => "Barber",
            Kind::Service => "Service",
            Kind::User => "User",
            Kind::Booking => "Booking",
            Kind::Payment => "Payment",
            Kind::TimeOff => "TimeOff",
            Kind::Event => "BookingEvent",
            Kind::Webhook => "Webhook",
            Kind::WebhookDelivery => "WebhookDelivery",
        }
    }
}

/// The global id of object `id` of `kind`.
pub fn encode(kind: Kind, id: i64) -> ID {
    ID(URL_SAFE_NO_PAD.encode(format!("{}:{id}", kind.name())))
}

/// The kind and row id behind a global id; `argument` names the argument in
/// the error message.
pub fn decode(id: &ID, argument: &str) -> AppResult<(Kind, i64)> {
    let invalid = || {
        AppError::bad_input(format!(
            "`{argument}` is not a valid id: {:?}; use the `id` field of an object returned by this API",
            id.as_str()
        ))
    };
    let text = URL_SAFE_NO_PAD
        .decode(id.as_bytes())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(invalid)?;
    let (name, number) = text.split_once(':').ok_or_else(invalid)?;
    let kind = Kind::ALL.into_iter().find(|k| k.name() == name).ok_or_else(invalid)?;
    let number = positive(number).ok_or_else(invalid)?;
    Ok((kind, number))
}

/// A row id written as the API writes it: decimal digits, no sign, no
/// leading zero, above zero.
fn positive(text: &str) -> Option<i64> {
    let canonical =
        !text.is_empty() && !text.starts_with('0') && text.bytes().all(|b| b.is_ascii_digit());
    canonical.then(|| text.parse::<i64>().ok()).flatten()
}

/// The row id behind a global id that must be of `kind`.
pub fn decode_as(id: &ID, kind: Kind, argument: &str) -> AppResult<i64> {
    match decode(id, argument)? {
        (found, number) if found == kind => Ok(number),
        (found, _) => Err(AppError::bad_input(format!(
            "`{argument}` must be the id of a {}, but {:?} is the id of a {}",
            kind.name(),
            id.as_str(),
            found.name()
        ))),
    }
}

/// `row`, looked up by the id of `argument`, or `NOT_FOUND` naming it.
pub fn found<T>(row: Option<T>, kind: Kind, argument: &str) -> AppResult<T> {
    row.ok_or_else(|| {
        AppError::not_found(format!(
            "no {} has this `{argument}`",
            kind.name().to_ascii_lowercase()
        ))
    })
}

const CURSOR_PREFIX: &str = "cursor:v1:";

/// The opaque cursor of a row's position in its list.
pub fn encode_cursor(position: Position) -> String {
    let text = match position.time {
        None => format!("{CURSOR_PREFIX}{}", position.id),
        Some(time) => format!("{CURSOR_PREFIX}{}:{}", position.id, time.timestamp_micros()),
    };
    URL_SAFE_NO_PAD.encode(text)
}

/// The position behind a cursor of a list ordered by time (`timed`) or by
/// id; `argument` names the argument in the error.
pub fn decode_cursor(cursor: &str, argument: &str, timed: bool) -> AppResult<Position> {
    let parsed = URL_SAFE_NO_PAD
        .decode(cursor.as_bytes())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| {
            let rest = text.strip_prefix(CURSOR_PREFIX)?;
            let mut parts = rest.split(':');
            let id = positive(parts.next()?)?;
            let time = match parts.next() {
                None => None,
                Some(micros) => Some(DateTime::<Utc>::from_timestamp_micros(micros.parse().ok()?)?),
            };
            if parts.next().is_some() || time.is_some() != timed {
                return None;
            }
            Some(Position { time, id })
        });
    parsed.ok_or_else(|| {
        AppError::bad_input(format!(
            "`{argument}` is not a valid cursor for this list: {cursor:?}; pass a `cursor` or \
             `pageInfo.endCursor`/`startCursor` from an earlier page of the same list"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_keep_their_kind() {
        let id = encode(Kind::Barber, 42);
        assert_eq!(decode(&id, "id").ok(), Some((Kind::Barber, 42)));
        assert!(decode_as(&id, Kind::Shop, "id").is_err());
        assert!(decode(&ID::from("nonsense"), "id").is_err());
        for odd in ["Shop:-1", "Shop:+1", "Shop:01", "Shop: 1", "Shop:0", "Shop:"] {
            assert!(decode(&ID(URL_SAFE_NO_PAD.encode(odd)), "id").is_err(), "{odd}");
        }
    }

    #[test]
    fn cursors_round_trip() {
        let plain = Position::id(7);
        assert_eq!(decode_cursor(&encode_cursor(plain), "after", false).ok(), Some(plain));
        let time = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let timed = Position::timed(time, 9);
        assert_eq!(decode_cursor(&encode_cursor(timed), "after", true).ok(), Some(timed));
        // A cursor of one kind of list is refused by the other.
        assert!(decode_cursor(&encode_cursor(plain), "after", true).is_err());
        assert!(decode_cursor(&encode_cursor(timed), "after", false).is_err());
        assert!(decode_cursor("abc", "after", false).is_err());
        // Only positions the API could have written.
        for odd in ["cursor:v1:-3", "cursor:v1:0", "cursor:v1:+3", "cursor:v1:03"] {
            assert!(decode_cursor(&URL_SAFE_NO_PAD.encode(odd), "after", false).is_err(), "{odd}");
        }
    }
}
