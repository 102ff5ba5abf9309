//! The `Subscription` root, merged from one part per domain, served over
//! `GET /graphql/ws` (see `ws`).

mod booking;
mod slots;

use std::{collections::VecDeque, sync::Arc};

use async_graphql::MergedSubscription;
use futures_util::Stream;
use sea_orm::DatabaseConnection;
use tokio::sync::broadcast::{self, error::RecvError};

use super::{
    object::BookingEvent,
    ws::{Session, SubscriptionPlace},
};
use crate::{
    auth::Identity,
    domain::event_log::{self, Event},
    error::{AppError, AppResult},
};

/// Every live feed of the API.
#[derive(MergedSubscription, Default)]
pub struct Subscription(booking::BookingSubscription, slots::SlotsSubscription);

/// How often a quiet subscription checks that its viewer may still hold it
/// (a session ended, a role lost).
const RECHECK: std::time::Duration = std::time::Duration::from_secs(30);

/// Event ids a feed remembers having sent, to send none twice (an event
/// may come both from this replica and back through Redis).
const REMEMBERED: usize = 256;

/// The error that ends a feed whose subscriber fell `missed` events behind.
fn fell_behind(missed: u64) -> async_graphql::Error {
    use async_graphql::ErrorExtensions;
    async_graphql::Error::new(format!(
        "this subscription fell {missed} events behind and was ended; subscribe again with `after` set to the last event id you saw"
    ))
    .extend_with(|_, extensions| extensions.set("code", "OVERLOADED"))
}

/// The events of one shop after one event, read from the log.
pub struct Replay {
    pub db: DatabaseConnection,
    pub shop: i64,
    pub after: i64,
}

/// A feed of booking events for a viewer checked just now (`identity`):
/// first what `replay` reads from the log, page by page, then each live
/// event that `wanted` lets through for the viewer as they are at that
/// moment. Before each live event, and every [`RECHECK`], access is checked
/// again with `access`; the feed ends with the error when it is lost, when
/// the token expires, or when the subscriber falls too far behind.
///
/// A shop's events take their ids in commit order (`event_log::record`),
/// so a live event of the replayed shop at or below the last replayed id
/// was replayed already.
fn booking_events(
    session: Arc<Session>,
    place: SubscriptionPlace,
    identity: Identity,
    replay: Option<Replay>,
    mut live: broadcast::Receiver<Arc<Event>>,
    access: impl Fn(&Identity) -> AppResult<()> + Send + 'static,
    wanted: impl Fn(&Identity, &Event) -> bool + Send + 'static,
) -> impl Stream<Item = async_graphql::Result<BookingEvent>> {
    async_stream::stream! {
        let _place = place;
        let mut identity = identity;
        let mut sent: VecDeque<i64> = VecDeque::with_capacity(REMEMBERED);
        let mut replayed = 0;
        if let Some(replay) = replay {
            let mut after = replay.after;
            loop {
                let page = match event_log::booking_events_after(&replay.db, replay.shop, after).await {
                    Ok(page) => page,
                    Err(error) => {
                        yield Err(AppError::from(error).into());
                        return;
                    }
                };
                let last_page = (page.len() as u64) < event_log::MAX_READ;
                for event in page {
                    after = event.id;
                    if wanted(&identity, &event) {
                        yield Ok(BookingEvent(event));
                    }
                }
                if last_page {
                    break;
                }
            }
            replayed = after;
        }
        let expiry = session.expiry();
        tokio::pin!(expiry);
        let mut recheck = tokio::time::interval(RECHECK);
        recheck.tick().await;
        loop {
            let received = tokio::select! {
                () = &mut expiry => {
                    yield Err(session.expired().into());
                    break;
                }
                _ = recheck.tick() => {
                    match session.check().await.and_then(|checked| access(&checked).map(|()| checked)) {
                        Ok(checked) => identity = checked,
                        Err(error) => {
                            yield Err(error.into());
                            break;
                        }
                    }
                    continue;
                }
                received = live.recv() => received,
            };
            let event = match received {
                Ok(event) => event,
                Err(RecvError::Lagged(missed)) => {
                    yield Err(fell_behind(missed));
                    break;
                }
                Err(RecvError::Closed) => break,
            };
            // Replayed or sent already, or not this feed's.
            if event.id <= replayed || sent.contains(&event.id) || !wanted(&identity, &event) {
                continue;
            }
            match session.check().await.and_then(|checked| access(&checked).map(|()| checked)) {
                Ok(checked) => identity = checked,
                Err(error) => {
                    yield Err(error.into());
                    break;
                }
            }
            if wanted(&identity, &event) {
                if sent.len() == REMEMBERED {
                    sent.pop_front();
                }
                sent.push_back(event.id);
                yield Ok(BookingEvent((*event).clone()));
            }
        }
    }
}
