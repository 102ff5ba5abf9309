//! `GET /graphql/ws`: subscriptions over WebSocket, in the
//! `graphql-transport-ws` protocol (and the older `graphql-ws`, which
//! async-graphql speaks too).
//!
//! The token goes in `connection_init`'s payload as
//! `{"Authorization": "Bearer <token>"}`; without one the connection is
//! anonymous and may only follow free slots. A connection costs its client
//! a point of the rate limit, and each subscription what its operation
//! costs. Clients hold a bounded number of connections, each a bounded
//! number of subscriptions. The server pings every [`PING_EVERY`] and
//! closes a connection it has heard nothing from (not even a pong) for
//! [`IDLE`].

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use async_graphql::{Context, Data, ErrorExtensions, http::WebSocketProtocols};
use axum::{
    extract::{
        State,
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
    },
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use futures_util::{SinkExt, StreamExt, future};

use super::loader::Loaders;
use crate::{
    app::AppState,
    auth::{Identity, token::TokenError},
    error::{AppError, AppResult},
    events::EventBus,
    protect::{self, ClientIp, ClientKey, RequestBudget},
};

/// Subscriptions one connection may hold at once.
pub const MAX_SUBSCRIPTIONS_PER_CONNECTION: usize = 20;
/// Connections a signed-in user may hold at once.
pub const MAX_CONNECTIONS_PER_USER: usize = 10;
/// Anonymous connections one address may hold at once.
pub const MAX_CONNECTIONS_PER_ADDRESS: usize = 50;
/// How often the server pings.
pub const PING_EVERY: Duration = Duration::from_secs(20);
/// A connection silent this long (no message, no pong) is closed.
pub const IDLE: Duration = Duration::from_secs(60);
/// A connection that has not signed in (`connection_init`, acknowledged)
/// by then is closed with 4408, as the protocol says.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that takes longer than this to take one message is cut off.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest message a client may send.
const MAX_MESSAGE_BYTES: usize = 64 * 1024;

/// Open connections, per client and in all.
#[derive(Default)]
pub struct Sockets(Mutex<HashMap<ClientKey, usize>>);

impl Sockets {
    fn open(&self) -> std::sync::MutexGuard<'_, HashMap<ClientKey, usize>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a place for a connection of `key`, or says why there is none.
    fn enter(state: &AppState, key: &ClientKey) -> AppResult<SocketPlace> {
        let mut open = state.sockets.open();
        let total: usize = open.values().sum();
        let most = match key {
            ClientKey::User(_) => MAX_CONNECTIONS_PER_USER,
            ClientKey::Ip(_) => MAX_CONNECTIONS_PER_ADDRESS,
        };
        if open.get(key).is_some_and(|held| *held >= most) {
            return Err(AppError::RateLimited {
                message: format!(
                    "you hold {most} subscription connections already; close one, or subscribe to more over one connection"
                ),
                retry_after: 1,
            });
        }
        if total >= state.config.max_connections {
            return Err(AppError::Overloaded);
        }
        *open.entry(key.clone()).or_default() += 1;
        metrics::gauge!("bookedbarber_ws_connections").increment(1.0);
        Ok(SocketPlace { state: state.clone(), key: key.clone() })
    }
}

/// A connection's place; given back when the connection ends.
struct SocketPlace {
    state: AppState,
    key: ClientKey,
}

impl Drop for SocketPlace {
    fn drop(&mut self) {
        let mut open = self.state.sockets.open();
        if let Some(held) = open.get_mut(&self.key) {
            *held -= 1;
            if *held == 0 {
                open.remove(&self.key);
            }
        }
        metrics::gauge!("bookedbarber_ws_connections").decrement(1.0);
    }
}

/// One connection's sign-in and its subscriptions, shared by them.
pub struct Session {
    /// Who the connection signed in as.
    pub identity: Identity,
    /// The token, to check again.
    token: Option<String>,
    /// When the token expires, in Unix seconds.
    expires: Option<i64>,
    state: AppState,
    subscriptions: Arc<AtomicUsize>,
    _place: SocketPlace,
}

/// A subscription's place on its connection; given back when it ends.
pub struct SubscriptionPlace(Arc<AtomicUsize>);

impl Drop for SubscriptionPlace {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!("bookedbarber_subscriptions").decrement(1.0);
    }
}

