//! `Payment`: money received for a booking.

use async_graphql::{ID, Object};
use chrono::{DateTime, Utc};
use entity::payment;

use super::PaymentMethod;
use crate::graphql::id::{self, Kind};

/// Money received for a booking.
pub struct Payment(pub payment::Model);

#[Object]
impl Payment {
    /// Opaque global id.
    pub async fn id(&self) -> ID {
        id::encode(Kind::Payment, self.0.id)
    }

    /// Amount in the booking currency's minor unit (cents).
    async fn amount_cents(&self) -> i64 {
        self.0.amount_cents
    }

    async fn method(&self) -> PaymentMethod {
        self.0.method.into()
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}
