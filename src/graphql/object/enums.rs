//! GraphQL enums and their domain counterparts.

use async_graphql::Enum;

use crate::{auth, domain::booking::PaymentStatus as DomainPaymentStatus};

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
