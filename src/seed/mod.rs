//! `bookedbarber seed`: a deterministic, realistic data set of any size,
//! written in large batches inside one transaction.

mod plan;

use std::{collections::HashMap, fmt, time::Instant};

use anyhow::Context;
use chrono::Utc;
use entity::{barber, barber_service, booking, service, shop, time_off, user, working_hours};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    Statement, TransactionTrait,
};

use crate::{auth::password, config::SeedArgs, domain::local_time};

/// Password of every seeded account.
pub const DEMO_PASSWORD: &str = "bookedbarber";
/// Owner of the first seeded shop.
pub const DEMO_OWNER_EMAIL: &str = "owner@demo.test";
/// A barber of the first seeded shop.
pub const DEMO_BARBER_EMAIL: &str = "barber@demo.test";
/// A client with bookings at the seeded shops.
pub const DEMO_CLIENT_EMAIL: &str = "client@demo.test";

/// Bound parameters per statement: under SQLite's 32 766 and PostgreSQL's 65 535.
const MAX_PARAMS: usize = 30_000;

/// What a seed run created.
#[derive(Debug)]
pub struct SeedReport {
    pub users: usize,
    pub shops: usize,
    pub barbers: usize,
    pub services: usize,
    pub bookings: usize,
    pub payments: u64,
    pub seconds: f64,
}

impl fmt::Display for SeedReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seeded {} users, {} shops, {} barbers, {} services, {} bookings and {} payments in {:.1} s\n\
             every account signs in with the password `{DEMO_PASSWORD}`; try {DEMO_OWNER_EMAIL}, \
             {DEMO_BARBER_EMAIL} or {DEMO_CLIENT_EMAIL}",
            self.users,
            self.shops,
            self.barbers,
            self.services,
            self.bookings,
            self.payments,
            self.seconds
        )
    }
}

/// Seeds the demo data set when the database holds no shop and no user.
pub async fn seed_demo_if_empty(db: &DatabaseConnection) -> anyhow::Result<bool> {
    let empty =
        shop::Entity::find().count(db).await? == 0 && user::Entity::find().count(db).await? == 0;
    if empty {
        let report = seed(db, &SeedArgs::demo()).await?;
        tracing::info!(%report, "demo data set seeded");
    }
    Ok(empty)
}

