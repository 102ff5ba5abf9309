//! Public reads served from the cache, never stale.
//!
//! Anonymous browsing (the shop list, a shop's page, free slots) is most of
//! the traffic, and the same for everyone. Its whole answer is kept in the
//! two-tier cache under a hash of the query, its operation and variables,
//! with the versions of every scope the answer was read from:
//!
//! - `public:shop:{id}`: everything public about one shop (its details,
//!   barbers, services, hours and time off), bumped by any write to them;
//! - `public:slots:{barber}`: a barber's free slots, bumped by their
//!   bookings and hours;
//! - `public:directory`: which shops, barbers and services exist (lists,
//!   searches, ids not found), bumped when one is added or a shop changes.
//!
//! An answer is served only while every one of its versions is current, so
//! the next read after a write (its versions bumped after the commit, by
//! `Effects::publish`) is computed afresh, on every replica.
//!
//! The scopes are recorded while the answer is computed: every loader notes
//! the shops of what it loaded, and the resolvers that read lists or find
//! nothing note the directory. A shop's version is read after its rows, so
//! a write landing in between could pair old rows with its new version;
//! the epoch (`public:epoch`) guards that: every catalogue write bumps it
//! with the shop's version, at one instant, and an answer computed while it
//! moved is not kept. Free slots
//! change with every booking, which must not stop the catalogue from being
//! kept, so their version is read before the bookings are, and they do not
//! move the epoch. They also change as time passes (a slot comes inside the
//! shop's notice): such an answer is kept only until the first instant at
//! which that happens (`OpenSlots::until`).
//!
//! What may be kept is what async-graphql's cache-control hints say is
//! public with an age: the root fields of browsing carry one (10 s for
//! shops, barbers and services, 5 s for free slots, which clients and CDNs
//! may keep that long), the rest (the rate limit, anything personal) say
//! otherwise. Only answers without errors are kept.
//!
//! # Personal answers
//!
//! A signed-in user's answers are kept too, under a key of their own, for
//! them alone (and `no-store` for every cache on the way). What a user may
//! read beyond the public scopes above is bounded by their roles: their
//! own account and roles, their bookings as a client, and everything of
//! the shops they own or work at. Each is a scope, bumped by every write
//! that changes it:
//!
//! - `identity:{user}`: the user and their roles (the kept tokens' scope);
//! - `personal:client:{user}`: their bookings as a client, whichever shop;
//! - `personal:shop:{id}`: anything at the shop (every booking, payment,
//!   staff, hours or menu change), for its owner and barbers.
//!
//! These are known from the identity before the answer is computed, so
//! their versions are read first: a write landing meanwhile leaves the
//! answer outdated at once. What the user reads of other shops is noted
//! as for a public answer. Fields whose answer depends on anything else
//! (the rate limit; invitations, which follow an email) are `no_cache`,
//! and an answer with one is not kept.
//!
//! # Everyone's answers
//!
//! Most of what a signed-in user reads is what everyone reads (a shop's
//! page, free slots): the answer does not depend on who asks. Resolvers
//! learn who asks only through `guard::identity`, which notes it in the
//! request's [`Touched`]; an answer computed without asking, public by its
//! hints, is everyone's: kept under the public key (whoever computed it)
//! and served to signed-in users too, once their identity's version is
//! confirmed with the answer's, in the same round trip.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
};

use async_graphql::Context;
use entity::{barber, service, shop};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{
    auth::{Viewer, known},
    cache::{Cache, Unavailable},
    domain::{self, availability::Offer, page::Page},
    error::{AppError, AppResult},
};

/// Bumped by every catalogue write, with the shop's version: an answer
/// computed while it moved is not kept.
const EPOCH: &str = "public:epoch";

const DIRECTORY: &str = "public:directory";

fn shop_scope(shop: i64) -> String {
    format!("public:shop:{shop}")
}

fn slots_scope(barber: i64) -> String {
    format!("public:slots:{barber}")
}

fn staff_scope(shop: i64) -> String {
    format!("personal:shop:{shop}")
}

fn client_scope(user: i64) -> String {
    format!("personal:client:{user}")
}

