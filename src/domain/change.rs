//! What a write changed, and the one place that acts on it.
//!
//! Every domain function that writes returns its result wrapped in
//! [`Changed`], which names what the write changed. The value can only be
//! taken out through [`Effects::publish`], after the write has committed, so
//! no caller can forget to say what changed: the type system remembers for
//! it. `publish` turns changes into cache invalidations, then sends the
//! events the write logged (in its transaction, see `event_log`) to
//! subscribers.

use chrono::{DateTime, Utc};

use super::{dashboard::AnalyticsCache, event_log::Event};
use crate::{
    auth::known::KnownTokens,
    events::EventBus,
    graphql::public::{PublicReads, Stale},
};

/// What happened to a barber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StaffChange {
    /// Added to the shop's staff.
    Added,
    /// Name, bio or whether they take bookings.
    Updated,
}

/// One thing a committed write changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A booking of `barber` at `shop` for `client`; `starts` holds its
    /// start, and for a reschedule its old start too. (What happened to
    /// it is its event's kind.)
    Booking { shop: i64, barber: i64, client: i64, booking: i64, starts: Vec<DateTime<Utc>> },
    /// When `barber` works: weekly hours (`until` is `None`; today's hours
    /// are every date's), or time off `from..until`.
    Hours { shop: i64, barber: i64, from: DateTime<Utc>, until: Option<DateTime<Utc>> },
    /// A shop's details or booking policy.
    Shop { shop: i64 },
    /// A barber of the shop.
    Staff { shop: i64, barber: i64, kind: StaffChange },
    /// `user` gained a role at `shop` (opened it, or joined as its barber).
    Membership { user: i64, shop: i64 },
    /// A service on the shop's menu, or who offers it.
    Service { shop: i64, service: i64 },
    /// A shop's webhooks: one created or deleted.
    Webhooks { shop: i64 },
    /// A user's account: a new one, or a new password.
    Account { user: i64 },
    /// A user's sessions: opened, rotated or ended.
    Sessions { user: i64 },
}

impl Change {
    /// The shop whose staff see the change, if any.
    fn shop(&self) -> Option<i64> {
        match self {
            Change::Booking { shop, .. }
            | Change::Hours { shop, .. }
            | Change::Shop { shop }
            | Change::Staff { shop, .. }
            | Change::Membership { shop, .. }
            | Change::Service { shop, .. }
            | Change::Webhooks { shop } => Some(*shop),
            Change::Account { .. } | Change::Sessions { .. } => None,
        }
    }
}

/// The result of a committed write and what it changed.
#[must_use = "a write's changes must be published (`Effects::publish`), or caches go stale"]
#[derive(Debug)]
pub struct Changed<T> {
    value: T,
    changes: Vec<Change>,
    /// The events the write logged, for subscribers.
    events: Vec<Event>,
}

impl<T> Changed<T> {
    /// `value`, written with one change.
    pub(crate) fn new(value: T, change: Change) -> Self {
        Self { value, changes: vec![change], events: Vec::new() }
    }

    /// The same, with an event the write logged in its transaction.
    pub(crate) fn logged(mut self, event: Event) -> Self {
        self.events.push(event);
        self
    }

    /// The value made into another; the changes stay with it, to be
    /// published.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Changed<U> {
        Changed { value: f(self.value), changes: self.changes, events: self.events }
    }
}

/// What follows a committed write; cheap to clone.
#[derive(Clone)]
pub struct Effects {
    analytics: AnalyticsCache,
    known: KnownTokens,
    public: PublicReads,
    events: EventBus,
}

impl Effects {
    pub fn new(
        analytics: AnalyticsCache,
        known: KnownTokens,
        public: PublicReads,
        events: EventBus,
    ) -> Self {
        Self { analytics, known, public, events }
    }

    /// The identities kept for tokens.
    pub fn known(&self) -> &KnownTokens {
        &self.known
    }

    /// Where committed events go to subscribers.
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// The public answers this invalidates.
    pub fn public(&self) -> &PublicReads {
        &self.public
    }

    /// The analytics this invalidates.
    pub fn analytics(&self) -> &AnalyticsCache {
        &self.analytics
    }

