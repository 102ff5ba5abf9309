//! A WebSocket client speaking `graphql-transport-ws`, as GraphiQL and
//! Apollo Client do, for the subscription tests.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};

use crate::helpers::{TestApp, TestUser};

/// One open subscription connection.
pub struct Socket {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u32,
}

/// How long a test waits for a message it expects.
pub const PATIENCE: Duration = Duration::from_secs(10);

impl Socket {
    /// Opens a connection to `app` and signs in with `user`'s token (none:
    /// anonymous); the server must acknowledge.
    pub async fn open(app: &TestApp, user: Option<&TestUser>) -> Self {
        let payload = match user {
            Some(user) => json!({ "Authorization": format!("Bearer {}", user.token) }),
            None => json!({}),
        };
        match Self::try_open(app, payload).await {
            Ok(socket) => socket,
            Err(closed) => panic!("the connection was refused: {closed}"),
        }
    }

    /// Opens a connection with `payload` in `connection_init`: the socket
    /// once acknowledged, or the close frame's code and reason.
    pub async fn try_open(app: &TestApp, payload: Value) -> Result<Self, String> {
        let mut request = format!("ws://{}/graphql/ws", app.addr).into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-transport-ws"));
        let (ws, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(
            response.headers().get("sec-websocket-protocol").unwrap(),
            "graphql-transport-ws"
        );
        let mut socket = Self { ws, next_id: 0 };
        socket.send(json!({ "type": "connection_init", "payload": payload })).await;
        loop {
            match tokio::time::timeout(PATIENCE, socket.ws.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    let message: Value = serde_json::from_str(&text).unwrap();
                    assert_eq!(message["type"], "connection_ack", "{message}");
                    return Ok(socket);
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Err(frame
                        .map(|f| format!("{} {}", u16::from(f.code), f.reason))
                        .unwrap_or_default());
                }
                Ok(Some(Ok(_))) => {}
                other => panic!("no answer to connection_init: {other:?}"),
            }
        }
    }

    async fn send(&mut self, message: Value) {
        self.ws.send(Message::Text(message.to_string().into())).await.unwrap();
    }

    /// Starts a subscription; its id.
    pub async fn subscribe(&mut self, query: &str, variables: Value) -> String {
        self.next_id += 1;
        let id = self.next_id.to_string();
        self.send(json!({
            "id": id,
            "type": "subscribe",
            "payload": { "query": query, "variables": variables },
        }))
        .await;
        id
    }

    /// Stops subscription `id`.
    pub async fn stop(&mut self, id: &str) {
        self.send(json!({ "id": id, "type": "complete" })).await;
    }

    /// The next `next`, `error` or `complete` message within `within`, or
    /// `None`; pings are answered on the way.
    pub async fn message_within(&mut self, within: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let received = tokio::time::timeout_at(deadline, self.ws.next()).await.ok()?;
            match received {
                Some(Ok(Message::Text(text))) => {
                    let message: Value = serde_json::from_str(&text).unwrap();
                    match message["type"].as_str() {
                        Some("ping") => self.send(json!({ "type": "pong" })).await,
                        Some("pong") => {}
                        _ => return Some(message),
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    return Some(
                        json!({ "type": "closed", "reason": frame.map(|f| f.reason.to_string()) }),
                    );
                }
                Some(Ok(_)) => {}
                None | Some(Err(_)) => return Some(json!({ "type": "closed" })),
            }
        }
    }

    /// The payload of the next message, which must be a `next` of
    /// subscription `id`.
    pub async fn next(&mut self, id: &str) -> Value {
        let message = self.message_within(PATIENCE).await.expect("a message within the patience");
        assert_eq!(message["type"], "next", "{message}");
        assert_eq!(message["id"], id, "{message}");
        message["payload"].clone()
    }

    /// Closes the connection.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// Waits until `app` has `n` subscriptions listening (a subscription
/// listens once its resolver has run: from then on it misses nothing).
pub async fn listening(app: &TestApp, n: usize) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while app.state.events.subscribers() < n || !hears_redis(app) {
        assert!(tokio::time::Instant::now() < deadline, "the subscriptions never listened");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Whether `app` hears other replicas' events, if it has Redis to hear
/// them through.
pub fn hears_redis(app: &TestApp) -> bool {
    app.state.cache.health().backend != "redis" || app.state.events.listening()
}