/// The scopes of what `viewer` may read beyond the public ones (see
/// "Personal answers"), but for their identity, whose version is the one
/// the viewer was loaded at.
fn personal_scopes(viewer: &Viewer) -> Vec<String> {
    let mut scopes = vec![client_scope(viewer.id())];
    scopes.extend(viewer.memberships.iter().map(|m| staff_scope(m.shop_id)));
    scopes.sort();
    scopes.dedup();
    scopes
}

/// Counts what became of an answer that could be kept.
fn count(personal: bool, outcome: &'static str) {
    let name = if personal {
        "bookedbarber_personal_cache_total"
    } else {
        "bookedbarber_public_cache_total"
    };
    metrics::counter!(name, "outcome" => outcome).increment(1);
}

/// The scopes an answer was read from, noted while it is computed; only in
/// the data of a request whose answer may be kept.
#[derive(Clone, Debug, Default)]
pub struct Touched(Arc<Mutex<Noted>>);

#[derive(Debug, Default)]
struct Noted {
    /// Scopes whose versions are read once the answer is computed.
    after: BTreeSet<String>,
    /// Scopes whose versions were read before their rows (`None`: could
    /// not be read, so the answer is not kept).
    before: BTreeMap<String, Option<u64>>,
    /// The answer depends on the time too: kept until then at most (Unix
    /// milliseconds).
    until: Option<i64>,
    /// A resolver asked who is asking (`guard::identity`).
    asked: bool,
}

impl Touched {
    fn noted(&self) -> std::sync::MutexGuard<'_, Noted> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The answer shows something of `shop`.
    pub fn shop(&self, shop: i64) {
        self.noted().after.insert(shop_scope(shop));
    }

    /// The answer depends on who is asking.
    pub fn asked(&self) {
        self.noted().asked = true;
    }

    /// The answer depends on which shops, barbers or services exist.
    pub fn directory(&self) {
        self.noted().after.insert(DIRECTORY.to_owned());
    }

    /// Until when time alone leaves the answer as it is (Unix
    /// milliseconds), if it depends on the time.
    pub fn until(&self) -> Option<i64> {
        self.noted().until
    }
}

/// Notes what a loaded value shows.
pub trait Touches {
    fn touch(&self, touched: &Touched);
}

impl Touches for shop::Model {
    fn touch(&self, touched: &Touched) {
        touched.shop(self.id);
    }
}

impl Touches for barber::Model {
    fn touch(&self, touched: &Touched) {
        touched.shop(self.shop_id);
    }
}

impl Touches for service::Model {
    fn touch(&self, touched: &Touched) {
        touched.shop(self.shop_id);
    }
}

impl<T: Touches> Touches for Vec<T> {
    fn touch(&self, touched: &Touched) {
        self.iter().for_each(|item| item.touch(touched));
    }
}

impl<T: Touches> Touches for Page<T> {
    fn touch(&self, touched: &Touched) {
        self.items.iter().for_each(|item| item.touch(touched));
    }
}

/// What nothing public shows (users, bookings, payments, counts and hours
/// of a parent that noted its shop).
macro_rules! touches_nothing {
    ($($ty:ty),*) => {
        $(impl Touches for $ty {
            fn touch(&self, _: &Touched) {}
        })*
    };
}
touches_nothing!(
    u64,
    entity::user::Model,
    entity::booking::Model,
    entity::payment::Model,
    entity::working_hours::Model
);

/// Notes, when the request's answer may be kept, that it shows `shop`.
pub fn touch_shop(ctx: &Context<'_>, shop: i64) {
    if let Some(touched) = ctx.data_opt::<Touched>() {
        touched.shop(shop);
    }
}

/// Notes, when the request's answer may be kept, that it depends on which
/// shops, barbers or services exist.
pub fn touch_directory(ctx: &Context<'_>) {
    if let Some(touched) = ctx.data_opt::<Touched>() {
        touched.directory();
    }
}

