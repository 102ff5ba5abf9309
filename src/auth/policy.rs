//! The one place that decides who may read what.
//!
//! Browsing shops, barbers and services is public. Everything about a
//! person or a shop's business needs a signed-in viewer: a client sees their
//! own bookings, a barber the bookings in their own schedule, an owner all of
//! their shop's; nobody sees another shop's.

use entity::{barber, booking};

use super::identity::{Identity, Viewer};
use crate::error::{AppError, AppResult};

/// The signed-in viewer, or `UNAUTHENTICATED`.
pub fn require_viewer(identity: &Identity) -> AppResult<&Viewer> {
    identity.viewer().ok_or_else(|| {
        AppError::Unauthenticated(
            "sign in first: send `Authorization: Bearer <token>` with a token from `login` or `register`"
                .to_owned(),
        )
    })
}

fn forbidden(what: &str) -> AppError {
    AppError::Forbidden(format!("you may not see {what}"))
}

/// Whether `viewer` runs barber `barber_id`'s schedule at `shop_id`: the
/// shop's owner, or that barber.
fn runs_schedule(viewer: &Viewer, shop_id: i64, barber_id: i64) -> bool {
    viewer.owns(shop_id) || viewer.barber_at(shop_id) == Some(barber_id)
}

/// Whether `viewer` may read `booking`.
pub fn can_read_booking(viewer: &Viewer, booking: &booking::Model) -> bool {
    booking.client_id == viewer.id() || manages_booking(viewer, booking)
}

/// `Ok` when `viewer` may read `booking`, else `FORBIDDEN`.
pub fn check_booking(viewer: &Viewer, booking: &booking::Model) -> AppResult<()> {
    if can_read_booking(viewer, booking) {
        Ok(())
    } else {
        Err(forbidden("this booking: it is neither yours nor in a schedule you manage"))
    }
}

/// Which of a shop's bookings `viewer` may list: all of them for the owner
/// (optionally one barber's), the barber's own for a barber.
///
/// Returns the barber the list must be restricted to, if any.
pub fn shop_bookings_scope(
    viewer: &Viewer,
    shop_id: i64,
    barber_id: Option<i64>,
) -> AppResult<Option<i64>> {
    if viewer.owns(shop_id) {
        return Ok(barber_id);
    }
    match (viewer.barber_at(shop_id), barber_id) {
        (Some(own), None) => Ok(Some(own)),
        (Some(own), Some(asked)) if own == asked => Ok(Some(own)),
        (Some(_), Some(_)) => Err(forbidden("another barber's bookings")),
        (None, _) => Err(forbidden("this shop's bookings: only its owner and barbers may")),
    }
}

/// `Ok` when `viewer` may list the bookings of `barber`: its shop's owner,
/// or the barber themself.
pub fn check_barber_bookings(viewer: &Viewer, barber: &barber::Model) -> AppResult<()> {
    if runs_schedule(viewer, barber.shop_id, barber.id) {
        Ok(())
    } else {
        Err(forbidden("this barber's bookings: only the barber and the shop's owner may"))
    }
}

/// `Ok` when the viewer is user `user_id`.
pub fn check_self(identity: &Identity, user_id: i64) -> AppResult<()> {
    if require_viewer(identity)?.id() == user_id {
        Ok(())
    } else {
        Err(forbidden("another person's account details"))
    }
}

/// Whether the viewer may see the contact details of the client of a booking
/// at `shop_id`: the client themself and the shop's staff.
pub fn can_see_client(identity: &Identity, client_id: i64, shop_id: i64) -> bool {
    identity.viewer().is_some_and(|viewer| {
        viewer.id() == client_id || viewer.owns(shop_id) || viewer.barber_at(shop_id).is_some()
    })
}

/// Whether `viewer` runs the schedule `booking` is in: the shop's owner, or
/// the booking's barber.
pub fn manages_booking(viewer: &Viewer, booking: &booking::Model) -> bool {
    runs_schedule(viewer, booking.shop_id, booking.barber_id)
}

/// `Ok` when `viewer` runs `booking`'s schedule, else `FORBIDDEN`.
pub fn check_manages_booking(viewer: &Viewer, booking: &booking::Model) -> AppResult<()> {
    if manages_booking(viewer, booking) {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "only the shop's owner and the booking's barber may do this".to_owned(),
        ))
    }
}

/// `Ok` when `viewer` owns shop `shop_id`, else `FORBIDDEN`.
pub fn check_owner(viewer: &Viewer, shop_id: i64) -> AppResult<()> {
    if viewer.owns(shop_id) {
        Ok(())
    } else {
        Err(AppError::Forbidden("only the shop's owner may do this".to_owned()))
    }
}

/// `Ok` when `viewer` owns `barber`'s shop or is that barber.
pub fn check_owner_or_barber(viewer: &Viewer, barber: &barber::Model) -> AppResult<()> {
    if runs_schedule(viewer, barber.shop_id, barber.id) {
        Ok(())
    } else {
        Err(AppError::Forbidden("only the shop's owner and the barber may do this".to_owned()))
    }
}
