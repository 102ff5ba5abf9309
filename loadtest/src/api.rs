//! A plain GraphQL client for the unmeasured parts of a run: preparing the
//! shops and accounts, the correctness check, and reading `/metrics`.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};

/// Who a request comes from: an address for `X-Forwarded-For` and, when
/// signed in, a token.
#[derive(Debug, Clone)]
pub struct Identity {
    pub ip: String,
    pub token: Option<String>,
}

impl Identity {
    pub fn anonymous(ip: String) -> Self {
        Self { ip, token: None }
    }
}

/// The server under test, as the suite's own bookkeeping talks to it.
#[derive(Debug, Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
}

/// How long an unmeasured request waits for a rate limit before giving up.
const MAX_RATE_LIMIT_WAIT: Duration = Duration::from_secs(120);

impl Api {
    pub fn new(target: &str, timeout: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(32)
            .build()
            .context("building the HTTP client")?;
        Ok(Self { client, base: target.trim_end_matches('/').to_owned() })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Runs one operation and returns its `data`; a GraphQL error is an
    /// error here. A 429 or a 503 is waited out (this traffic is not
    /// measured).
    pub async fn gql(
        &self,
        who: &Identity,
        query: &str,
        variables: Value,
    ) -> anyhow::Result<Value> {
        let mut waited = Duration::ZERO;
        loop {
            let mut request = self
                .client
                .post(self.url("/graphql"))
                .header("x-forwarded-for", &who.ip)
                .json(&json!({ "query": query, "variables": variables }));
            if let Some(token) = &who.token {
                request = request.bearer_auth(token);
            }
            let response = request.send().await.with_context(|| format!("POST {}", self.base))?;
            let status = response.status();
            if status == reqwest::StatusCode::TOO_MANY_REQUESTS
                || status == reqwest::StatusCode::SERVICE_UNAVAILABLE
            {
                let retry = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1)
                    .max(1);
                if waited >= MAX_RATE_LIMIT_WAIT {
                    bail!(
                        "the server kept refusing with {status} for {}s (with 429: start it \
                         with TRUST_PROXY=127.0.0.1 so each virtual user has a budget of its own)",
                        waited.as_secs()
                    );
                }
                if waited.is_zero() && status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                    eprintln!(
                        "rate limited outside the measurement, waiting {retry}s (does the \
                         server trust X-Forwarded-For from this host? TRUST_PROXY=127.0.0.1)"
                    );
                }
                tokio::time::sleep(Duration::from_secs(retry)).await;
                waited += Duration::from_secs(retry);
                continue;
            }
            let body: Value = response
                .json()
                .await
                .with_context(|| format!("reading a GraphQL answer (HTTP {status})"))?;
            if let Some(error) = body["errors"].as_array().and_then(|errors| errors.first()) {
                bail!(
                    "{}: {}",
                    error["extensions"]["code"].as_str().unwrap_or("NO_CODE"),
                    error["message"].as_str().unwrap_or("")
                );
            }
            return body.get("data").cloned().ok_or_else(|| anyhow!("an answer without data"));
        }
    }

    /// The body of a GET, when it answers 200.
    pub async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let response = self.client.get(self.url(path)).send().await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("GET {path}: HTTP {status}: {text}");
        }
        Ok(text)
    }
}
