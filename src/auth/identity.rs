//! Who is asking: an anonymous client, or a signed-in user with their roles
//! per shop, loaded in one statement per request.

use std::sync::Arc;

use entity::user;
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, Statement, Value};

use crate::db::prefixed;

/// A user's role at one shop, beyond being a client everywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Created the shop and manages it.
    Owner,
    /// Works there: a barber record linked to the user.
    Barber,
}

/// One shop the viewer has a role at.
#[derive(Clone, Debug)]
pub struct Membership {
    pub shop_id: i64,
    pub role: Role,
    /// The viewer's barber record at this shop, for `Role::Barber`.
    pub barber_id: Option<i64>,
}

/// A signed-in user and every role they hold.
#[derive(Clone, Debug)]
pub struct Viewer {
    pub user: user::Model,
    pub memberships: Vec<Membership>,
    /// The session the request's token belongs to (its public id).
    pub session: Option<String>,
    /// The version of the user's scope (`known::scope`) this was loaded at,
    /// read before loading; `None` when the cache could not tell.
    pub version: Option<u64>,
}

impl Viewer {
    pub fn id(&self) -> i64 {
        self.user.id
    }

    /// Whether the viewer owns `shop_id`.
    pub fn owns(&self, shop_id: i64) -> bool {
        self.memberships.iter().any(|m| m.role == Role::Owner && m.shop_id == shop_id)
    }

    /// The viewer's barber record at `shop_id`, if they work there.
    pub fn barber_at(&self, shop_id: i64) -> Option<i64> {
        self.memberships
            .iter()
            .find(|m| m.role == Role::Barber && m.shop_id == shop_id)
            .and_then(|m| m.barber_id)
    }
}

/// The identity a request runs as.
#[derive(Clone, Debug)]
pub enum Identity {
    Anonymous,
    User(Arc<Viewer>),
}

impl Identity {
    pub fn viewer(&self) -> Option<&Viewer> {
        match self {
            Identity::Anonymous => None,
            Identity::User(viewer) => Some(viewer),
        }
    }
}

/// What became of the account and session a token names.
#[derive(Debug)]
pub enum Loaded {
    Viewer(Viewer),
    /// The account no longer exists.
    NoAccount,
    /// The session was ended (logout, password change, a reused refresh
    /// token).
    SessionEnded,
}

/// The user `user_id` with their memberships, in one statement. With a
/// `session`, the same statement checks that it is still open, so a session
/// that ends ends its access tokens at once; kept identities (`known`)
/// see it through the version its end bumps, on every replica sharing the
/// Redis.
pub async fn load_viewer(
    db: &impl ConnectionTrait,
    user_id: i64,
    session: Option<&str>,
) -> Result<Loaded, DbErr> {
    let backend = db.get_database_backend();
    let (param, session_param) = match backend {
        sea_orm::DbBackend::Postgres => ("$1", "$2"),
        _ => ("?1", "?2"),
    };
    // BIGINT on both databases, so it reads as one type.
    let live = match session {
        Some(_) => format!(
            "CAST(CASE WHEN EXISTS (SELECT 1 FROM sessions ss WHERE ss.public_id = {session_param} \
             AND ss.user_id = u.id AND ss.revoked_at IS NULL) THEN 1 ELSE 0 END AS BIGINT)"
        ),
        None => "CAST(1 AS BIGINT)".to_owned(),
    };
    let sql = format!(
        "SELECT {users}, {live} AS session_live, m.role AS m_role, m.shop_id AS m_shop_id, \
         m.barber_id AS m_barber_id \
         FROM users u \
         LEFT JOIN ( \
             SELECT 'OWNER' AS role, id AS shop_id, CAST(NULL AS BIGINT) AS barber_id \
             FROM shops WHERE owner_id = {param} \
             UNION ALL \
             SELECT 'BARBER' AS role, shop_id, id AS barber_id FROM barbers WHERE user_id = {param} \
         ) m ON 1 = 1 \
         WHERE u.id = {param} \
         ORDER BY m.shop_id",
        users = prefixed::<user::Column>("u", "u_"),
    );
    let mut values = vec![Value::from(user_id)];
    if let Some(session) = session {
        values.push(Value::from(session.to_owned()));
    }
    let rows = db.query_all_raw(Statement::from_sql_and_values(backend, sql, values)).await?;
    let Some(first) = rows.first() else {
        return Ok(Loaded::NoAccount);
    };
    // Read with `?`: a flag that cannot be read refuses, never admits.
    if first.try_get::<i64>("", "session_live")? == 0 {
        return Ok(Loaded::SessionEnded);
    }
    let user = user::Model::from_query_result(first, "u_")?;
    let mut memberships = Vec::new();
    for row in &rows {
        let Some(shop_id) = row.try_get::<Option<i64>>("", "m_shop_id")? else {
            continue;
        };
        let role = match row.try_get::<Option<String>>("", "m_role")?.as_deref() {
            Some("OWNER") => Role::Owner,
            Some("BARBER") => Role::Barber,
            _ => continue,
        };
        let barber_id = row.try_get::<Option<i64>>("", "m_barber_id")?;
        memberships.push(Membership { shop_id, role, barber_id });
    }
    Ok(Loaded::Viewer(Viewer {
        user,
        memberships,
        session: session.map(str::to_owned),
        version: None,
    }))
}