impl Session {
    /// The session of the connection a subscription runs on.
    pub fn of(ctx: &Context<'_>) -> AppResult<Arc<Session>> {
        ctx.data_opt::<Arc<Session>>().cloned().ok_or_else(|| {
            AppError::bad_input("subscriptions are served over WebSocket at `/graphql/ws`")
        })
    }

    /// Where this replica's events arrive.
    pub fn events(&self) -> &EventBus {
        &self.state.events
    }

    /// A place for one more subscription, unless the connection holds
    /// [`MAX_SUBSCRIPTIONS_PER_CONNECTION`].
    pub fn take_slot(&self) -> AppResult<SubscriptionPlace> {
        let held = self.subscriptions.fetch_add(1, Ordering::AcqRel);
        let place = SubscriptionPlace(self.subscriptions.clone());
        metrics::gauge!("bookedbarber_subscriptions").increment(1.0);
        if held >= MAX_SUBSCRIPTIONS_PER_CONNECTION {
            return Err(AppError::bad_input(format!(
                "a connection holds at most {MAX_SUBSCRIPTIONS_PER_CONNECTION} subscriptions; stop one first, or open another connection"
            )));
        }
        Ok(place)
    }

    /// The error of a token that has expired.
    pub fn expired(&self) -> AppError {
        AppError::Unauthenticated(
            "your token has expired; get a new one with `refreshToken` and connect again"
                .to_owned(),
        )
    }

    /// Resolves when the token expires (never for an anonymous connection).
    pub async fn expiry(&self) {
        match self.expires {
            Some(expires) => {
                let left = expires - chrono::Utc::now().timestamp();
                tokio::time::sleep(Duration::from_secs(u64::try_from(left).unwrap_or(0))).await;
            }
            None => future::pending().await,
        }
    }

    /// Who the connection is now: the token checked again (its session may
    /// have ended, its roles changed), from the identity kept for it while
    /// its user's version has not moved.
    pub async fn check(&self) -> AppResult<Identity> {
        let Some(token) = &self.token else {
            return Ok(Identity::Anonymous);
        };
        if self.expires.is_some_and(|expires| expires <= chrono::Utc::now().timestamp()) {
            return Err(self.expired());
        }
        let state = &self.state;
        Ok(Identity::User(state.known.viewer(&state.db, &state.tokens, token).await?))
    }
}

/// `GET /graphql/ws`: upgrades to a subscription connection.
pub async fn handler(
    State(state): State<AppState>,
    ip: ClientIp,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let protocol = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|name| name.trim().parse::<WebSocketProtocols>().ok());
    let Some(protocol) = protocol else {
        return AppError::bad_input(
            "ask for the `graphql-transport-ws` subprotocol (header `Sec-WebSocket-Protocol`)",
        )
        .into_response();
    };
    upgrade
        .protocols([protocol.sec_websocket_protocol()])
        .max_message_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| serve(state, ip, protocol, socket))
        .into_response()
}

/// The token in `connection_init`'s payload, if any.
fn token_of(payload: &serde_json::Value) -> AppResult<Option<String>> {
    let header = ["Authorization", "authorization"]
        .iter()
        .find_map(|name| payload.get(name))
        .and_then(serde_json::Value::as_str);
    let Some(header) = header else {
        return Ok(None);
    };
    header
        .split_once(' ')
        .filter(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty())
        .map(|(_, token)| Some(token.trim().to_owned()))
        .ok_or_else(|| {
            AppError::Unauthenticated(
                "send the token in `connection_init` as {\"Authorization\": \"Bearer <token>\"}"
                    .to_owned(),
            )
        })
}

