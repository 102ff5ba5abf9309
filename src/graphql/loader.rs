//! DataLoaders: one per relation, each a single `WHERE key IN (…)` (or
//! `GROUP BY`, or windowed) statement per batch. A fresh set is made for
//! every request by [`execute`]; values are cached for that request only.

use std::{
    collections::HashMap,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context as TaskContext, Poll, Wake, Waker},
    time::Duration,
};

use async_graphql::{
    Request, Response,
    dataloader::{DataLoader, HashMapCache},
};
use entity::{barber, booking, payment, service, shop, user, working_hours};
use futures_util::{FutureExt, StreamExt, future::BoxFuture, stream::FuturesUnordered};
use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::mpsc;

use super::{
    AppSchema,
    public::{Touched, Touches},
};
use crate::{
    auth::Identity,
    db::replica::{ReadRoute, Reads},
    domain::{
        self,
        booking::{BookingFilter, Owner},
        page::{Page, PageRequest},
    },
};

/// The loader type every resolver uses: batched and cached per request.
pub type Loader<T> = DataLoader<T, HashMapCache>;

/// Declares a loader struct whose batch is one domain function call.
macro_rules! loader {
    ($(#[$doc:meta])* $name:ident: $key:ty => $value:ty, |$db:ident, $keys:ident| $body:expr) => {
        $(#[$doc])*
        pub struct $name {
            db: DatabaseConnection,
            touched: Option<Touched>,
        }

        impl async_graphql::dataloader::Loader<$key> for $name {
            type Value = $value;
            type Error = Arc<DbErr>;

            async fn load(&self, keys: &[$key]) -> Result<HashMap<$key, $value>, Self::Error> {
                let $db = &self.db;
                let $keys = keys;
                let loaded = $body.await.map_err(Arc::new)?;
                touch(&self.touched, loaded.values());
                Ok(loaded)
            }
        }

        impl Make for $name {
            fn make(loaders: &Loaders) -> Self {
                Self { db: loaders.db.clone(), touched: loaders.touched.clone() }
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
    /// Users by id.
    UserByIdLoader: i64 => user::Model,
    |db, ids| domain::account::users_by_ids(db, ids)
);
loader!(
    /// Bookings by id.
    BookingByIdLoader: i64 => booking::Model,
    |db, ids| domain::booking::by_ids(db, ids)
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
loader!(
    /// A booking's payments.
    PaymentsByBookingLoader: i64 => Vec<payment::Model>,
    |db, ids| domain::booking::payments_by_bookings(db, ids)
);

/// Notes what was loaded, when the request's answer may be kept.
fn touch<'a, T: Touches + 'a>(touched: &Option<Touched>, loaded: impl Iterator<Item = &'a T>) {
    if let Some(touched) = touched {
        loaded.for_each(|value| value.touch(touched));
    }
}

/// Groups keys that share everything but their parent id, so each group is
/// one statement (in practice one group per batch).
fn group_keys<P, K>(keys: &[K], split: impl Fn(&K) -> (P, i64)) -> HashMap<P, Vec<i64>>
where
    P: std::hash::Hash + Eq,
{
    let mut groups: HashMap<P, Vec<i64>> = HashMap::new();
    for key in keys {
        let (shared, parent) = split(key);
        groups.entry(shared).or_default().push(parent);
    }
    groups
}

/// A page of a shop's barbers, keyed by shop and page request.
pub struct BarbersByShopLoader {
    db: DatabaseConnection,
    touched: Option<Touched>,
}

impl Make for BarbersByShopLoader {
    fn make(loaders: &Loaders) -> Self {
        Self { db: loaders.db.clone(), touched: loaders.touched.clone() }
    }
}

impl async_graphql::dataloader::Loader<(i64, PageRequest)> for BarbersByShopLoader {
    type Value = Page<barber::Model>;
    type Error = Arc<DbErr>;

    async fn load(
        &self,
        keys: &[(i64, PageRequest)],
    ) -> Result<HashMap<(i64, PageRequest), Self::Value>, Self::Error> {
        let mut pages = HashMap::with_capacity(keys.len());
        for (request, shops) in group_keys(keys, |(shop, request)| (*request, *shop)) {
            let loaded = domain::barber::pages_by_shop(&self.db, &shops, &request)
                .await
                .map_err(Arc::new)?;
            pages.extend(loaded.into_iter().map(|(shop, page)| ((shop, request), page)));
        }
        touch(&self.touched, pages.values());
        Ok(pages)
    }
}

/// A page of the bookings of a shop, barber or client.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BookingPageKey {
    pub owner: Owner,
    pub id: i64,
    pub filter: BookingFilter,
    pub page: PageRequest,
}

/// Pages of bookings, one windowed statement per batch; a shop's or a
/// barber's may be read from the replica.
pub struct BookingPageLoader {
    route: Arc<ReadRoute>,
    touched: Option<Touched>,
}

impl Make for BookingPageLoader {
    fn make(loaders: &Loaders) -> Self {
        Self { route: loaders.route.clone(), touched: loaders.touched.clone() }
    }
}

impl async_graphql::dataloader::Loader<BookingPageKey> for BookingPageLoader {
    type Value = Page<booking::Model>;
    type Error = Arc<DbErr>;

    async fn load(
        &self,
        keys: &[BookingPageKey],
    ) -> Result<HashMap<BookingPageKey, Self::Value>, Self::Error> {
        let groups = group_keys(keys, |k| ((k.owner, k.filter.clone(), k.page), k.id));
        let mut pages = HashMap::with_capacity(keys.len());
        for ((owner, filter, page), ids) in groups {
            let (ids, for_read) = (Arc::new(ids), filter.clone());
            let loaded = self
                .route
                .run_list(owner == Owner::Client, move |db| {
                    let (ids, filter) = (ids.clone(), for_read.clone());
                    async move { domain::booking::pages_by(&db, owner, &ids, &filter, &page).await }
                        .boxed()
                })
                .await
                .map_err(Arc::new)?;
            pages.extend(loaded.into_iter().map(|(id, rows)| {
                (BookingPageKey { owner, id, filter: filter.clone(), page }, rows)
            }));
        }
        touch(&self.touched, pages.values());
        Ok(pages)
    }
}

/// Counts of the bookings of a shop, barber or client.
pub struct BookingCountLoader {
    route: Arc<ReadRoute>,
    touched: Option<Touched>,
}

impl Make for BookingCountLoader {
    fn make(loaders: &Loaders) -> Self {
        Self { route: loaders.route.clone(), touched: loaders.touched.clone() }
    }
}

impl async_graphql::dataloader::Loader<(Owner, i64, BookingFilter)> for BookingCountLoader {
    type Value = u64;
    type Error = Arc<DbErr>;

    async fn load(
        &self,
        keys: &[(Owner, i64, BookingFilter)],
    ) -> Result<HashMap<(Owner, i64, BookingFilter), u64>, Self::Error> {
        let groups = group_keys(keys, |(owner, id, filter)| ((*owner, filter.clone()), *id));
        let mut counts = HashMap::with_capacity(keys.len());
        for ((owner, filter), ids) in groups {
            let (ids, for_read) = (Arc::new(ids), filter.clone());
            let loaded = self
                .route
                .run_list(owner == Owner::Client, move |db| {
                    let (ids, filter) = (ids.clone(), for_read.clone());
                    async move { domain::booking::counts_by(&db, owner, &ids, &filter).await }
                        .boxed()
                })
                .await
                .map_err(Arc::new)?;
            counts.extend(loaded.into_iter().map(|(id, n)| ((owner, id, filter.clone()), n)));
        }
        touch(&self.touched, counts.values());
        Ok(counts)
    }
}

/// Executes `request` as `identity` with a fresh set of every loader.
///
/// The loaders' batches run inside the request's own task instead of being
/// spawned: a batch can only start once the resolvers have registered every
/// key they could in that round and the execution waits (not when it only
/// yields to be polled again). So the N children of
/// a page always cost one statement per relation, however busy the machine,
/// where spawned batches on a multi-threaded runtime race the resolvers and
/// split under load.
///
/// With `touched`, the answer may be kept (see `public`): every loader
/// notes what it loaded.
pub async fn execute(
    schema: &AppSchema,
    request: Request,
    reads: &Reads,
    identity: Identity,
    touched: Option<Touched>,
) -> Response {
    let (spawner, batches) = mpsc::unbounded_channel::<BoxFuture<'static, ()>>();
    let user = identity.viewer().map(|viewer| viewer.id());
    // An answer that may be kept is kept under versions read before it ran.
    let route = Arc::new(reads.route(user, touched.is_some()));
    let mut request = register(request, route, &identity, touched.clone(), spawner)
        .data(super::guard::Asking::new(identity));
    if let Some(touched) = touched {
        request = request.data(touched);
    }
    let execution = schema.execute(request);
    // Fused: it ends only once the request's loaders are gone, after the
    // execution, but is never polled past its end.
    let batches = run_batches(batches).fuse();
    let (mut execution, mut batches) = (std::pin::pin!(execution), std::pin::pin!(batches));
    std::future::poll_fn(|cx| {
        // Polled with a waker that tells whether the execution woke itself
        // while being polled: it yielded (async-graphql's lists yield
        // every few dozen items) with resolvers still to register keys.
        let yielded = Arc::new(Yielded { woken: AtomicBool::new(false), task: cx.waker().clone() });
        let waker = Waker::from(yielded.clone());
        if let Poll::Ready(response) = execution.as_mut().poll(&mut TaskContext::from_waker(&waker))
        {
            return Poll::Ready(response);
        }
        if !yielded.woken.load(Ordering::Acquire) {
            // Every resolver of the round waits on a loader: run the batches.
            let _ = batches.as_mut().poll(cx);
        }
        Poll::Pending
    })
    .await
}

/// The waker an execution is polled with: wakes the request's task, and
/// remembers that it was woken.
struct Yielded {
    woken: AtomicBool,
    task: Waker,
}

impl Wake for Yielded {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake_by_ref();
    }
}

/// Runs a request's (or a subscription connection's) batches as they come,
/// until its loaders are dropped and the last batch is done.
async fn run_batches(mut batches: mpsc::UnboundedReceiver<BoxFuture<'static, ()>>) {
    let mut running = FuturesUnordered::new();
    loop {
        tokio::select! {
            batch = batches.recv() => match batch {
                Some(batch) => running.push(batch),
                None => break,
            },
            Some(()) = running.next(), if !running.is_empty() => {}
        }
    }
    while running.next().await.is_some() {}
}

type Spawner = mpsc::UnboundedSender<BoxFuture<'static, ()>>;

fn new<T: Send + Sync + 'static>(loader: T, spawner: &Spawner) -> Loader<T> {
    let spawner = spawner.clone();
    DataLoader::with_cache(
        loader,
        move |batch| {
            // The receiver lives as long as the request that owns the loader.
            let _ = spawner.send(batch);
        },
        HashMapCache::default(),
    )
    // A batch runs once the request yields, when every resolver of the
    // round has registered its keys; waiting longer only adds latency. The
    // wait is a tokio timer (feature `tokio-timer`), not async-io's thread.
    .delay(Duration::ZERO)
}

/// How a loader is made from what a request's loaders share.
pub trait Make {
    fn make(loaders: &Loaders) -> Self;
}

/// Where a request keeps its loader of one type, made on first use.
pub trait Lazy: Make + Sized + Send + Sync + 'static {
    fn slot(loaders: &Loaders) -> &OnceLock<Loader<Self>>;
}

/// Declares [`Loaders`], a slot per loader type.
macro_rules! lazy_loaders {
    ($($field:ident: $ty:ident),* $(,)?) => {
        /// The loaders of one request, each made when a resolver first asks
        /// for it: most requests use few of them, and making all of them
        /// cost more than a small request itself.
        pub struct Loaders {
            db: DatabaseConnection,
            /// Where the reads that may use the replica go.
            route: Arc<ReadRoute>,
            touched: Option<Touched>,
            spawner: Spawner,
            /// Whether a value loaded once is kept for the rest of the
            /// request (not for a subscription, which lives on).
            cached: bool,
            $($field: OnceLock<Loader<$ty>>,)*
        }

        impl Loaders {
            fn new(
                route: Arc<ReadRoute>,
                touched: Option<Touched>,
                spawner: Spawner,
                cached: bool,
            ) -> Self {
                let db = route.primary().clone();
                Self { db, route, touched, spawner, cached, $($field: OnceLock::new(),)* }
            }
        }

        $(impl Lazy for $ty {
            fn slot(loaders: &Loaders) -> &OnceLock<Loader<Self>> {
                &loaders.$field
            }
        })*
    };
}

lazy_loaders!(
    shops: ShopByIdLoader,
    users: UserByIdLoader,
    barbers: BarberByIdLoader,
    services: ServiceByIdLoader,
    bookings: BookingByIdLoader,
    barber_counts: BarberCountByShopLoader,
    services_by_shop: ServicesByShopLoader,
    services_by_barber: ServicesByBarberLoader,
    barbers_by_service: BarbersByServiceLoader,
    working_hours: WorkingHoursByBarberLoader,
    payments: PaymentsByBookingLoader,
    barbers_by_shop: BarbersByShopLoader,
    booking_pages: BookingPageLoader,
    booking_counts: BookingCountLoader,
);

impl Loaders {
    /// The request's loader of type `T`, made now if it was not yet.
    pub fn get<T: Lazy>(&self) -> &Loader<T> {
        T::slot(self).get_or_init(|| {
            let loader = new(T::make(self), &self.spawner);
            if !self.cached {
                loader.enable_all_cache(false);
            }
            loader
        })
    }

    /// Loaders for a subscription's connection: each event's answer is
    /// batched as a request's is, and loads afresh (nothing is kept from
    /// one event to the next). Their batches run in a task of their own,
    /// which ends when the loaders are dropped.
    pub fn for_subscriptions(route: Arc<ReadRoute>) -> Self {
        let (spawner, batches) = mpsc::unbounded_channel::<BoxFuture<'static, ()>>();
        tokio::spawn(run_batches(batches));
        Self::new(route, None, spawner, false)
    }
}

/// Adds the request's loaders, with the viewer already known to the users'
/// loader.
fn register(
    request: Request,
    route: Arc<ReadRoute>,
    identity: &Identity,
    touched: Option<Touched>,
    spawner: Spawner,
) -> Request {
    let loaders = Loaders::new(route.clone(), touched, spawner, true);
    if let Some(viewer) = identity.viewer() {
        // Feeding takes a lock and never waits: one poll finishes it.
        let _ = loaders
            .get::<UserByIdLoader>()
            .feed_one(viewer.user.id, viewer.user.clone())
            .now_or_never();
    }
    request.data(loaders).data(route)
}
