//! Tokens already checked: the identity a token stands for, kept in
//! process so that a signed-in request costs what an anonymous one does.
//!
//! An entry holds the viewer (user, roles, session) and the version of the
//! user's scope (`identity:{user}`) it was loaded at. Every write that
//! changes what an identity holds (a role gained, a password changed, a
//! session opened or ended) bumps that version through
//! `Effects::publish`, in the shared cache (Redis with `REDIS_URL`), so the
//! next request on any replica sees the new version, drops its copy and
//! loads the identity again. The version is read on every request: with
//! Redis, one round trip in place of the database statement, or none of
//! its own when a kept answer's versions, read anyway, include it (`peek`). When the
//! version cannot be read, the identity is loaded from the database and
//! nothing is kept.

use std::{sync::Arc, time::Duration};

use sea_orm::DatabaseConnection;

use super::{
    Viewer,
    identity::{Loaded, load_viewer},
    token::{TokenError, TokenKeys},
};
use crate::{cache::Cache, error::AppError};

/// Tokens kept at most; a token costs about a kilobyte with its viewer.
const CAPACITY: u64 = 100_000;

/// A token unused this long is forgotten.
const IDLE: Duration = Duration::from_secs(600);

/// The scope whose version a user's cached identities hold.
pub fn scope(user_id: i64) -> String {
    format!("identity:{user_id}")
}

struct Known {
    viewer: Arc<Viewer>,
    /// The version of the user's scope the viewer was loaded at.
    version: u64,
    /// When the token expires, in Unix seconds.
    expires: i64,
}

/// Identities of tokens already checked; cheap to clone.
#[derive(Clone)]
pub struct KnownTokens {
    cache: Cache,
    tokens: moka::sync::Cache<String, Arc<Known>>,
}

impl std::fmt::Debug for KnownTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnownTokens").field("entries", &self.tokens.entry_count()).finish()
    }
}

fn expired() -> AppError {
    AppError::Unauthenticated(
        "your token has expired; get a new one with `refreshToken`, or sign in again with `login`"
            .to_owned(),
    )
}

impl KnownTokens {
    /// Keeps identities against the versions in `cache`.
    pub fn new(cache: Cache) -> Self {
        Self {
            cache,
            tokens: moka::sync::Cache::builder().max_capacity(CAPACITY).time_to_idle(IDLE).build(),
        }
    }

    /// The viewer `token` stands for: from the copy kept here while the
    /// user's version has not moved, else checked and loaded anew.
    pub async fn viewer(
        &self,
        db: &DatabaseConnection,
        keys: &TokenKeys,
        token: &str,
    ) -> Result<Arc<Viewer>, AppError> {
        if let Some(known) = self.tokens.get(token) {
            if known.expires <= chrono::Utc::now().timestamp() {
                self.tokens.invalidate(token);
                return Err(expired());
            }
            if self.cache.version(&scope(known.viewer.id())).await.ok() == Some(known.version) {
                metrics::counter!("bookedbarber_identity_cache_total", "outcome" => "hit")
                    .increment(1);
                return Ok(known.viewer.clone());
            }
            // Outdated: forgotten, so that a token that no longer stands
            // is not taken as kept (`peek`); kept anew below if it does.
            self.tokens.invalidate(token);
        }
        let verified = keys.verify(token).map_err(|err| match err {
            TokenError::Expired => expired(),
            TokenError::Invalid => AppError::Unauthenticated(
                "your token is not valid; sign in again with `login`".to_owned(),
            ),
        })?;
        // Read before loading: a write that lands in between moves the
        // version past this copy, and the next request loads again.
        let version = self.cache.version(&scope(verified.user_id)).await.ok();
        let viewer = match load_viewer(db, verified.user_id, Some(&verified.session)).await? {
            Loaded::Viewer(viewer) => Arc::new(Viewer { version, ..viewer }),
            Loaded::NoAccount => {
                return Err(AppError::Unauthenticated(
                    "the account of this token no longer exists; register or sign in again"
                        .to_owned(),
                ));
            }
            Loaded::SessionEnded => {
                return Err(AppError::Unauthenticated(
                    "the session of this token has ended (signed out or password changed); sign in again with `login`"
                        .to_owned(),
                ));
            }
        };
        let outcome = match version {
            Some(version) => {
                let known = Known { viewer: viewer.clone(), version, expires: verified.expires };
                self.tokens.insert(token.to_owned(), Arc::new(known));
                "miss"
            }
            None => "fallback",
        };
        metrics::counter!("bookedbarber_identity_cache_total", "outcome" => outcome).increment(1);
        Ok(viewer)
    }

    /// Like [`viewer`](Self::viewer), given the user's version as the
    /// caller read it in a round trip it made anyway (`None`: not read, or
    /// the user has none yet).
    pub async fn viewer_at(
        &self,
        db: &DatabaseConnection,
        keys: &TokenKeys,
        token: &str,
        version: Option<u64>,
    ) -> Result<Arc<Viewer>, AppError> {
        if let (Some(known), Some(version)) = (self.tokens.get(token), version)
            && known.expires > chrono::Utc::now().timestamp()
            && known.version == version
        {
            metrics::counter!("bookedbarber_identity_cache_total", "outcome" => "hit").increment(1);
            return Ok(known.viewer.clone());
        }
        self.viewer(db, keys, token).await
    }

    /// The viewer kept for `token`, its version not read again: for a caller
    /// that reads it in a round trip it makes anyway (a kept answer holds
    /// the same scope) and checks it equals `Viewer::version`. `None` when
    /// nothing is kept or the token has expired.
    pub fn peek(&self, token: &str) -> Option<Arc<Viewer>> {
        let known = self.tokens.get(token)?;
        (known.expires > chrono::Utc::now().timestamp()).then(|| known.viewer.clone())
    }

    /// Counts a peeked viewer whose version was found current.
    pub fn confirmed(&self) {
        metrics::counter!("bookedbarber_identity_cache_total", "outcome" => "hit").increment(1);
    }

    /// Makes every kept identity of `user_id` stale, here and on every
    /// replica.
    pub async fn invalidate_user(&self, user_id: i64) {
        self.cache.bump(&[scope(user_id)]).await;
    }
}
