//! Password hashing with argon2id, off the async runtime.

use anyhow::Context;
use argon2::{
    Argon2,
    password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash},
};

/// Hashes `password` with a fresh random salt into a PHC string.
///
/// Argon2 is deliberately slow, so it runs on the blocking pool.
pub async fn hash(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        let hashed = Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|err| anyhow::anyhow!("hashing a password: {err}"));
        crate::telemetry::password_hashed(started.elapsed());
        hashed
    })
    .await
    .context("joining the password hashing task")?
}

/// Whether `password` matches the PHC string `hash`.
pub async fn verify(password: String, hash: String) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&hash)
            .map_err(|err| anyhow::anyhow!("parsing a stored password hash: {err}"))?;
        let started = std::time::Instant::now();
        let matches = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
        crate::telemetry::password_hashed(started.elapsed());
        Ok(matches)
    })
    .await
    .context("joining the password verification task")?
}
