//! Automatic persisted queries, Apollo's protocol: a client sends
//! `extensions.persistedQuery { version: 1, sha256Hash }`, with the query the
//! first time and the hash alone after that.
//!
//! The query text is kept in the shared cache (Redis when configured, so
//! every replica knows a hash another one learned). Anyone may register, so
//! registration is bounded three ways: a query of at most
//! [`MAX_QUERY_BYTES`], a price in budget points ([`REGISTRATION_COST`]),
//! and [`MAX_BYTES_PER_WINDOW`] of new queries per cache TTL across all
//! clients. Past that a query still runs; it is just not kept, and the
//! client sends it again next time, as the protocol allows.

use async_graphql::Request;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{cache::Cache, error::AppError};

/// Largest query that may be registered.
pub const MAX_QUERY_BYTES: usize = 64 * 1024;
/// Points a registration costs beyond the request's own.
pub const REGISTRATION_COST: u32 = 5;
/// Bytes of new queries stored per cache TTL, by all clients together; as
/// entries live one TTL, at most twice this is ever held.
pub const MAX_BYTES_PER_WINDOW: u64 = 32 * 1024 * 1024;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PersistedQuery {
    version: i64,
    sha256_hash: String,
}

/// What a request asked of the persisted-query store.
#[derive(Debug, PartialEq, Eq)]
pub enum Asked {
    /// Nothing: a plain request.
    Nothing,
    /// To run a query known by its hash; it has been filled in.
    Known,
    /// To register its query under its hash (which matched); charge it and
    /// then [`register`].
    Register { hash: String },
}

/// The persisted queries, kept in the shared byte cache under their hash
/// (a key that names its content); cheap to clone.
#[derive(Clone, Debug)]
pub struct PersistedQueries(Cache);

impl PersistedQueries {
    pub fn new(cache: Cache) -> Self {
        Self(cache)
    }

    /// The text of a known query; a cache that fails knows none.
    async fn fetch(&self, hash: &str) -> Option<String> {
        let bytes = self.0.read(&key(hash)).await.ok().flatten()?;
        String::from_utf8(bytes).ok()
    }
}

fn key(hash: &str) -> String {
    format!("apq:{hash}")
}

/// Reads `extensions.persistedQuery` of `request`: fills in the query of a
/// known hash, or checks a query that is to be registered.
pub async fn resolve(store: &PersistedQueries, request: &mut Request) -> Result<Asked, AppError> {
    let Some(value) = request.extensions.remove("persistedQuery") else {
        return Ok(Asked::Nothing);
    };
    let persisted: PersistedQuery =
        value.into_json().ok().and_then(|json| serde_json::from_value(json).ok()).ok_or_else(
            || {
                AppError::bad_input(
                    "`extensions.persistedQuery` must be `{ \"version\": 1, \"sha256Hash\": \"<hex>\" }`",
                )
            },
        )?;
    if persisted.version != 1 {
        return Err(AppError::bad_input(format!(
            "persisted queries of version {} are not supported; use version 1",
            persisted.version
        )));
    }
    let hash = persisted.sha256_hash.to_ascii_lowercase();
    if request.query.is_empty() {
        // A hash that is not one is simply not known (Apollo's wording).
        let valid_hash = hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit());
        let text = if valid_hash { store.fetch(&hash).await } else { None };
        request.query = text.ok_or(AppError::PersistedQueryNotFound)?;
        return Ok(Asked::Known);
    }
    if request.query.len() > MAX_QUERY_BYTES {
        return Err(AppError::bad_input(format!(
            "a persisted query may be at most {} KiB, this one is {} KiB; send it as a plain query",
            MAX_QUERY_BYTES / 1024,
            request.query.len().div_ceil(1024)
        )));
    }
    if format!("{:x}", Sha256::digest(request.query.as_bytes())) != hash {
        return Err(AppError::bad_input(
            "`sha256Hash` is not the SHA-256 of the query; hash the exact query text you send",
        ));
    }
    Ok(Asked::Register { hash })
}

/// Keeps `query` under `hash`, unless this window's bytes are spent (then
/// it is simply not kept); whether it was kept. Best effort: a cache that
/// fails keeps nothing.
pub async fn register(store: &PersistedQueries, hash: &str, query: &str) -> bool {
    if store.0.spend_window_bytes("apq", query.len() as u64, MAX_BYTES_PER_WINDOW).await {
        let _ = store.0.write(&key(hash), query.as_bytes()).await;
        true
    } else {
        tracing::warn!("persisted-query registrations over their budget this window; not kept");
        false
    }
}
