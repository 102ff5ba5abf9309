//! Text rules in one place. Every text a client sends is trimmed and must
//! fit its column: the limits here are the columns' (`VARCHAR(n)` in the
//! migrations, or the bound we keep on a `TEXT` column), and a test reads
//! the live PostgreSQL schema to prove they agree. A NUL character, which
//! PostgreSQL cannot store in text, is refused for every argument at the
//! GraphQL edge before this runs (and here too, for callers outside it).

use super::invalid::Invalid;

/// `users.email`, `VARCHAR(254)` (RFC 5321's longest path).
pub const EMAIL: usize = 254;
/// `users.name`, `VARCHAR(200)`.
pub const PERSON_NAME: usize = 200;
/// `shops.name`, `VARCHAR(200)`.
pub const SHOP_NAME: usize = 200;
/// `shops.slug`, `VARCHAR(100)`.
pub const SHOP_SLUG: usize = 100;
/// `shops.address`, `VARCHAR(500)`.
pub const SHOP_ADDRESS: usize = 500;
/// `barbers.display_name`, `VARCHAR(200)`.
pub const BARBER_NAME: usize = 200;
/// `barbers.bio`, `TEXT`.
pub const BARBER_BIO: usize = 1_000;
/// `services.name`, `VARCHAR(200)`.
pub const SERVICE_NAME: usize = 200;
/// `services.description`, `TEXT`.
pub const SERVICE_DESCRIPTION: usize = 1_000;
/// `time_off.reason`, `VARCHAR(500)`.
pub const TIME_OFF_REASON: usize = 500;
/// `bookings.notes`, `TEXT`.
pub const BOOKING_NOTES: usize = 1_000;
/// `bookings.cancellation_reason`, `TEXT`.
pub const CANCELLATION_REASON: usize = 1_000;

/// Every bounded text column: (table, column, limit), for the test that
/// compares them with the database.
pub const COLUMNS: &[(&str, &str, usize)] = &[
    ("users", "email", EMAIL),
    ("users", "name", PERSON_NAME),
    ("shops", "name", SHOP_NAME),
    ("shops", "slug", SHOP_SLUG),
    ("shops", "address", SHOP_ADDRESS),
    ("barbers", "display_name", BARBER_NAME),
    ("barbers", "invited_email", EMAIL),
    ("services", "name", SERVICE_NAME),
    ("time_off", "reason", TIME_OFF_REASON),
];

fn clean(raw: &str) -> Result<&str, Invalid> {
    if raw.contains('\0') {
        return Err(Invalid::new(
            "contains a NUL character (U+0000), which text may not hold; remove it",
        ));
    }
    Ok(raw.trim())
}

/// A required text: trimmed, 1 to `max` characters.
pub fn required(raw: &str, max: usize) -> Result<String, Invalid> {
    let text = clean(raw)?;
    let chars = text.chars().count();
    if (1..=max).contains(&chars) {
        Ok(text.to_owned())
    } else {
        Err(Invalid(format!("must be 1 to {max} characters long, got {chars}")))
    }
}

/// An optional text: trimmed, at most `max` characters; blank is none.
pub fn optional(raw: Option<String>, max: usize) -> Result<Option<String>, Invalid> {
    let Some(raw) = raw else { return Ok(None) };
    let text = clean(&raw)?;
    if text.is_empty() {
        return Ok(None);
    }
    let chars = text.chars().count();
    if chars > max {
        return Err(Invalid(format!("must be at most {max} characters long, got {chars}")));
    }
    Ok(Some(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_trimmed_bounded_and_free_of_nul() {
        assert_eq!(required("  Ann ", 3).unwrap(), "Ann");
        assert!(required("   ", 3).is_err());
        assert!(required("Anna", 3).is_err());
        assert!(required("é".repeat(3).as_str(), 3).is_ok(), "characters, not bytes");
        assert!(required("A\0n", 3).is_err());
        assert_eq!(optional(Some("  ".into()), 3).unwrap(), None);
        assert_eq!(optional(None, 3).unwrap(), None);
        assert!(optional(Some("abcd".into()), 3).is_err());
        assert!(optional(Some("a\0".into()), 3).is_err());
    }
}
