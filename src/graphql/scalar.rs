//! The contract's `Date` scalar: a shop-local calendar date, `YYYY-MM-DD`.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::NaiveDate;

/// A calendar date in the shop's time zone, written `YYYY-MM-DD`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Date(pub NaiveDate);

/// A calendar date in the shop's time zone, written `YYYY-MM-DD`.
#[Scalar(name = "Date")]
impl ScalarType for Date {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(text) => {
                // Exactly YYYY-MM-DD: chrono alone takes " 2026-12-01" and
                // "2026-1-1" too.
                let shaped = text.len() == 10
                    && text.bytes().enumerate().all(|(i, b)| match i {
                        4 | 7 => b == b'-',
                        _ => b.is_ascii_digit(),
                    });
                shaped
                    .then(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
                    .flatten()
                    .map(Date)
                    .ok_or_else(|| {
                        InputValueError::custom(format!(
                            "{text:?} is not a date like \"2026-05-31\" (YYYY-MM-DD)"
                        ))
                    })
            }
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.format("%Y-%m-%d").to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_exactly_yyyy_mm_dd() {
        let parse = |text: &str| <Date as ScalarType>::parse(Value::String(text.to_owned()));
        assert_eq!(parse("2026-12-01").ok(), NaiveDate::from_ymd_opt(2026, 12, 1).map(Date));
        for odd in
            [" 2026-12-01", "2026-12-01 ", "2026-1-1", "2026-02-30", "+2026-12-01", "2026/12/01"]
        {
            assert!(parse(odd).is_err(), "{odd:?}");
        }
    }
}
