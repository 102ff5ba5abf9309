//! GraphQL enums and their domain counterparts.

use async_graphql::Enum;

use crate::{
    auth,
    domain::{booking::PaymentStatus as DomainPaymentStatus, event_log::EventKind},
};

/// What happened to a booking.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BookingEventKind {
    /// Booked.
    Created,
    /// Moved to another time.
    Rescheduled,
    /// Called off.
    Cancelled,
    /// Took place.
    Completed,
    /// The client did not come.
    NoShow,
    /// A payment was recorded.
    Paid,
}

impl BookingEventKind {
    /// The booking kind of `kind`, if it is one.
    pub fn of(kind: EventKind) -> Option<Self> {
        Some(match kind {
            EventKind::Created => Self::Created,
            EventKind::Rescheduled => Self::Rescheduled,
            EventKind::Cancelled => Self::Cancelled,
            EventKind::Completed => Self::Completed,
            EventKind::NoShow => Self::NoShow,
            EventKind::Paid => Self::Paid,
            _ => return None,
        })
    }
}

impl From<BookingEventKind> for EventKind {
    fn from(kind: BookingEventKind) -> Self {
        match kind {
            BookingEventKind::Created => Self::Created,
            BookingEventKind::Rescheduled => Self::Rescheduled,
            BookingEventKind::Cancelled => Self::Cancelled,
            BookingEventKind::Completed => Self::Completed,
            BookingEventKind::NoShow => Self::NoShow,
            BookingEventKind::Paid => Self::Paid,
        }
    }
}

/// Anything in a shop's audit log: a booking's events and changes to its
/// staff, hours, policy and menu.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuditEventKind {
    Created,
    Rescheduled,
    Cancelled,
    Completed,
    NoShow,
    Paid,
    /// A barber was added (and, with an email, invited).
    BarberAdded,
    /// An invited user accepted and now works there.
    BarberJoined,
    /// A barber's name, bio, or whether they take bookings.
    BarberUpdated,
    /// A barber's week was replaced.
    HoursSet,
    TimeOffAdded,
    /// The shop's details or booking policy.
    ShopUpdated,
    ServiceCreated,
    ServiceUpdated,
    /// A webhook was created (its secret is not logged).
    WebhookCreated,
    WebhookDeleted,
}

impl From<EventKind> for AuditEventKind {
    fn from(kind: EventKind) -> Self {
        match kind {
            EventKind::Created => Self::Created,
            EventKind::Rescheduled => Self::Rescheduled,
            EventKind::Cancelled => Self::Cancelled,
            EventKind::Completed => Self::Completed,
            EventKind::NoShow => Self::NoShow,
            EventKind::Paid => Self::Paid,
            EventKind::BarberAdded => Self::BarberAdded,
            EventKind::BarberJoined => Self::BarberJoined,
            EventKind::BarberUpdated => Self::BarberUpdated,
            EventKind::HoursSet => Self::HoursSet,
            EventKind::TimeOffAdded => Self::TimeOffAdded,
            EventKind::ShopUpdated => Self::ShopUpdated,
            EventKind::ServiceCreated => Self::ServiceCreated,
            EventKind::ServiceUpdated => Self::ServiceUpdated,
            EventKind::WebhookCreated => Self::WebhookCreated,
            EventKind::WebhookDeleted => Self::WebhookDeleted,
        }
    }
}

impl From<AuditEventKind> for EventKind {
    fn from(kind: AuditEventKind) -> Self {
        match kind {
            AuditEventKind::Created => Self::Created,
            AuditEventKind::Rescheduled => Self::Rescheduled,
            AuditEventKind::Cancelled => Self::Cancelled,
            AuditEventKind::Completed => Self::Completed,
            AuditEventKind::NoShow => Self::NoShow,
            AuditEventKind::Paid => Self::Paid,
            AuditEventKind::BarberAdded => Self::BarberAdded,
            AuditEventKind::BarberJoined => Self::BarberJoined,
            AuditEventKind::BarberUpdated => Self::BarberUpdated,
            AuditEventKind::HoursSet => Self::HoursSet,
            AuditEventKind::TimeOffAdded => Self::TimeOffAdded,
            AuditEventKind::ShopUpdated => Self::ShopUpdated,
            AuditEventKind::ServiceCreated => Self::ServiceCreated,
            AuditEventKind::ServiceUpdated => Self::ServiceUpdated,
            AuditEventKind::WebhookCreated => Self::WebhookCreated,
            AuditEventKind::WebhookDeleted => Self::WebhookDeleted,
        }
    }
}

/// Where a booking is in its life.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BookingStatus {
    /// Booked; holds the barber's time.
    Confirmed,
    /// Called off by the client or the shop.
    Cancelled,
    /// Took place.
    Completed,
    /// The client did not come.
    NoShow,
}

impl From<entity::BookingStatus> for BookingStatus {
    fn from(status: entity::BookingStatus) -> Self {
        match status {
            entity::BookingStatus::Confirmed => Self::Confirmed,
            entity::BookingStatus::Cancelled => Self::Cancelled,
            entity::BookingStatus::Completed => Self::Completed,
            entity::BookingStatus::NoShow => Self::NoShow,
        }
    }
}

impl From<BookingStatus> for entity::BookingStatus {
    fn from(status: BookingStatus) -> Self {
        match status {
            BookingStatus::Confirmed => Self::Confirmed,
            BookingStatus::Cancelled => Self::Cancelled,
            BookingStatus::Completed => Self::Completed,
            BookingStatus::NoShow => Self::NoShow,
        }
    }
}

/// How much of a booking's price has been paid.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentStatus {
    Unpaid,
    PartiallyPaid,
    Paid,
    Refunded,
}

impl From<DomainPaymentStatus> for PaymentStatus {
    fn from(status: DomainPaymentStatus) -> Self {
        match status {
            DomainPaymentStatus::Unpaid => Self::Unpaid,
            DomainPaymentStatus::PartiallyPaid => Self::PartiallyPaid,
            DomainPaymentStatus::Paid => Self::Paid,
        }
    }
}

/// How a payment was made.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentMethod {
    Card,
    Cash,
    Other,
}

impl From<entity::PaymentMethod> for PaymentMethod {
    fn from(method: entity::PaymentMethod) -> Self {
        match method {
            entity::PaymentMethod::Card => Self::Card,
            entity::PaymentMethod::Cash => Self::Cash,
            entity::PaymentMethod::Other => Self::Other,
        }
    }
}

/// A role at a shop, beyond being a client.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Manages the shop.
    Owner,
    /// Works at the shop.
    Barber,
}

impl From<auth::Role> for Role {
    fn from(role: auth::Role) -> Self {
        match role {
            auth::Role::Owner => Self::Owner,
            auth::Role::Barber => Self::Barber,
        }
    }
}
