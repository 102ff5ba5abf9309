//! Signed access tokens (JWT, HS256) carried as `Authorization: Bearer`.
//!
//! An access token is short-lived and names its session (`sid`), so that
//! ending the session ends the token at once; `jti` makes each one unique.

use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// Issuer written into and required of every token.
const ISSUER: &str = "bookedbarber";

/// What a token says.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user's row id, as a string (JWT convention).
    pub sub: String,
    /// The session's public id.
    pub sid: String,
    /// This token's own id.
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Expired,
    Invalid,
}

/// The keys and lifetime of tokens.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
    /// How long a refresh token stays valid after it was issued.
    pub refresh_ttl: Duration,
}

/// What a valid access token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub user_id: i64,
    pub session: String,
    /// When the token expires, in Unix seconds.
    pub expires: i64,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

/// A freshly issued token.
pub struct IssuedToken {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

impl TokenKeys {
    /// Keys from `secret`, or from a random secret when none is configured.
    pub fn new(secret: Option<&str>, ttl: Duration, refresh_ttl: Duration) -> Self {
        let secret = match secret {
            Some(secret) => secret.as_bytes().to_vec(),
            None => {
                let mut bytes = vec![0u8; 32];
                rand::rng().fill_bytes(&mut bytes);
                bytes
            }
        };
        Self {
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            ttl,
            refresh_ttl,
        }
    }

    /// Signs a token for `user_id` in `session`, valid for the configured
    /// lifetime.
    pub fn issue(&self, user_id: i64, session: &str) -> anyhow::Result<IssuedToken> {
        let now = Utc::now();
        // Whole seconds, as the token's `exp` claim says.
        let expires_at =
            DateTime::from_timestamp((now + chrono::Duration::from_std(self.ttl)?).timestamp(), 0)
                .ok_or_else(|| anyhow::anyhow!("token expiry out of range"))?;
        let claims = Claims {
            sub: user_id.to_string(),
            sid: session.to_owned(),
            jti: uuid::Uuid::new_v4().simple().to_string(),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            iss: ISSUER.to_owned(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok(IssuedToken { token, expires_at })
    }

    /// The user and session of a valid, unexpired token signed with our key.
    pub fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.leeway = 0;
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(|err| {
                match err.kind() {
                    ErrorKind::ExpiredSignature => TokenError::Expired,
                    _ => TokenError::Invalid,
                }
            })?;
        let user_id = data.claims.sub.parse().map_err(|_| TokenError::Invalid)?;
        Ok(Verified { user_id, session: data.claims.sid, expires: data.claims.exp })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_and_others_do_not() {
        let day = Duration::from_secs(86_400);
        let keys = TokenKeys::new(Some("secret"), Duration::from_secs(60), day);
        let issued = keys.issue(42, "s1").unwrap();
        let expires = issued.expires_at.timestamp();
        assert_eq!(
            keys.verify(&issued.token),
            Ok(Verified { user_id: 42, session: "s1".into(), expires })
        );
        let other = TokenKeys::new(Some("another secret"), Duration::from_secs(60), day);
        assert_eq!(other.verify(&issued.token), Err(TokenError::Invalid));
        assert_eq!(keys.verify("not.a.token"), Err(TokenError::Invalid));
    }
}
