//! Live free slots: a barber's day as a client's phone shows it.

use std::time::Duration;

use async_graphql::{Context, ID, Subscription};
use chrono::Utc;
use futures_util::Stream;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::{
    domain::{self, availability::OpenSlots, local_time},
    error::AppError,
    graphql::{
        db,
        id::{self, Kind},
        object::TimeSlot,
        scalar::Date,
        ws::Session,
    },
};

/// The least time between two messages of one subscription.
const COALESCE: Duration = Duration::from_millis(250);

#[derive(Default)]
pub struct SlotsSubscription;

fn time_slots(open: &OpenSlots) -> Vec<TimeSlot> {
    open.slots.iter().map(|&(starts_at, ends_at)| TimeSlot { starts_at, ends_at }).collect()
}

#[Subscription]
impl SlotsSubscription {
    /// The barber's free slots on the shop-local `date`: now, and again
    /// whenever a booking, a cancellation, hours, time off or the shop's
    /// policy changes them (at most one message per 250 ms). For
    /// `serviceId`'s length, or the barber's shortest service. Needs no
    /// sign-in.
    #[graphql(complexity = "crate::graphql::limits::AVAILABLE_SLOTS_WEIGHT + child_complexity")]
    async fn slots_changed(
        &self,
        ctx: &Context<'_>,
        barber_id: ID,
        date: Date,
        service_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<Vec<TimeSlot>>> + use<>>
    {
        let barber_id = id::decode_as(&barber_id, Kind::Barber, "barberId")?;
        let service_id =
            service_id.map(|id| id::decode_as(&id, Kind::Service, "serviceId")).transpose()?;
        let session = Session::of(ctx)?;
        let place = session.take_slot()?;
        let db = db(ctx)?.clone();
        let barber =
            id::found(domain::barber::get(&db, barber_id).await?, Kind::Barber, "barberId")?;
        let shop = domain::shop::by_ids(&db, &[barber.shop_id])
            .await
            .map_err(AppError::from)?
            .remove(&barber.shop_id)
            .ok_or_else(|| AppError::not_found("this barber's shop is gone"))?;
        let (from, until) = local_time::day_bounds(local_time::zone(&shop.timezone), date.0)
            .ok_or_else(|| AppError::bad_input("`date` is out of range"))?;
        let service = match service_id {
            Some(service) => service,
            None => domain::service::by_barbers(&db, &[barber_id])
                .await
                .map_err(AppError::from)?
                .remove(&barber_id)
                .unwrap_or_default()
                .into_iter()
                .min_by_key(|service| (service.duration_minutes, service.id))
                .map(|service| service.id)
                .ok_or_else(|| {
                    AppError::bad_input("this barber offers no service yet; pass `serviceId`")
                })?,
        };
        // Listening before the first answer: no change falls in between.
        let mut live = session.events().subscribe();
        let first =
            domain::availability::available_slots(&db, barber_id, service, date.0, Utc::now())
                .await?;
        let shop_id = shop.id;
        Ok(async_stream::stream! {
            let _place = place;
            let mut open = first;
            let mut last = open.slots.clone();
            let mut sent = tokio::time::Instant::now();
            yield Ok(time_slots(&open));
            loop {
                // Until a change touches the day, or time alone changes it.
                let expires = open.until.map(|until| {
                    tokio::time::Instant::now()
                        + (until - Utc::now()).to_std().unwrap_or(Duration::ZERO)
                });
                let woken = async {
                    loop {
                        match live.recv().await {
                            Ok(event) if event.touches_slots(shop_id, barber_id, from, until) => {
                                return true;
                            }
                            Ok(_) => {}
                            Err(RecvError::Lagged(_)) => return true,
                            Err(RecvError::Closed) => return false,
                        }
                    }
                };
                let go_on = tokio::select! {
                    go_on = woken => go_on,
                    () = async {
                        match expires {
                            Some(at) => tokio::time::sleep_until(at).await,
                            None => std::future::pending().await,
                        }
                    } => true,
                };
                if !go_on {
                    break;
                }
                tokio::time::sleep_until(sent + COALESCE).await;
                // What came while waiting is in the answer about to be read.
                while !matches!(live.try_recv(), Err(TryRecvError::Empty | TryRecvError::Closed)) {}
                open = match domain::availability::available_slots(
                    &db, barber_id, service, date.0, Utc::now(),
                ).await {
                    Ok(open) => open,
                    Err(error) => {
                        yield Err(error.into());
                        break;
                    }
                };
                if open.slots != last {
                    last = open.slots.clone();
                    sent = tokio::time::Instant::now();
                    yield Ok(time_slots(&open));
                }
            }
        })
    }
}
