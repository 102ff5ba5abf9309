//! DataLoaders: one per relation, each a single `WHERE key IN (…)` (or
//! `GROUP BY`) statement per batch. Fresh loaders are made for every request
//! by [`register`], so nothing is cached across requests.

use std::{collections::HashMap, sync::Arc};

use async_graphql::{Request, Response, dataloader::DataLoader};
use entity::{barber, service, shop, working_hours};
use futures_util::{StreamExt, future::BoxFuture, stream::FuturesUnordered};
use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::mpsc;

use super::AppSchema;
use crate::domain::{
    self,
    page::{Page, PageRequest},
};

/// Declares a loader struct whose batch is one domain function call.
macro_rules! loader {
    ($(#[$doc:meta])* $name:ident: $key:ty => $value:ty, |$db:ident, $keys:ident| $body:expr) => {
        $(#[$doc])*
        pub struct $name {
            db: DatabaseConnection,
        }

        impl async_graphql::dataloader::Loader<$key> for $name {
            type Value = $value;
            type Error = Arc<DbErr>;

            async fn load(&self, keys: &[$key]) -> Result<HashMap<$key, $value>, Self::Error> {
                let $db = &self.db;
                let $keys = keys;
                $body.await.map_err(Arc::new)
            }
        }
    };
}

loader!(
    /// Shops by id.
    ShopByIdLoader: i64 => shop::Model,
    |db, ids| domain::shop::by_ids(db, ids)
);
loader!(
    /// Barbers by id.
    BarberByIdLoader: i64 => barber::Model,
    |db, ids| domain::barber::by_ids(db, ids)
);
loader!(
    /// Services by id.
    ServiceByIdLoader: i64 => service::Model,
    |db, ids| domain::service::by_ids(db, ids)
);
loader!(
    /// Number of barbers per shop.
    BarberCountByShopLoader: i64 => u64,
    |db, ids| domain::barber::counts_by_shop(db, ids)
);
loader!(
    /// A shop's services.
    ServicesByShopLoader: i64 => Vec<service::Model>,
    |db, ids| domain::service::by_shops(db, ids)
);
loader!(
    /// The services a barber offers.
    ServicesByBarberLoader: i64 => Vec<service::Model>,
    |db, ids| domain::service::by_barbers(db, ids)
);
loader!(
    /// The barbers who offer a service.
    BarbersByServiceLoader: i64 => Vec<barber::Model>,
    |db, ids| domain::barber::by_services(db, ids)
);
loader!(
    /// A barber's working hours.
    WorkingHoursByBarberLoader: i64 => Vec<working_hours::Model>,
    |db, ids| domain::working_hours::by_barbers(db, ids)
);

/// A page of a shop's barbers, keyed by shop and page request.
pub struct BarbersByShopLoader {
    db: DatabaseConnection,
}

impl async_graphql::dataloader::Loader<(i64, PageRequest)> for BarbersByShopLoader {
    type Value = Page<barber::Model>;
    type Error = Arc<DbErr>;

    async fn load(
        &self,
        keys: &[(i64, PageRequest)],
    ) -> Result<HashMap<(i64, PageRequest), Self::Value>, Self::Error> {
        // One statement per distinct page request; in practice one per batch.
        let mut by_request: HashMap<PageRequest, Vec<i64>> = HashMap::new();
        for (shop, request) in keys {
            by_request.entry(*request).or_default().push(*shop);
        }
        let mut pages = HashMap::with_capacity(keys.len());
        for (request, shops) in by_request {
            let loaded = domain::barber::pages_by_shop(&self.db, &shops, &request)
                .await
                .map_err(Arc::new)?;
            pages.extend(
                loaded
                    .into_iter()
                    .map(|(shop, page)| ((shop, request), page)),
            );
        }
        Ok(pages)
    }
}

/// Executes `request` with a fresh set of every loader.
///
/// The loaders' batches run inside the request's own task instead of being
/// spawned: a batch can only start once the resolvers have registered every
/// key they could in that round and the request yields. So the N children of
/// a page always cost one statement per relation, however busy the machine,
/// where spawned batches on a multi-threaded runtime race the resolvers and
/// split under load.
pub async fn execute(schema: &AppSchema, request: Request, db: &DatabaseConnection) -> Response {
    let (spawner, batches) = mpsc::unbounded_channel::<BoxFuture<'static, ()>>();
    let request = register(request, db, spawner);
    tokio::select! {
        biased;
        response = schema.execute(request) => response,
        () = run_batches(batches) => unreachable!("running batches never ends"),
    }
}

async fn run_batches(mut batches: mpsc::UnboundedReceiver<BoxFuture<'static, ()>>) {
    let mut running = FuturesUnordered::new();
    loop {
        tokio::select! {
            Some(batch) = batches.recv() => running.push(batch),
            Some(()) = running.next(), if !running.is_empty() => {}
            else => std::future::pending::<()>().await,
        }
    }
}

/// Adds a fresh set of every loader to a request; their batches are sent to
/// `spawner`.
fn register(
    request: Request,
    db: &DatabaseConnection,
    spawner: mpsc::UnboundedSender<BoxFuture<'static, ()>>,
) -> Request {
    type Spawner = mpsc::UnboundedSender<BoxFuture<'static, ()>>;
    fn new<T: Send + Sync + 'static>(loader: T, spawner: &Spawner) -> DataLoader<T> {
        let spawner = spawner.clone();
        DataLoader::new(loader, move |batch| {
            // The receiver lives as long as the request that owns the loader.
            let _ = spawner.send(batch);
        })
    }
    let db = || db.clone();
    request
        .data(new(ShopByIdLoader { db: db() }, &spawner))
        .data(new(BarberByIdLoader { db: db() }, &spawner))
        .data(new(ServiceByIdLoader { db: db() }, &spawner))
        .data(new(BarberCountByShopLoader { db: db() }, &spawner))
        .data(new(ServicesByShopLoader { db: db() }, &spawner))
        .data(new(ServicesByBarberLoader { db: db() }, &spawner))
        .data(new(BarbersByServiceLoader { db: db() }, &spawner))
        .data(new(WorkingHoursByBarberLoader { db: db() }, &spawner))
        .data(new(BarbersByShopLoader { db: db() }, &spawner))
}