/// What `barber` offers for `service` (see [`PublicReads::offer`]), for an
/// answer that shows the barber's free slots. When the answer may be kept,
/// the versions of the shop's catalogue and of the barber's slots are read
/// in one round trip, before the offer's rows (unless kept) and the day's
/// bookings are read, and noted as what the answer was read at.
pub async fn offer_for_slots(
    ctx: &Context<'_>,
    db: &impl sea_orm::ConnectionTrait,
    barber: i64,
    service: i64,
) -> async_graphql::Result<Arc<Offer>> {
    let public = ctx.data::<PublicReads>()?;
    let touched = ctx.data_opt::<Touched>();
    let slots = touched.map(|_| slots_scope(barber));
    let (offer, read) = public.offer(db, barber, service, slots).await?;
    if let Some(touched) = touched {
        let mut noted = touched.noted();
        for (scope, version) in read {
            // Two fields may read the same versions concurrently, around a
            // write: if they saw different ones, the answer is not kept.
            let seen = match noted.before.get(&scope) {
                Some(earlier) if *earlier != version => None,
                _ => version,
            };
            noted.before.insert(scope, seen);
        }
    }
    Ok(offer)
}

/// Notes that the answer holds only until `until` (free slots end and
/// begin as time passes, with no write to say so).
pub fn valid_until(ctx: &Context<'_>, until: Option<chrono::DateTime<chrono::Utc>>) {
    if let (Some(touched), Some(until)) = (ctx.data_opt::<Touched>(), until) {
        let until = until.timestamp_millis();
        let mut noted = touched.noted();
        noted.until = Some(noted.until.map_or(until, |kept| kept.min(until)));
    }
}

/// A kept answer.
#[derive(Serialize, Deserialize)]
struct Header {
    /// Each scope the answer was read from, with its version then.
    versions: Vec<(String, u64)>,
    /// The points the operation costs.
    cost: u32,
    operation: Option<String>,
    /// Seconds clients and CDNs may keep it, by its hints.
    max_age: i32,
    /// Served until then at most (Unix milliseconds).
    until: Option<i64>,
    /// One user's answer: no cache on the way may keep it.
    #[serde(default)]
    personal: bool,
    /// Everyone's: computed without asking who asks, so it serves
    /// signed-in users too (see "Everyone's answers").
    #[serde(default)]
    shared: bool,
}

/// The answers kept under a request's keys that may serve it, not yet
/// known to be current: the asker's own first, then everyone's.
pub struct Candidate {
    answers: Vec<(Header, Vec<u8>)>,
    /// The scopes whose versions tell whether each answer is current,
    /// each once: read with the charge, then compared by `confirm`.
    scopes: Vec<String>,
}

impl Candidate {
    /// The points its operation cost when it was computed: the least of
    /// its answers' (an earlier build may have weighed it otherwise), to
    /// pay on arrival; the one served charges any rest.
    pub fn cost(&self) -> u32 {
        self.answers.iter().map(|(header, _)| header.cost).min().unwrap_or(1)
    }

    /// The scopes whose versions tell whether each answer is current,
    /// each once.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// A candidate of `answers`, if there are any.
    fn of(answers: Vec<(Header, Vec<u8>)>) -> Option<Self> {
        let mut scopes: Vec<String> = Vec::new();
        for (scope, _) in answers.iter().flat_map(|(header, _)| &header.versions) {
            if !scopes.contains(scope) {
                scopes.push(scope.clone());
            }
        }
        (!answers.is_empty()).then_some(Self { answers, scopes })
    }
}

/// An answer served from the cache.
#[derive(Debug)]
pub struct Kept {
    /// The answer's `data`, as JSON.
    pub data: Vec<u8>,
    pub cost: u32,
    pub operation: Option<String>,
    /// Its `Cache-Control`.
    pub cache_control: String,
}

/// What was read as a computation started, `None` when it could not be,
/// and then nothing is kept.
#[derive(Clone, Debug)]
pub struct Started(Option<AtStart>);

#[derive(Clone, Debug)]
struct AtStart {
    epoch: u64,
    /// For a personal answer, the versions of the viewer's scopes.
    personal: Option<Vec<(String, u64)>>,
}

/// The public answers kept in the cache; cheap to clone.
#[derive(Clone)]
pub struct PublicReads {
    cache: Cache,
    /// Barbers' offers, by barber, service and the version of their
    /// shop's scope they were read at (see [`offer`](Self::offer)).
    offers: moka::future::Cache<(i64, i64, u64), Arc<Offer>>,
    /// Each barber's shop, which never changes.
    shops_of: moka::future::Cache<i64, i64>,
}