/// Signs a connection in from its `connection_init` payload: the data
/// every subscription on it runs with.
async fn sign_in(state: AppState, ip: ClientIp, payload: serde_json::Value) -> AppResult<Data> {
    let token = token_of(&payload)?;
    let (identity, expires) = match &token {
        None => (Identity::Anonymous, None),
        Some(token) => {
            let expires = match state.tokens.verify(token) {
                Ok(verified) => verified.expires,
                Err(TokenError::Expired) => {
                    return Err(AppError::Unauthenticated(
                        "your token has expired; get a new one with `refreshToken`".to_owned(),
                    ));
                }
                Err(TokenError::Invalid) => {
                    return Err(AppError::Unauthenticated(
                        "your token is not valid; sign in again with `login`".to_owned(),
                    ));
                }
            };
            let viewer = state.known.viewer(&state.db, &state.tokens, token).await?;
            (Identity::User(viewer), Some(expires))
        }
    };
    let key = match identity.viewer() {
        Some(viewer) => ClientKey::User(viewer.id()),
        None => protect::ip_key(ip.0),
    };
    let budget = state
        .limits
        .charge(&key, 1)
        .await
        .map_err(|overdrawn| overdrawn.error("too many requests: your budget is spent"))?;
    let place = Sockets::enter(&state, &key)?;
    let mut data = Data::default();
    // A subscription follows events as they are committed: its reads go
    // to the primary.
    let route = Arc::new(state.reads.primary_route());
    data.insert(Loaders::for_subscriptions(route.clone()));
    data.insert(route);
    data.insert(super::guard::Asking::new(identity.clone()));
    data.insert(key);
    data.insert(RequestBudget(Arc::new(Mutex::new(budget))));
    data.insert(ip);
    data.insert(Arc::new(Session {
        identity,
        token,
        expires,
        state,
        subscriptions: Arc::new(AtomicUsize::new(0)),
        _place: place,
    }));
    Ok(data)
}

/// Why a connection was refused, as its close frame says it: the error's
/// code and message, cut to the 123 bytes a close frame holds.
fn close_reason(error: &AppError) -> String {
    let extended = error.extend();
    let code = extended
        .extensions
        .as_ref()
        .and_then(|extensions| extensions.get("code"))
        .map(ToString::to_string)
        .unwrap_or_default();
    let mut reason = format!("{}: {}", code.trim_matches('"'), extended.message);
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason.truncate(end);
    reason
}

/// Runs one connection until either side ends it.
async fn serve(state: AppState, ip: ClientIp, protocol: WebSocketProtocols, socket: WebSocket) {
    let (mut sink, stream) = socket.split();
    let heard = Arc::new(Mutex::new(Instant::now()));
    let heard_in = heard.clone();
    let input =
        stream.take_while(|message| future::ready(message.is_ok())).filter_map(move |message| {
            *heard_in.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
            future::ready(match message {
                Ok(message @ (Message::Text(_) | Message::Binary(_))) => Some(message.into_data()),
                _ => None,
            })
        });
    let schema = state.schemas.checked.clone();
    let graphql = async_graphql::http::WebSocket::new(schema, input, protocol)
        .on_connection_init(move |payload| async move {
            sign_in(state, ip, payload)
                .await
                .map_err(|error| async_graphql::Error::new(close_reason(&error)))
        })
        .map(|message| match message {
            async_graphql::http::WsMessage::Text(text) => Message::Text(text.into()),
            async_graphql::http::WsMessage::Close(code, reason) => {
                Message::Close(Some(CloseFrame {
                    code: close_code(code, &reason),
                    reason: reason.into(),
                }))
            }
        });
    futures_util::pin_mut!(graphql);
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let init_deadline = tokio::time::sleep(INIT_TIMEOUT);
    tokio::pin!(init_deadline);
    let mut signed_in = false;
    loop {
        let message = tokio::select! {
            message = graphql.next() => match message {
                Some(message) => message,
                None => break,
            },
            () = &mut init_deadline, if !signed_in => close(4408, "connection initialisation timeout"),
            _ = ping.tick() => {
                let silent = heard.lock().unwrap_or_else(|e| e.into_inner()).elapsed();
                if silent >= IDLE {
                    close(1001, "nothing heard, not even a pong, for 60 s")
                } else {
                    Message::Ping(Vec::new().into())
                }
            }
        };
        if let Message::Text(text) = &message {
            signed_in |= text.as_str().starts_with(r#"{"type":"connection_ack""#);
        }
        let closing = matches!(message, Message::Close(_));
        match tokio::time::timeout(SEND_TIMEOUT, sink.send(message)).await {
            Ok(Ok(())) if !closing => {}
            _ => break,
        }
    }
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: reason.into() }))
}

/// The close code for a refused `connection_init` (async-graphql closes
/// with 1002 whatever the reason): 4403 for a token refused, 4429 for a
/// limit, 1013 (try again later) at capacity.
fn close_code(code: u16, reason: &str) -> u16 {
    if code != 1002 {
        return code;
    }
    match reason.split(':').next().unwrap_or_default() {
        "UNAUTHENTICATED" | "FORBIDDEN" => 4403,
        "RATE_LIMITED" => 4429,
        "OVERLOADED" | "SERVICE_UNAVAILABLE" => 1013,
        _ => code,
    }
}