/// Fills the database with the data set `args` describes, all or nothing.
pub async fn seed(db: &DatabaseConnection, args: &SeedArgs) -> anyhow::Result<SeedReport> {
    let started = Instant::now();
    let already =
        user::Entity::find().filter(user::Column::Email.eq(DEMO_CLIENT_EMAIL)).count(db).await?;
    anyhow::ensure!(
        already == 0,
        "this database is already seeded ({DEMO_CLIENT_EMAIL} exists); seed an empty database"
    );
    let now = match args.anchor_date {
        Some(day) => day.and_hms_opt(12, 0, 0).context("anchor date")?.and_utc(),
        None => Utc::now(),
    };
    let plan = plan::plan(args, now);
    let password_hash = password::hash(DEMO_PASSWORD.to_owned()).await?;

    let txn = db.begin().await?;
    let people = [&plan.owners, &plan.barber_users, &plan.clients];
    let emails: Vec<_> = people.iter().flat_map(|group| group.iter()).collect();
    let user_rows = emails.iter().map(|u| user::ActiveModel {
        id: NotSet,
        email: Set(u.email.clone()),
        password_hash: Set(password_hash.clone()),
        name: Set(u.name.clone()),
        created_at: Set(now),
        updated_at: Set(now),
    });
    let user_ids: HashMap<String, i64> = insert_returning(&txn, user_rows, 5)
        .await
        .context("inserting users")?
        .into_iter()
        .map(|u: user::Model| (u.email, u.id))
        .collect();
    let id_of = |email: &str| user_ids.get(email).copied().context("a seeded user is missing");

    let shop_rows = plan
        .shops
        .iter()
        .map(|s| -> anyhow::Result<shop::ActiveModel> {
            Ok(crate::domain::shop::with_default_policy(
                id_of(&plan.owners[s.owner].email)?,
                s.name.clone(),
                s.slug.clone(),
                s.timezone,
                s.address.clone(),
                now,
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let shop_ids: HashMap<String, i64> = insert_returning(&txn, shop_rows, 14)
        .await
        .context("inserting shops (is a seeded slug already taken?)")?
        .into_iter()
        .map(|s: shop::Model| (s.slug, s.id))
        .collect();
    let shop_id = |index: usize| {
        shop_ids.get(&plan.shops[index].slug).copied().context("a seeded shop is missing")
    };

    let mut service_rows = Vec::new();
    for (index, planned) in plan.shops.iter().enumerate() {
        for (name, description, minutes, price) in plan::MENU {
            service_rows.push(service::ActiveModel {
                id: NotSet,
                shop_id: Set(shop_id(index)?),
                name: Set(name.to_owned()),
                description: Set(Some(description.to_owned())),
                duration_minutes: Set(minutes),
                price_cents: Set(price),
                currency: Set(planned.currency.to_owned()),
                created_at: Set(now),
                updated_at: Set(now),
            });
        }
    }
    let services: HashMap<(i64, String), service::Model> = insert_returning(&txn, service_rows, 9)
        .await
        .context("inserting services")?
        .into_iter()
        .map(|s: service::Model| ((s.shop_id, s.name.clone()), s))
        .collect();
    let service_of = |shop: i64, menu_index: usize| {
        services
            .get(&(shop, plan::MENU[menu_index].0.to_owned()))
            .context("a seeded service is missing")
    };

    let barber_rows = plan
        .barbers
        .iter()
        .map(|b| -> anyhow::Result<barber::ActiveModel> {
            Ok(barber::ActiveModel {
                id: NotSet,
                shop_id: Set(shop_id(b.shop)?),
                user_id: Set(Some(id_of(&plan.barber_users[b.user].email)?)),
                invited_email: Set(None),
                display_name: Set(b.display_name.clone()),
                bio: Set(b.bio.clone()),
                active: Set(true),
                created_at: Set(now),
                updated_at: Set(now),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let by_user: HashMap<i64, i64> = insert_returning(&txn, barber_rows, 8)
        .await
        .context("inserting barbers")?
        .into_iter()
        .filter_map(|b: barber::Model| Some((b.user_id?, b.id)))
        .collect();
    let barber_id = |index: usize| -> anyhow::Result<i64> {
        let user = id_of(&plan.barber_users[plan.barbers[index].user].email)?;
        by_user.get(&user).copied().context("a seeded barber is missing")
    };

    let mut offers = Vec::new();
    let mut hours = Vec::new();
    let mut days_off = Vec::new();
    for (index, planned) in plan.barbers.iter().enumerate() {
        let barber = barber_id(index)?;
        let shop = shop_id(planned.shop)?;
        for menu_index in &planned.services {
            offers.push(barber_service::ActiveModel {
                barber_id: Set(barber),
                service_id: Set(service_of(shop, *menu_index)?.id),
            });
        }
        for (weekday, opens, closes) in &planned.hours {
            hours.push(working_hours::ActiveModel {
                id: NotSet,
                barber_id: Set(barber),
                weekday: Set(*weekday),
                opens_minute: Set(*opens),
                closes_minute: Set(*closes),
            });
        }
        let tz = plan.shops[planned.shop].timezone;
        for day in &planned.time_off {
            let Some((starts_at, ends_at)) = local_time::day_bounds(tz, *day) else {
                continue;
            };
            days_off.push(time_off::ActiveModel {
                id: NotSet,
                barber_id: Set(barber),
                starts_at: Set(starts_at),
                ends_at: Set(ends_at),
                reason: Set(Some("Day off".to_owned())),
                created_at: Set(now),
            });
        }
    }
    insert(&txn, offers, 2).await.context("inserting barber services")?;
    insert(&txn, hours, 4).await.context("inserting working hours")?;
    insert(&txn, days_off, 5).await.context("inserting time off")?;

    let barber_ids: Vec<i64> =
        (0..plan.barbers.len()).map(barber_id).collect::<anyhow::Result<_>>()?;
    let client_ids: Vec<i64> =
        plan.clients.iter().map(|c| id_of(&c.email)).collect::<anyhow::Result<_>>()?;
    let mut booking_rows = Vec::with_capacity(plan.bookings.len());
    for planned in &plan.bookings {
        let shop = shop_id(plan.barbers[planned.barber].shop)?;
        let service = service_of(shop, planned.service)?;
        booking_rows.push(booking::ActiveModel {
            id: NotSet,
            shop_id: Set(shop),
            barber_id: Set(barber_ids[planned.barber]),
            client_id: Set(client_ids[planned.client]),
            service_id: Set(service.id),
            starts_at: Set(planned.starts_at),
            ends_at: Set(planned.ends_at),
            blocks_until: Set(planned.ends_at),
            status: Set(planned.status),
            price_cents: Set(service.price_cents),
            currency: Set(service.currency.clone()),
            notes: Set(planned.notes.map(str::to_owned)),
            cancellation_reason: Set(planned.cancellation_reason.map(str::to_owned)),
            created_at: Set(planned.created_at),
            updated_at: Set(if planned.ends_at < now {
                planned.ends_at
            } else {
                planned.created_at
            }),
        });
    }
    let booking_count = booking_rows.len();
    insert(&txn, booking_rows, 14).await.context("inserting bookings")?;
    let payments = pay_completed(&txn, &shop_ids.values().copied().collect::<Vec<_>>()).await?;
    txn.commit().await.context("committing the seed")?;

    Ok(SeedReport {
        users: user_ids.len(),
        shops: shop_ids.len(),
        barbers: by_user.len(),
        services: services.len(),
        bookings: booking_count,
        payments,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Records one payment of the full price for every completed booking of the
/// seeded shops, in a single statement.
async fn pay_completed(db: &impl ConnectionTrait, shops: &[i64]) -> anyhow::Result<u64> {
    let backend = db.get_database_backend();
    let list = shops.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
    let sql = format!(
        "INSERT INTO payments (booking_id, amount_cents, method, created_at) \
         SELECT id, price_cents, \
                CASE WHEN id % 20 < 14 THEN 'CARD' WHEN id % 20 < 19 THEN 'CASH' ELSE 'OTHER' END, \
                ends_at \
         FROM bookings WHERE status = 'COMPLETED' AND shop_id IN ({list})"
    );
    let result =
        db.execute_raw(Statement::from_string(backend, sql)).await.context("inserting payments")?;
    Ok(result.rows_affected())
}

fn chunk_rows(columns: usize) -> usize {
    (MAX_PARAMS / columns.max(1)).max(1)
}

/// Inserts `rows` in statements of as many rows as the parameter limit allows.
async fn insert<A>(db: &impl ConnectionTrait, rows: Vec<A>, columns: usize) -> anyhow::Result<()>
where
    A: sea_orm::ActiveModelTrait + Send,
{
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(chunk_rows(columns)).collect();
        A::Entity::insert_many(chunk).exec_without_returning(db).await?;
    }
    Ok(())
}

/// Like [`insert`], returning the inserted rows.
async fn insert_returning<A, M>(
    db: &impl ConnectionTrait,
    rows: impl IntoIterator<Item = A>,
    columns: usize,
) -> anyhow::Result<Vec<M>>
where
    A: sea_orm::ActiveModelTrait + Send,
    A::Entity: EntityTrait<Model = M>,
    M: sea_orm::IntoActiveModel<A>,
{
    let mut rows = rows.into_iter().peekable();
    let mut inserted = Vec::new();
    while rows.peek().is_some() {
        let chunk: Vec<A> = rows.by_ref().take(chunk_rows(columns)).collect();
        inserted.extend(A::Entity::insert_many(chunk).exec_with_returning(db).await?);
    }
    Ok(inserted)
}
