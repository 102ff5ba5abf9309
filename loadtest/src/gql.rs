//! Measured GraphQL calls from virtual users, and the count of how they
//! failed, by operation and error code.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use goose::prelude::*;
use serde_json::{Value, json};

use crate::api::Identity;

/// What a virtual user got back.
#[derive(Debug)]
pub enum Reply {
    /// The operation's `data`.
    Data(Value),
    /// A refusal or failure, by code: the GraphQL error code, `RATE_LIMITED`
    /// for a 429, `HTTP_<status>`, `TIMEOUT` or `TRANSPORT`.
    Failed(String),
}

impl Reply {
    pub fn data(self) -> Option<Value> {
        match self {
            Reply::Data(data) => Some(data),
            Reply::Failed(_) => None,
        }
    }
}

/// Whether a failure of `operation` in `scenario` is the system working as
/// promised rather than failing: a client who lost a race for a slot or an
/// email (`CONFLICT`), a barber paying for a booking changed since the
/// screen loaded (cancelled or paid meanwhile: `BAD_USER_INPUT`), and the
/// abusive scraper over its budget (`RATE_LIMITED`). A 429 to a
/// well-behaved user is an error: its limits are too tight.
///
/// The two halves of a measured name come apart with [`split_name`]: one
/// name passed whole could not tell a scenario from an operation.
pub fn is_expected_refusal(scenario: &str, operation: &str, code: &str) -> bool {
    code == "CONFLICT"
        || (scenario == "staff" && operation == "recordPayment" && code == "BAD_USER_INPUT")
        || (scenario == ABUSIVE_SCENARIO && code == "RATE_LIMITED")
}

/// The scenario and the operation of a measured name (`scenario op`); a
/// name without a space is an operation of no scenario.
pub fn split_name(name: &str) -> (&str, &str) {
    name.split_once(' ').unwrap_or(("", name))
}

/// The scenario that is meant to be refused.
pub const ABUSIVE_SCENARIO: &str = "abuse";

/// How often one operation failed with one code.
#[derive(Debug, Default, Clone)]
pub struct Failures {
    pub count: u64,
    /// The first message seen with it.
    pub example: String,
}

/// Operation -> code -> failures.
pub type FailureTable = BTreeMap<String, BTreeMap<String, Failures>>;

/// Failed requests by operation and code, and every answer over time.
#[derive(Debug, Default, Clone)]
pub struct Tally(Arc<Mutex<FailureTable>>, pub Arc<crate::fault::Timeline>);

impl Tally {
    fn count(&self, operation: &str, code: &str, message: &str) {
        self.1.record(Some(code));
        let mut map = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry =
            map.entry(operation.to_owned()).or_default().entry(code.to_owned()).or_default();
        entry.count += 1;
        if entry.example.is_empty() {
            entry.example = message.chars().take(160).collect();
        }
    }

    pub fn snapshot(&self) -> FailureTable {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

/// Runs `query` as `who`, measured by goose under `name` (`scenario op`).
/// Only goose's own trouble is an `Err`; the server's answers are replies.
pub async fn call(
    user: &mut GooseUser,
    tally: &Tally,
    who: &Identity,
    name: &str,
    query: &str,
    variables: Value,
) -> Result<Reply, Box<TransactionError>> {
    let mut builder = user
        .get_request_builder(&GooseMethod::Post, "/graphql")?
        .header("x-forwarded-for", &who.ip)
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = &who.token {
        builder = builder.bearer_auth(token);
    }
    let request = GooseRequest::builder()
        .method(GooseMethod::Post)
        .path("/graphql")
        .name(name)
        .set_request_builder(builder)
        .build();
    let mut goose = user.request(request).await?;
    let response = match goose.response {
        Ok(response) => response,
        Err(error) => {
            let code = if error.is_timeout() { "TIMEOUT" } else { "TRANSPORT" };
            tally.count(name, code, &error.to_string());
            return Ok(Reply::Failed(code.to_owned()));
        }
    };
    let status = response.status();
    let mut body: Value = match response.json().await {
        Ok(body) => body,
        Err(error) => {
            // The status came, the answer did not: what happened is unknown.
            let code = if error.is_timeout() { "TIMEOUT" } else { "TRANSPORT" };
            tally.count(name, code, &format!("HTTP {status}, unreadable body: {error}"));
            let _ = user.set_failure(code, &mut goose.request, None, None);
            return Ok(Reply::Failed(code.to_owned()));
        }
    };
    let error = body["errors"].as_array().and_then(|errors| errors.first());
    let message = error.and_then(|e| e["message"].as_str()).unwrap_or("").to_owned();
    let code = match error {
        _ if status == reqwest::StatusCode::TOO_MANY_REQUESTS => "RATE_LIMITED".to_owned(),
        Some(error) => error["extensions"]["code"].as_str().unwrap_or("NO_CODE").to_owned(),
        None if status.is_success() => {
            tally.1.record(None);
            return Ok(Reply::Data(body["data"].take()));
        }
        None => format!("HTTP_{}", status.as_u16()),
    };
    tally.count(name, &code, &message);
    // A GraphQL error arrives with 200; goose should count it as failed too.
    if status.is_success() {
        let _ = user.set_failure(&code, &mut goose.request, None, None);
    }
    Ok(Reply::Failed(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_promised_refusals_are_expected() {
        assert_eq!(split_name("staff recordPayment"), ("staff", "recordPayment"));
        assert_eq!(split_name("health"), ("", "health"));
        assert!(is_expected_refusal("book", "createBooking", "CONFLICT"));
        assert!(is_expected_refusal("staff", "recordPayment", "BAD_USER_INPUT"));
        assert!(!is_expected_refusal("staff", "completeBooking", "BAD_USER_INPUT"));
        assert!(is_expected_refusal(ABUSIVE_SCENARIO, "availableSlots", "RATE_LIMITED"));
        assert!(!is_expected_refusal("browse", "availableSlots", "RATE_LIMITED"));
        assert!(!is_expected_refusal(ABUSIVE_SCENARIO, "availableSlots", "TIMEOUT"));
    }
}
