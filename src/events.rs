//! Committed events on their way to subscribers.
//!
//! Each replica keeps one in-process broadcast that its subscriptions
//! read. With `REDIS_URL`, an event is published to Redis and every
//! replica (this one too) feeds it from there into its broadcast, so a
//! booking made on one replica reaches a calendar open on another. Without
//! Redis, or while this replica is not listening to Redis, events go
//! straight into the local broadcast. Nothing here is the record: the
//! event log is, and a subscriber that missed events reads them from it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures_util::StreamExt;
use tokio::sync::{Notify, broadcast, oneshot};

use crate::{cache::Cache, domain::event_log::Event};

/// Events a subscriber may fall behind by before it is cut off.
pub const BACKLOG: usize = 4096;

/// How often the listener pings Redis, to find a connection that died
/// without closing.
const LISTENER_PING: Duration = Duration::from_secs(15);

/// The channel events travel on between replicas (under the key prefix).
const CHANNEL: &str = "events";

/// Where committed events go; cheap to clone.
#[derive(Clone)]
pub struct EventBus(Arc<Inner>);

struct Inner {
    local: broadcast::Sender<Arc<Event>>,
    cache: Cache,
    /// Whether this replica hears Redis's channel now.
    listening: Arc<AtomicBool>,
    /// Wakes this replica's webhook worker when deliveries may be due.
    deliveries: Arc<Notify>,
    /// Ends the listener when the bus goes.
    _stop: Option<oneshot::Sender<()>>,
}

impl EventBus {
    /// A bus for one replica; with `redis_url`, fed from Redis by a task
    /// that reconnects until the bus is dropped.
    pub fn new(redis_url: Option<&str>, cache: Cache) -> anyhow::Result<Self> {
        let (local, _) = broadcast::channel(BACKLOG);
        let listening = Arc::new(AtomicBool::new(false));
        let stop = match redis_url {
            Some(url) => {
                let client = deadpool_redis::redis::Client::open(url)?;
                let (stop, stopped) = oneshot::channel();
                let listener =
                    listen(client, cache.channel(CHANNEL), local.clone(), listening.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        () = listener => {}
                        _ = stopped => {}
                    }
                });
                Some(stop)
            }
            None => None,
        };
        Ok(Self(Arc::new(Inner {
            local,
            cache,
            listening,
            deliveries: Arc::new(Notify::new()),
            _stop: stop,
        })))
    }

    /// Every event from now on, until the receiver falls [`BACKLOG`]
    /// behind.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.0.local.subscribe()
    }

    /// Sends committed `events` to every replica's subscribers: through
    /// Redis whenever it takes them, and straight to this replica's own
    /// unless this replica hears them back from Redis.
    pub async fn publish(&self, events: Vec<Event>) {
        self.0.deliveries.notify_one();
        let payloads: Vec<Vec<u8>> =
            events.iter().filter_map(|event| serde_json::to_vec(event).ok()).collect();
        let published = matches!(self.0.cache.publish(CHANNEL, &payloads).await, Ok(true));
        let heard_back = published && self.0.listening.load(Ordering::Acquire);
        metrics::counter!(
            "bookedbarber_events_published_total",
            "via" => if published { "redis" } else { "local" }
        )
        .increment(events.len() as u64);
        if !heard_back {
            for event in events {
                // No receiver is no subscriber: nothing to do.
                let _ = self.0.local.send(Arc::new(event));
            }
        }
    }

    /// Subscriptions listening on this replica now.
    pub fn subscribers(&self) -> usize {
        self.0.local.receiver_count()
    }

    /// Whether events reach this replica through Redis now (always false
    /// without Redis).
    pub fn listening(&self) -> bool {
        self.0.listening.load(Ordering::Acquire)
    }

    /// Notified when an event was published here: deliveries may be due.
    pub fn deliveries(&self) -> Arc<Notify> {
        self.0.deliveries.clone()
    }
}

/// Feeds Redis's channel into `local`, reconnecting after a second when
/// the connection fails.
async fn listen(
    client: deadpool_redis::redis::Client,
    channel: String,
    local: broadcast::Sender<Arc<Event>>,
    listening: Arc<AtomicBool>,
) {
    loop {
        match subscribed(&client, &channel).await {
            Ok(pubsub) => {
                listening.store(true, Ordering::Release);
                tracing::info!("listening for events on Redis");
                let (mut sink, mut messages) = pubsub.split();
                let mut ping = tokio::time::interval(LISTENER_PING);
                ping.tick().await;
                loop {
                    tokio::select! {
                        message = messages.next() => {
                            let Some(message) = message else { break };
                            match serde_json::from_slice::<Event>(message.get_payload_bytes()) {
                                Ok(event) => {
                                    let _ = local.send(Arc::new(event));
                                }
                                Err(error) => {
                                    tracing::warn!(%error, "an event from Redis did not parse");
                                }
                            }
                        }
                        _ = ping.tick() => {
                            let answered = tokio::time::timeout(
                                Duration::from_secs(2),
                                sink.ping::<deadpool_redis::redis::Value>(),
                            )
                            .await;
                            if !matches!(answered, Ok(Ok(_))) {
                                break;
                            }
                        }
                    }
                }
                listening.store(false, Ordering::Release);
                tracing::warn!("stopped hearing events from Redis; reconnecting");
            }
            Err(error) => tracing::debug!(%error, "cannot listen for events on Redis yet"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn subscribed(
    client: &deadpool_redis::redis::Client,
    channel: &str,
) -> deadpool_redis::redis::RedisResult<deadpool_redis::redis::aio::PubSub> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub)
}
