//! Password hashing with argon2id, off the async runtime.
//!
//! Argon2 is deliberately slow and memory-hard: each hash fills 19 MiB
//! (the crate's defaults, OWASP's minimum). Allocating that afresh for
//! every hash made the kernel fault in and zero 19 MiB each time, about as
//! much CPU again as a third of the hash itself. So hashes run at most
//! one per core at a time (a burst of sign-ins waits its turn, rather than
//! holding 19 MiB per blocking thread), each in memory kept from the last
//! one: one buffer per core, for the life of the process.

use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use anyhow::Context;
use argon2::{
    Algorithm, Argon2, Block, Params, Version,
    password_hash::phc::{Output, ParamsString, PasswordHash, Salt},
};
use tokio::sync::Semaphore;

/// Turns to hash, and the memory hashes run in.
struct Hashing {
    turns: Arc<Semaphore>,
    memory: Mutex<Vec<Vec<Block>>>,
}

static HASHING: LazyLock<Hashing> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    Hashing {
        turns: Arc::new(Semaphore::new(cores)),
        memory: Mutex::new(Vec::with_capacity(cores)),
    }
});

/// Runs `hash` on the blocking pool in its turn, with memory of `blocks`
/// blocks: a kept buffer when it is the default size.
async fn in_turn<T: Send + 'static>(
    blocks: usize,
    hash: impl FnOnce(&mut [Block]) -> T + Send + 'static,
) -> anyhow::Result<T> {
    // The turn goes with the hash: a request given up on (its timeout)
    // leaves the hash running, and the turn held until it ends.
    let turn =
        HASHING.turns.clone().acquire_owned().await.context("the hashing turns are closed")?;
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        let kept = (blocks == Params::DEFAULT_M_COST as usize)
            .then(|| HASHING.memory.lock().unwrap_or_else(PoisonError::into_inner).pop())
            .flatten();
        // Argon2 writes every block before it reads it: no need to zero.
        let mut memory = kept.unwrap_or_else(|| vec![Block::default(); blocks]);
        let started = cpu_time::ThreadTime::now();
        let hashed = hash(&mut memory);
        crate::telemetry::password_hashed(started.elapsed());
        if memory.len() == Params::DEFAULT_M_COST as usize {
            HASHING.memory.lock().unwrap_or_else(PoisonError::into_inner).push(memory);
        }
        hashed
    })
    .await
    .context("joining the password hashing task")
}

/// Hashes `password` with a fresh random salt into a PHC string.
pub async fn hash(password: String) -> anyhow::Result<String> {
    let params = Params::default();
    let salt = Salt::new(&rand::random::<[u8; Salt::RECOMMENDED_LENGTH]>())
        .map_err(|err| anyhow::anyhow!("making a salt: {err}"))?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    in_turn(params.block_count(), move |memory| {
        argon2.hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, memory)?;
        let hash = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params)?,
            salt: Some(salt),
            hash: Some(Output::new(&out)?),
        };
        Ok::<_, argon2::password_hash::Error>(hash.to_string())
    })
    .await?
    .map_err(|err| anyhow::anyhow!("hashing a password: {err}"))
}

fn unreadable(err: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("reading a stored password hash: {err}")
}

/// Whether `password` matches the PHC string `hash`.
pub async fn verify(password: String, hash: String) -> anyhow::Result<bool> {
    let parsed = PasswordHash::new(&hash)
        .map_err(|err| anyhow::anyhow!("parsing a stored password hash: {err}"))?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        anyhow::bail!("a stored password hash without its salt or output");
    };
    let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).map_err(unreadable)?;
    let version = match parsed.version {
        Some(version) => Version::try_from(version).map_err(unreadable)?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).map_err(unreadable)?;
    let argon2 = Argon2::new(algorithm, version, params.clone());
    in_turn(params.block_count(), move |memory| {
        let mut out = vec![0u8; expected.len()];
        argon2.hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, memory).is_ok()
            // `Output`'s comparison takes the same time wherever they differ.
            && Output::new(&out).is_ok_and(|computed| computed == expected)
    })
    .await
}

#[cfg(test)]
mod tests {
    use argon2::{PasswordHasher, PasswordVerifier};

    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2s_own_both_ways() {
        let ours = hash("correct horse".to_owned()).await.unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{ours}");
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"correct horse", &parsed).is_ok());
        assert!(Argon2::default().verify_password(b"correct horsE", &parsed).is_err());
        assert!(verify("correct horse".to_owned(), ours.clone()).await.unwrap());
        assert!(!verify("correct horsE".to_owned(), ours.clone()).await.unwrap());
        assert_ne!(ours, hash("correct horse".to_owned()).await.unwrap(), "a fresh salt each time");
        // The crate's own, and one with other parameters (not the kept size).
        let theirs = Argon2::default().hash_password(b"battery staple").unwrap().to_string();
        assert!(verify("battery staple".to_owned(), theirs.clone()).await.unwrap());
        assert!(!verify("battery stapler".to_owned(), theirs).await.unwrap());
        let small = Argon2::from(Params::new(8192, 3, 1, None).unwrap())
            .hash_password(b"battery staple")
            .unwrap()
            .to_string();
        assert!(verify("battery staple".to_owned(), small).await.unwrap());
    }
}