/// Offers kept in this process, a few hundred bytes each, and barbers'
/// shops.
const MAX_OFFERS: u64 = 20_000;

impl std::fmt::Debug for PublicReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicReads").finish_non_exhaustive()
    }
}

/// The keys an answer to a request may be kept under.
#[derive(Clone, Debug)]
pub struct Keys {
    /// For what was asked, exactly, and for a signed-in request by whom.
    own: String,
    /// For a signed-in request, everyone's answer to the same: where one
    /// that did not ask who asks is kept (see "Everyone's answers").
    everyone: Option<String>,
}

impl Keys {
    /// The keys of `request`'s answer for `viewer`; with `shared`, a
    /// signed-in viewer's answer may be everyone's.
    pub fn of(request: &async_graphql::Request, viewer: Option<i64>, shared: bool) -> Self {
        let mut hash = Sha256::new();
        hash.update(request.query.as_bytes());
        hash.update([0]);
        hash.update(request.operation_name.as_deref().unwrap_or("").as_bytes());
        hash.update([0]);
        hash.update(serde_json::to_vec(&request.variables).unwrap_or_default());
        let hash = hash.finalize();
        let public = || format!("public:answer:{hash:x}");
        match viewer {
            None => Keys { own: public(), everyone: None },
            Some(user) => Keys {
                own: format!("personal:answer:{user}:{hash:x}"),
                everyone: shared.then(public),
            },
        }
    }

    /// The keys to read, the asker's own first.
    fn all(&self) -> Vec<String> {
        std::iter::once(&self.own).chain(&self.everyone).cloned().collect()
    }
}

fn encode(header: &Header, data: &[u8]) -> Option<Vec<u8>> {
    let mut bytes = serde_json::to_vec(header).ok()?;
    bytes.push(b'\n');
    bytes.extend_from_slice(data);
    Some(bytes)
}

fn decode(bytes: &[u8]) -> Option<(Header, &[u8])> {
    let split = bytes.iter().position(|b| *b == b'\n')?;
    let (header, data) = bytes.split_at(split);
    Some((serde_json::from_slice(header).ok()?, &data[1..]))
}

/// The scopes whose versions a computation starts from: the epoch, and a
/// viewer's personal scopes; `None` for a viewer whose identity's version
/// is not known (their answer is not kept).
fn start_scopes(viewer: Option<&Viewer>) -> Option<Vec<String>> {
    let mut scopes = vec![EPOCH.to_owned()];
    if let Some(viewer) = viewer {
        viewer.version?;
        scopes.extend(personal_scopes(viewer));
    }
    Some(scopes)
}

/// What a computation for `viewer` starts from, given the `versions` of
/// its [`start_scopes`].
fn started(
    viewer: Option<&Viewer>,
    scopes: Vec<String>,
    versions: impl IntoIterator<Item = u64>,
) -> Started {
    let mut read = scopes.into_iter().zip(versions);
    let Some((_, epoch)) = read.next() else {
        return Started(None);
    };
    // The identity as the viewer was loaded: a role gained since has moved
    // it, and the answer computed with the old roles is outdated.
    let personal = match viewer {
        None => None,
        Some(viewer) => {
            let Some(identity) = viewer.version else {
                return Started(None);
            };
            let mut personal = vec![(known::scope(viewer.id()), identity)];
            personal.extend(read);
            Some(personal)
        }
    };
    Started(Some(AtStart { epoch, personal }))
}

impl PublicReads {
    pub fn new(cache: Cache) -> Self {
        Self {
            cache,
            // Those of an old version are never read again.
            offers: moka::future::Cache::builder()
                .max_capacity(MAX_OFFERS)
                .time_to_idle(std::time::Duration::from_secs(3600))
                .build(),
            shops_of: moka::future::Cache::new(MAX_OFFERS),
        }
    }