    /// Acts on what a committed write changed, then hands back its value.
    ///
    /// The invalidations run as a task of their own, awaited here: a
    /// request cut off or dropped after its commit (a timeout, a client
    /// gone) still makes what it changed stale. Its events go to
    /// subscribers after: one who reads on an event reads the change.
    pub async fn publish<T>(&self, changed: Changed<T>) -> T {
        let effects = self.clone();
        let changes = changed.changes;
        let events = changed.events;
        let invalidating = tokio::spawn(async move {
            let mut stale = Stale::default();
            for change in &changes {
                effects.invalidate_derived(change, &mut stale).await;
            }
            effects.invalidate_answers(&changes, stale).await;
            if !events.is_empty() {
                effects.events.publish(events).await;
            }
        });
        if let Err(error) = invalidating.await {
            tracing::error!(%error, "invalidating after a write failed");
        }
        changed.value
    }

    /// The kept answers the changes make stale, `stale` (what the derived
    /// caches' changes showed in) with them, made stale at one instant.
    /// Personal answers move with the rest, never before: one computed
    /// before this reads what the derived caches held, and must be
    /// outdated by a bump made no earlier. Whatever happens at a shop may
    /// show in its staff's answers.
    async fn invalidate_answers(&self, changes: &[Change], mut stale: Stale) {
        for change in changes {
            if let Some(shop) = change.shop() {
                stale.shop(shop);
            }
            if let Change::Booking { client, .. } = change {
                stale.client(*client);
            }
        }
        self.public.make_stale(stale).await;
    }

    /// The caches a kept answer reads through, made stale, and the kept
    /// public answers the change shows in, noted in `stale`. Each arm that
    /// invalidates is exercised by `every_kind_of_write_shows_up_in_the_next_query`.
    async fn invalidate_derived(&self, change: &Change, stale: &mut Stale) {
        match change {
            // Every booking change, payments included: a dashboard shows
            // the booking's shop as of the last write to it. A booking
            // takes or frees a slot.
            // Only the days it starts on (before and after a reschedule).
            Change::Booking { shop, barber, starts, .. } => {
                let spans: Vec<_> = starts.iter().map(|start| (*start, *start)).collect();
                self.analytics.invalidate_spans(*shop, &spans).await;
                stale.slots(*barber);
            }
            // Working and free minutes make utilisation, and free slots;
            // the shop's page shows the hours. Time off changes its own
            // days; weekly hours count on every date.
            Change::Hours { shop, barber, from, until } => {
                match until {
                    Some(until) => {
                        let last = *until - chrono::Duration::nanoseconds(1);
                        self.analytics.invalidate_spans(*shop, &[(*from, last.max(*from))]).await;
                    }
                    None => self.analytics.invalidate_shop(*shop).await,
                }
                stale.catalogue(*shop, false);
                stale.slots(*barber);
            }
            // The time zone decides which day and hour a booking falls in;
            // the shop's name and policy show in lists and on its page.
            Change::Shop { shop } => {
                self.analytics.invalidate_shop(*shop).await;
                stale.catalogue(*shop, true);
            }
            // Barber performance lists every barber of the shop; names are
            // read fresh, not cached. Whether a barber takes bookings
            // decides their slots.
            Change::Staff { shop, barber, kind } => {
                if *kind == StaffChange::Added {
                    self.analytics.invalidate_shop(*shop).await;
                }
                stale.catalogue(*shop, true);
                stale.slots(*barber);
            }
            // Top services are made of bookings, which keep their own
            // price; the menu shows the new one.
            Change::Service { shop, .. } => stale.catalogue(*shop, true),
            // A token's kept identity holds the user, their roles and
            // whether its session is open; a new shop is listed.
            Change::Membership { user, shop } => {
                self.known.invalidate_user(*user).await;
                stale.catalogue(*shop, true);
            }
            Change::Account { user } | Change::Sessions { user } => {
                self.known.invalidate_user(*user).await;
            }
            // Read fresh, never kept; only its staff's answers may show it.
            Change::Webhooks { .. } => {}
        }
    }
}
