//! The `Subscription` root, merged from one part per domain, served over
//! `GET /graphql/ws` (see `ws`).

mod booking;
mod slots;

use std::sync::Arc;

use async_graphql::MergedSubscription;
use futures_util::Stream;
use tokio::sync::broadcast::{self, error::RecvError};

use super::{object::BookingEvent, ws::Session};
use crate::{auth::Identity, domain::event_log::Event, error::AppResult};

/// Every live feed of the API.
#[derive(MergedSubscription, Default)]
pub struct Subscription(booking::BookingSubscription, slots::SlotsSubscription);

/// How often a quiet subscription checks that its viewer may still hold it
/// (a session ended, a role lost).
const RECHECK: std::time::Duration = std::time::Duration::from_secs(30);

/// The error that ends a feed whose subscriber fell `missed` events behind.
fn fell_behind(missed: u64) -> async_graphql::Error {
    use async_graphql::ErrorExtensions;
    async_graphql::Error::new(format!(
        "this subscription fell {missed} events behind and was ended; subscribe again with `after` set to the last event id you saw"
    ))
    .extend_with(|_, extensions| extensions.set("code", "OVERLOADED"))
}

/// A feed of booking events: `replay` first, then each live event that
/// `wanted` lets through for the viewer as they are at that moment. Before
/// each live event, and every [`RECHECK`], access is checked again with
/// `access`; the feed ends with the error when it is lost, when the token
/// expires, or when the subscriber falls too far behind.
fn booking_events(
    session: Arc<Session>,
    replay: Vec<Event>,
    mut live: broadcast::Receiver<Arc<Event>>,
    access: impl Fn(&Identity) -> AppResult<()> + Send + 'static,
    wanted: impl Fn(&Identity, &Event) -> bool + Send + 'static,
) -> AppResult<impl Stream<Item = async_graphql::Result<BookingEvent>>> {
    let slot = session.take_slot()?;
    Ok(async_stream::stream! {
        let _slot = slot;
        let mut last = 0;
        for event in replay {
            last = last.max(event.id);
            if wanted(&session.identity, &event) {
                yield Ok(BookingEvent(event));
            }
        }
        let replayed = last;
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
                    if let Err(error) = session.check().await.and_then(|identity| access(&identity)) {
                        yield Err(error.into());
                        break;
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
            // Already sent from the log, or not this feed's.
            if event.id <= replayed || !wanted(&session.identity, &event) {
                continue;
            }
            let identity = match session.check().await.and_then(|identity| {
                access(&identity)?;
                Ok(identity)
            }) {
                Ok(identity) => identity,
                Err(error) => {
                    yield Err(error.into());
                    break;
                }
            };
            if wanted(&identity, &event) {
                last = last.max(event.id);
                yield Ok(BookingEvent((*event).clone()));
            }
        }
        let _ = last;
    })
}