    /// What `barber` offers for `service` (see [`Offer`]), read from the
    /// database only when its shop's catalogue changed since this process
    /// last read it: the shop's version, one round trip to the cache,
    /// tells. Every write to a barber, a service, who offers it, a shop or
    /// working hours bumps that version after it commits, so what is
    /// served here is what the database holds. Without the cache's
    /// versions, it is read from the database.
    ///
    /// Returns the versions it read, before any row: the shop's scope's,
    /// then `also`'s, read with it in the same round trip (`None` when
    /// they could not be read).
    pub async fn offer(
        &self,
        db: &impl sea_orm::ConnectionTrait,
        barber: i64,
        service: i64,
        also: Option<String>,
    ) -> AppResult<(Arc<Offer>, Vec<(String, Option<u64>)>)> {
        let shop = self
            .shops_of
            .try_get_with(barber, async {
                let barber = domain::barber::get(db, barber).await?;
                Ok(barber
                    .ok_or_else(|| AppError::not_found("no barber has this `barberId`"))?
                    .shop_id)
            })
            .await
            .map_err(|error: Arc<AppError>| error.duplicate())?;
        // Read before the rows, so that a kept offer is never older than
        // the version it is kept with.
        let scopes: Vec<String> = std::iter::once(shop_scope(shop)).chain(also).collect();
        let versions: Vec<(String, Option<u64>)> = match self.versions(&scopes).await {
            Ok(read) => scopes.into_iter().zip(read.into_iter().map(Some)).collect(),
            Err(Unavailable) => scopes.into_iter().map(|scope| (scope, None)).collect(),
        };
        let load = async { Ok(Arc::new(Offer::load(db, barber, service).await?)) };
        let offer = match versions[0].1 {
            // Requests that find it missing together wait for one read.
            Some(version) => self
                .offers
                .try_get_with((barber, service, version), load)
                .await
                .map_err(|error: Arc<AppError>| error.duplicate())?,
            None => load.await?,
        };
        Ok((offer, versions))
    }

    /// The answer kept under `key`, if there is one that may serve: not
    /// past its time, and for a personal answer (its key holds the
    /// viewer's id) computed at the very identity `viewer` was loaded at.
    /// Whether every version it was read at is still current is for
    /// [`confirm`](Self::confirm) to say, from versions the caller reads
    /// in a round trip it makes anyway (with the request's charge); for a
    /// personal answer, that read also tells that the viewer is current (a
    /// session ended, a role changed, bump it), and the token needs no
    /// round trip of its own.
    ///
    /// With `near_only`, only a copy kept in this process is looked at (no
    /// round trip).
    ///
    /// A signed-in viewer without an answer of their own may be served
    /// everyone's (see "Everyone's answers"), its versions then with their
    /// identity's.
    pub async fn candidate(
        &self,
        keys: &Keys,
        viewer: Option<&Viewer>,
        near_only: bool,
    ) -> Option<Candidate> {
        let keys = keys.all();
        let read = match near_only {
            true => self.cache.read_near(&keys).await,
            false => self.cache.read_many(&keys).await.ok()?,
        };
        Self::choose(read, viewer)
    }

    /// The answers `read` under [`Keys::all`] that may serve `viewer`, if
    /// any. Both are kept: an own answer that turns out stale may stand
    /// beside everyone's that is current (one an earlier build kept, or
    /// one a document that asks who asks only at times kept), and
    /// [`confirm`](Self::confirm) serves the first that is current.
    fn choose(read: Vec<Option<Vec<u8>>>, viewer: Option<&Viewer>) -> Option<Candidate> {
        let mut read = read.into_iter();
        let own = read.next().flatten().and_then(|bytes| Self::candidate_of(&bytes, viewer));
        let everyones = read
            .next()
            .flatten()
            .zip(viewer)
            .and_then(|(bytes, viewer)| Self::everyones_for(&bytes, viewer));
        Candidate::of(own.into_iter().chain(everyones).collect())
    }

    /// The kept answer in `bytes`, if it may serve `viewer` (see
    /// [`candidate`](Self::candidate)).
    fn candidate_of(bytes: &[u8], viewer: Option<&Viewer>) -> Option<(Header, Vec<u8>)> {
        let (header, data) = Self::unexpired(bytes)?;
        if let Some(viewer) = viewer {
            let identity = known::scope(viewer.id());
            let kept_at = header.versions.iter().find(|(scope, _)| *scope == identity);
            if viewer.version.is_none() || kept_at.map(|(_, version)| *version) != viewer.version {
                return None;
            }
        }
        Some((header, data.to_vec()))
    }

