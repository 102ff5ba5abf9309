//! SeaORM entities of BookedBarber: one module per table.
//!
//! Entities know nothing of GraphQL; the server wraps them in its own object
//! types. All instants are UTC; money is integer cents.

pub mod barber;
pub mod barber_service;
pub mod booking;
pub mod booking_event;
pub mod payment;
pub mod service;
pub mod session;
pub mod shop;
pub mod time_off;
pub mod user;
pub mod webhook;
pub mod webhook_delivery;
pub mod working_hours;

pub use booking::BookingStatus;
pub use payment::PaymentMethod;
