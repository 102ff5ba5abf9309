//! The seed: deterministic, realistic and never double-booked.

use crate::{api_test, helpers::scalar};

api_test!(seeded_bookings_never_overlap_and_completed_ones_are_paid, [sqlite, postgres], |app| {
    app.seed(3, 9, 40, 3_000).await;
    assert_eq!(scalar(&app, "SELECT COUNT(*) AS n FROM bookings").await, 3_000);
    let overlapping = scalar(
        &app,
        "SELECT COUNT(*) AS n FROM bookings a JOIN bookings b \
           ON a.barber_id = b.barber_id AND a.id < b.id \
          AND a.starts_at < b.ends_at AND b.starts_at < a.ends_at \
        WHERE a.status <> 'CANCELLED' AND b.status <> 'CANCELLED'",
    )
    .await;
    assert_eq!(overlapping, 0);
    for status in ["CONFIRMED", "CANCELLED", "COMPLETED", "NO_SHOW"] {
        let n =
            scalar(&app, &format!("SELECT COUNT(*) AS n FROM bookings WHERE status = '{status}'"))
                .await;
        assert!(n > 0, "no {status} booking");
    }
    let completed =
        scalar(&app, "SELECT COUNT(*) AS n FROM bookings WHERE status = 'COMPLETED'").await;
    let paid = scalar(
        &app,
        "SELECT COUNT(*) AS n FROM payments p JOIN bookings b ON b.id = p.booking_id \
         WHERE b.status = 'COMPLETED' AND p.amount_cents = b.price_cents",
    )
    .await;
    assert_eq!(paid, completed);
    let unpaid_others = scalar(
        &app,
        "SELECT COUNT(*) AS n FROM payments p JOIN bookings b ON b.id = p.booking_id WHERE b.status <> 'COMPLETED'",
    )
    .await;
    assert_eq!(unpaid_others, 0);
    // Demo accounts exist and the seed refuses to run twice.
    assert_eq!(
        scalar(&app, "SELECT COUNT(*) AS n FROM users WHERE email IN ('owner@demo.test', 'barber@demo.test', 'client@demo.test')").await,
        3
    );
    let again =
        bookedbarber::seed::seed(&app.state.db, &bookedbarber::config::SeedArgs::demo()).await;
    assert!(again.is_err());
    assert_eq!(
        scalar(&app, "SELECT COUNT(*) AS n FROM bookings").await,
        3_000,
        "nothing half-written"
    );
});