    /// Everyone's answer in `bytes` for signed-in `viewer`: current only
    /// while their identity is as they were loaded (a session ended or a
    /// role changed moves it, and the token is checked again), and for
    /// them alone on the way.
    fn everyones_for(bytes: &[u8], viewer: &Viewer) -> Option<(Header, Vec<u8>)> {
        let (mut header, data) = Self::unexpired(bytes)?;
        if !header.shared || header.personal {
            return None;
        }
        header.versions.push((known::scope(viewer.id()), viewer.version?));
        header.personal = true;
        Some((header, data.to_vec()))
    }

    /// The answer in `bytes`, unless past its time.
    fn unexpired(bytes: &[u8]) -> Option<(Header, &[u8])> {
        let (header, data) = decode(bytes)?;
        let now = chrono::Utc::now().timestamp_millis();
        header.until.is_none_or(|until| until > now).then_some((header, data))
    }

    /// The answer kept under `key` if it may serve (see
    /// [`candidate`](Self::candidate)) and every version it was read at is
    /// still current; else what computing it starts from (see
    /// [`start`](Self::start)), read in the same round trip as the answer
    /// that was not there: two round trips at most.
    pub async fn lookup_or_start(
        &self,
        keys: &Keys,
        viewer: Option<&Viewer>,
    ) -> Result<Kept, Started> {
        let scopes = start_scopes(viewer);
        let read =
            self.cache.read_and_versions(&keys.all(), scopes.as_deref().unwrap_or_default()).await;
        let Ok((answers, at_start)) = read else {
            return Err(Started(None));
        };
        if let Some(candidate) = Self::choose(answers, viewer)
            && let Ok(current) = self.cache.versions(candidate.scopes()).await
            && let Some(kept) = self.confirm(candidate, &current)
        {
            return Ok(kept);
        }
        match scopes {
            // A scope without a version yet gets one first.
            Some(_) if at_start.iter().any(Option::is_none) => Err(self.start(viewer).await),
            Some(scopes) => Err(started(viewer, scopes, at_start.into_iter().flatten())),
            None => Err(Started(None)),
        }
    }

    /// The first of the candidate's answers whose versions are those in
    /// `current` (the versions of its [`scopes`](Candidate::scopes), read
    /// now).
    pub fn confirm(&self, candidate: Candidate, current: &[Option<u64>]) -> Option<Kept> {
        let Candidate { mut answers, scopes } = candidate;
        let read = scopes.len() == current.len();
        let now: BTreeMap<&str, Option<u64>> =
            scopes.iter().map(String::as_str).zip(current.iter().copied()).collect();
        let is_fresh = |header: &Header| {
            read && header
                .versions
                .iter()
                .all(|(scope, kept)| now.get(scope.as_str()).copied().flatten() == Some(*kept))
        };
        let served = answers.iter().position(|(header, _)| is_fresh(header));
        let fresh = served.is_some();
        // The first that is current, or (to count it stale) the first.
        let (header, data) = answers.swap_remove(served.unwrap_or(0));
        let outcome = match (fresh, header.shared) {
            (false, _) => "stale",
            // Everyone's, served to a signed-in user.
            (true, true) if header.personal => "shared",
            (true, _) => "hit",
        };
        count(header.personal, outcome);
        let cache_control = match header.personal {
            true => "no-store".to_owned(),
            false => cache_control(header.max_age, header.until),
        };
        fresh.then_some(Kept {
            data,
            cost: header.cost,
            operation: header.operation,
            cache_control,
        })
    }

    /// Marks the start of a computation whose answer may be kept: everyone's
    /// without a `viewer`, else the viewer's own.
    pub async fn start(&self, viewer: Option<&Viewer>) -> Started {
        let Some(scopes) = start_scopes(viewer) else {
            return Started(None);
        };
        match self.versions(&scopes).await {
            Ok(versions) => started(viewer, scopes, versions),
            Err(Unavailable) => Started(None),
        }
    }

