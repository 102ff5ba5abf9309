//! Sessions: one per sign-in, a family of refresh tokens of which only the
//! newest is valid.
//!
//! A refresh token reads `<session>.<generation>.<secret>`; only the SHA-256
//! of the current one is stored. Each use rotates it (the next generation,
//! a new secret). A token of an older generation presented again means that
//! it was copied: the whole session ends, for its thief and its owner alike
//! (the owner signs in again). Ending a session also ends its access tokens,
//! which name it and are checked against it on every request.

use chrono::{DateTime, Utc};
use entity::session;
use rand::RngCore;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, NotSet,
    QueryFilter, sea_query::Expr,
};
use sha2::{Digest, Sha256};

use super::change::{Change, Changed};
use crate::error::{AppError, AppResult};

/// A session with the refresh token just issued for it.
pub struct Issued {
    pub session: session::Model,
    pub refresh_token: String,
}

fn hash(token: &str) -> String {
    format!("{:x}", Sha256::digest(token.as_bytes()))
}

fn token_for(public_id: &str, generation: i64) -> String {
    use base64::Engine;
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    format!("{public_id}.{generation}.{secret}")
}

fn invalid() -> AppError {
    AppError::Unauthenticated(
        "this refresh token is not valid; sign in again with `login`".to_owned(),
    )
}

/// Opens a session for `user_id` whose refresh token lives `ttl`.
#[tracing::instrument(skip_all, fields(user.id = user_id))]
pub async fn open(
    db: &impl ConnectionTrait,
    user_id: i64,
    ttl: std::time::Duration,
) -> AppResult<Changed<Issued>> {
    let public_id = uuid::Uuid::new_v4().simple().to_string();
    let refresh_token = token_for(&public_id, 0);
    let now = Utc::now();
    let session = session::ActiveModel {
        id: NotSet,
        public_id: Set(public_id),
        user_id: Set(user_id),
        generation: Set(0),
        refresh_hash: Set(hash(&refresh_token)),
        created_at: Set(now),
        refreshed_at: Set(now),
        expires_at: Set(expiry(now, ttl)?),
        revoked_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(Changed::new(Issued { session, refresh_token }, Change::Sessions { user: user_id }))
}

fn expiry(now: DateTime<Utc>, ttl: std::time::Duration) -> AppResult<DateTime<Utc>> {
    chrono::Duration::from_std(ttl)
        .ok()
        .and_then(|ttl| now.checked_add_signed(ttl))
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("refresh token lifetime out of range")))
}

/// Rotates `token`: the session with its next refresh token, valid `ttl`.
/// A token already rotated away ends the session: that is a write too, so
/// it comes back as a change whose value is the error the client gets. An
/// outer error means nothing was written.
#[tracing::instrument(skip_all)]
pub async fn refresh(
    db: &impl ConnectionTrait,
    token: &str,
    ttl: std::time::Duration,
) -> AppResult<Changed<AppResult<Issued>>> {
    let mut parts = token.trim().splitn(3, '.');
    let (Some(public_id), Some(generation), Some(_secret)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid());
    };
    let Ok(generation) = generation.parse::<i64>() else { return Err(invalid()) };
    let Some(session) =
        session::Entity::find().filter(session::Column::PublicId.eq(public_id)).one(db).await?
    else {
        return Err(invalid());
    };
    if session.revoked_at.is_some() {
        return Err(AppError::Unauthenticated(
            "this session has ended; sign in again with `login`".to_owned(),
        ));
    }
    if generation < session.generation {
        // A token that was already exchanged: someone kept a copy.
        end(db, public_id).await?;
        tracing::warn!(
            session.id = session.id,
            "a rotated refresh token was reused; session ended"
        );
        let refused = AppError::Unauthenticated(
            "this refresh token was already used, so the session was ended to keep it safe; sign in again with `login`"
                .to_owned(),
        );
        return Ok(Changed::new(Err(refused), Change::Sessions { user: session.user_id }));
    }
    if generation != session.generation || hash(token.trim()) != session.refresh_hash {
        return Err(invalid());
    }
    let now = Utc::now();
    if session.expires_at <= now {
        return Err(AppError::Unauthenticated(
            "this refresh token has expired; sign in again with `login`".to_owned(),
        ));
    }
    let next = token_for(public_id, generation + 1);
    let next_hash = hash(&next);
    let expires_at = expiry(now, ttl)?;
    // Conditional on the generation: of two uses of one token, one wins and
    // the other is a reuse.
    let rotated = session::Entity::update_many()
        .col_expr(session::Column::Generation, Expr::value(generation + 1))
        .col_expr(session::Column::RefreshHash, Expr::value(next_hash.clone()))
        .col_expr(session::Column::RefreshedAt, Expr::value(now))
        .col_expr(session::Column::ExpiresAt, Expr::value(expires_at))
        .filter(session::Column::Id.eq(session.id))
        .filter(session::Column::Generation.eq(generation))
        .filter(session::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    if rotated.rows_affected == 0 {
        end(db, public_id).await?;
        let refused = AppError::Unauthenticated(
            "this refresh token was used twice at once, so the session was ended to keep it safe; sign in again with `login`"
                .to_owned(),
        );
        return Ok(Changed::new(Err(refused), Change::Sessions { user: session.user_id }));
    }
    let user = session.user_id;
    let session = session::Model {
        generation: generation + 1,
        refresh_hash: next_hash,
        refreshed_at: now,
        expires_at,
        ..session
    };
    Ok(Changed::new(Ok(Issued { session, refresh_token: next }), Change::Sessions { user }))
}

/// Ends `user_id`'s session `public_id` (and with it its access tokens).
pub async fn revoke(
    db: &impl ConnectionTrait,
    user_id: i64,
    public_id: &str,
) -> AppResult<Changed<()>> {
    end(db, public_id).await?;
    Ok(Changed::new((), Change::Sessions { user: user_id }))
}

/// Ends the session `public_id`.
async fn end(db: &impl ConnectionTrait, public_id: &str) -> AppResult<()> {
    session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(session::Column::PublicId.eq(public_id))
        .filter(session::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}

/// Ends every session of `user_id` but `except`; how many ended.
pub async fn revoke_all(
    db: &impl ConnectionTrait,
    user_id: i64,
    except: Option<&str>,
) -> AppResult<Changed<u64>> {
    let mut update = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, Expr::value(Utc::now()))
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::RevokedAt.is_null());
    if let Some(keep) = except {
        update = update.filter(session::Column::PublicId.ne(keep));
    }
    let ended = update.exec(db).await?.rows_affected;
    Ok(Changed::new(ended, Change::Sessions { user: user_id }))
}