    /// Keeps `response` under its key with the versions of what it was
    /// read from, unless a catalogue write moved the epoch since `started`
    /// or a version could not be read: everyone's when it never asked who
    /// asks and its hints say public, else the asker's own.
    pub async fn keep(
        &self,
        keys: &Keys,
        started: Started,
        touched: &Touched,
        response: &async_graphql::Response,
        cost: u32,
        operation: Option<String>,
    ) {
        let Some(AtStart { epoch, personal }) = started.0 else {
            return;
        };
        let (after, before, until, asked) = {
            let noted = touched.noted();
            let after = noted.after.iter().cloned().collect::<Vec<_>>();
            (after, noted.before.clone(), noted.until, noted.asked)
        };
        let shared = !asked && keepable(response, false).is_some();
        let (key, personal) = match (&keys.everyone, personal) {
            (Some(everyone), Some(_)) if shared => (everyone, None),
            (_, personal) => (&keys.own, personal),
        };
        let is_personal = personal.is_some();
        let Some(max_age) = keepable(response, is_personal) else {
            return;
        };
        // Scopes read before their rows need no second look: a write since
        // has moved them. Those read after do, with the epoch.
        let now = match after.is_empty() {
            true => vec![epoch],
            false => {
                let mut scopes = vec![EPOCH.to_owned()];
                scopes.extend(after.iter().cloned());
                let Ok(now) = self.versions(&scopes).await else {
                    return;
                };
                now
            }
        };
        if now.first() != Some(&epoch) {
            count(is_personal, "unkept");
            return;
        }
        let mut versions: Vec<(String, u64)> = personal.unwrap_or_default();
        versions.extend(after.into_iter().zip(now.into_iter().skip(1)));
        for (scope, version) in before {
            let Some(version) = version else {
                return;
            };
            versions.push((scope, version));
        }
        let Ok(data) = serde_json::to_vec(&response.data) else {
            return;
        };
        let shared = shared && !is_personal;
        let header =
            Header { versions, cost, operation, max_age, until, personal: is_personal, shared };
        if let Some(bytes) = encode(&header, &data) {
            let outcome = match self.cache.write(key, &bytes).await {
                Ok(()) => "miss",
                Err(Unavailable) => "unstored",
            };
            count(header.personal, outcome);
        }
    }

    /// Versions of `scopes`, read at one instant; a scope that has none yet
    /// is given one first, and then all are read again together.
    async fn versions(&self, scopes: &[String]) -> Result<Vec<u64>, Unavailable> {
        let mut read = self.cache.versions(scopes).await?;
        if read.iter().any(Option::is_none) {
            for (scope, version) in scopes.iter().zip(&read) {
                if version.is_none() {
                    self.cache.version(scope).await?;
                }
            }
            read = self.cache.versions(scopes).await?;
        }
        read.into_iter().map(|version| version.ok_or(Unavailable)).collect()
    }

    /// Makes stale every kept answer of the scopes in `stale`, at one
    /// instant (one round trip to Redis).
    pub async fn make_stale(&self, stale: Stale) {
        let mut scopes = stale.0;
        scopes.sort();
        scopes.dedup();
        self.cache.bump(&scopes).await;
    }
}

/// The scopes of kept answers a committed write makes stale, gathered to
/// be bumped together ([`PublicReads::make_stale`]).
#[derive(Debug, Default)]
pub struct Stale(Vec<String>);

impl Stale {
    /// Every kept answer that shows something public of `shop` (its
    /// details, barbers, services, hours), and with `listing` every answer
    /// that depends on which shops, barbers and services exist. The epoch
    /// moves with them (no later), so that an answer computed meanwhile is
    /// not kept.
    pub fn catalogue(&mut self, shop: i64, listing: bool) {
        self.0.push(EPOCH.to_owned());
        if listing {
            self.0.push(DIRECTORY.to_owned());
        }
        self.0.push(shop_scope(shop));
    }

    /// Every kept answer with `barber`'s free slots.
    pub fn slots(&mut self, barber: i64) {
        self.0.push(slots_scope(barber));
    }

    /// Every personal answer of `shop`'s owner and barbers.
    pub fn shop(&mut self, shop: i64) {
        self.0.push(staff_scope(shop));
    }

    /// Every personal answer of `client` (their bookings).
    pub fn client(&mut self, client: i64) {
        self.0.push(client_scope(client));
    }
}

/// The age its hints give a response that may be kept: no errors, and
/// public with an age, or for one viewer anything but `no_cache`.
/// (Documents with a mutation are refused by the caller.)
fn keepable(response: &async_graphql::Response, personal: bool) -> Option<i32> {
    let hints = &response.cache_control;
    let kept = match personal {
        true => hints.max_age >= 0,
        false => hints.public && hints.max_age > 0,
    };
    (response.errors.is_empty() && kept).then_some(hints.max_age)
}

/// `Cache-Control` for a public answer of `max_age` seconds that holds
/// until `until` (Unix milliseconds) at most: no cache may keep it longer.
pub fn cache_control(max_age: i32, until: Option<i64>) -> String {
    let left = until.map(|until| {
        let millis = (until - chrono::Utc::now().timestamp_millis()).max(0);
        i32::try_from(millis / 1000).unwrap_or(i32::MAX)
    });
    format!("max-age={}", left.map_or(max_age, |left| left.min(max_age)))
}

#[cfg(test)]
mod tests {
    use super::{Header, PublicReads, cache_control, encode};
    use crate::auth::{Viewer, known};

    fn viewer(version: u64) -> Viewer {
        let now = chrono::Utc::now();
        let user = entity::user::Model {
            id: 7,
            email: "seven@example.com".to_owned(),
            password_hash: String::new(),
            name: "Seven".to_owned(),
            created_at: now,
            updated_at: now,
        };
        Viewer { user, memberships: Vec::new(), session: None, version: Some(version) }
    }

    fn kept(versions: &[(&str, u64)], personal: bool, shared: bool, data: &str) -> Vec<u8> {
        let versions = versions.iter().map(|(scope, v)| ((*scope).to_owned(), *v)).collect();
        // An own answer kept by an earlier build that weighed it more.
        let cost = if personal { 4 } else { 1 };
        let header =
            Header { versions, cost, operation: None, max_age: 5, until: None, personal, shared };
        encode(&header, data.as_bytes()).unwrap()
    }

    /// An own answer may be stale beside everyone's that is current (an
    /// earlier build kept it, or the document asked who asks only that
    /// time): everyone's serves, rather than neither until the own expires.
    /// Own answers come first when both are current.
    #[test]
    fn a_stale_own_answer_does_not_hide_everyones() {
        let second = std::time::Duration::from_secs(1);
        let cache = crate::cache::Cache::new(None, "test", second, second).unwrap();
        let reads = PublicReads::new(cache);
        let me = viewer(3);
        let identity = known::scope(me.id());
        let own = kept(&[(identity.as_str(), 3), ("epoch", 1), ("shop:1", 4)], true, false, "own");
        let everyones = kept(&[("epoch", 1), ("shop:1", 5)], false, true, "everyone's");
        let read = || vec![Some(own.clone()), Some(everyones.clone())];
        let candidate = PublicReads::choose(read(), Some(&me)).unwrap();
        let scopes = candidate.scopes();
        assert_eq!(scopes, [identity.as_str(), "epoch", "shop:1"], "each scope read once");
        assert_eq!(candidate.cost(), 1, "paid on arrival: no more than either answer costs");
        let served = reads.confirm(candidate, &[Some(3), Some(1), Some(5)]).unwrap();
        assert_eq!(served.data, b"everyone's");
        assert_eq!(served.cache_control, "no-store", "for one viewer on the way");
        let candidate = PublicReads::choose(read(), Some(&me)).unwrap();
        let served = reads.confirm(candidate, &[Some(3), Some(1), Some(4)]).unwrap();
        assert_eq!(served.data, b"own");
        // A session ended: neither serves.
        let candidate = PublicReads::choose(read(), Some(&me)).unwrap();
        assert!(reads.confirm(candidate, &[Some(4), Some(1), Some(5)]).is_none());
    }

    #[test]
    fn no_cache_keeps_an_answer_past_the_instant_it_ends() {
        let now = chrono::Utc::now().timestamp_millis();
        assert_eq!(cache_control(10, None), "max-age=10");
        assert_eq!(cache_control(5, Some(now + 60_000)), "max-age=5");
        assert_eq!(cache_control(5, Some(now + 2_500)), "max-age=2");
        assert_eq!(cache_control(5, Some(now - 1)), "max-age=0");
    }
}
