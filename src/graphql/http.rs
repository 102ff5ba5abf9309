//! `/graphql` over HTTP: GraphiQL on a plain GET, queries on POST and on GET
//! with a `query` parameter.
//!
//! A request is read first (refused with 415 or 400 if it is not GraphQL
//! in JSON); then [`Admitted::admit`] admits it (the database breaker and
//! the admission queue) and authenticates it. Its first point is charged
//! in the round trip to Redis it makes first anyway, with the versions of a
//! kept answer or of its viewer ([`Admitted::pay`]): the shared budget
//! costs no round trip of its own. A request refused on the way costs its
//! address that point instead. What remains here runs the operation and
//! finishes the response: status from the typed error, cost, headers.

use std::{net::SocketAddr, sync::Arc, time::Instant};

use async_graphql_axum::GraphQLResponse;
use axum::{
    extract::{ConnectInfo, FromRequestParts, Request, State},
    http::{HeaderMap, HeaderValue, header, request::Parts},
    response::{IntoResponse, Response},
};
use tokio::sync::OwnedSemaphorePermit;

use super::{
    limits::{OperationInfo, ViaGet, charge_operation},
    persisted::{self, Asked},
    public::{self, Kept, Touched},
};
use crate::{
    app::AppState,
    auth::{Identity, bearer, known},
    cache::Unavailable,
    error::AppError,
    protect::{self, Budget, ClientIp, ClientKey, Overdrawn, RequestBudget},
    telemetry,
};

/// The client's address, as the rate limits see it (`TRUST_PROXY`).
impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip())
            .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
        Ok(ClientIp(protect::client_ip(peer, &parts.headers, &state.config.trust_proxy)))
    }
}

/// `error` as the answer to a request refused before it ran, which still
/// costs its sender's address a point (or is a 429 when none is left).
async fn refused_early(state: &AppState, ip: ClientIp, error: AppError) -> Response {
    match state.limits.charge(&protect::ip_key(ip.0), 1).await {
        Ok(budget) => with_budget(error.into_response(), &budget),
        Err(overdrawn) => too_many(&overdrawn),
    }
}

/// 429 with `Retry-After` and a `RATE_LIMITED` error, for an operation of
/// `cost` points that the budget cannot pay now (as `charge_operation`
/// refuses it).
fn too_costly(cost: u32, overdrawn: &Overdrawn) -> Response {
    telemetry::rate_limit_refused("cost_or_sign_in");
    let what = format!("this operation costs {cost} points, more than your budget holds now");
    with_budget(overdrawn.error(&what).into_response(), &overdrawn.budget)
}

/// 429 with `Retry-After` and a `RATE_LIMITED` error, for a request whose
/// budget is spent.
fn too_many(overdrawn: &Overdrawn) -> Response {
    telemetry::rate_limit_refused("requests");
    let error = overdrawn.error("too many requests: your budget is spent");
    with_budget(error.into_response(), &overdrawn.budget)
}

/// A request admitted to run: the database is up, a turn is held to the
/// end of the request and its sender is known. Its first point is paid in
/// the round trip the request makes first ([`Admitted::pay`]).
pub struct Admitted {
    ip: ClientIp,
    identity: Identity,
    key: ClientKey,
    /// The token of a viewer kept for it whose version is not read yet
    /// (see [`Caller::check_at`]).
    unchecked: Option<String>,
    turn: OwnedSemaphorePermit,
}

/// An admitted request whose first point is paid.
pub struct Caller {
    pub ip: ClientIp,
    pub identity: Identity,
    pub key: ClientKey,
    pub budget: RequestBudget,
    unchecked: Option<String>,
    _turn: OwnedSemaphorePermit,
}

impl Admitted {
    /// Admits a request from `ip` with `headers`, or answers its refusal.
    ///
    /// With personal answers kept, a token's kept viewer is taken as it is,
    /// its version unread: a kept answer's versions tell whether it is
    /// current in the round trip that pays for the request; when none
    /// serves, [`Caller::check_at`] checks it before anything runs.
    async fn admit(state: &AppState, ip: ClientIp, headers: &HeaderMap) -> Result<Self, Response> {
        if state.db_health.is_open() {
            // The database is away: refuse at once, every path alike,
            // rather than queue for a connection that will not come.
            telemetry::db_unavailable_refused();
            let error = AppError::ServiceUnavailable(
                "the database is unavailable; nothing was done; try again in a few seconds"
                    .to_owned(),
            );
            return Err(refused_early(state, ip, error).await);
        }
        // Held to the end of the request: signing in and running both use
        // the database.
        let Some(turn) = state.admission.enter().await else {
            telemetry::overloaded();
            return Err(AppError::Overloaded.into_response());
        };
        let peeked = match bearer::bearer_token(headers) {
            Ok(Some(token)) if state.config.personal_cache => {
                state.known.peek(token).map(|viewer| (viewer, token.to_owned()))
            }
            _ => None,
        };
        let (identity, unchecked) = match peeked {
            Some((viewer, token)) => (Identity::User(viewer), Some(token)),
            None => {
                match bearer::authenticate(&state.db, &state.tokens, &state.known, headers).await {
                    Ok(identity) => (identity, None),
                    Err(error) => {
                        return Err(refused_early(state, ip, for_authentication(error)).await);
                    }
                }
            }
        };
        let key = match identity.viewer() {
            Some(viewer) => ClientKey::User(viewer.id()),
            None => protect::ip_key(ip.0),
        };
        Ok(Admitted { ip, identity, key, unchecked, turn })
    }

    /// Pays the request's first `cost` points, reading the versions of
    /// `scopes` in the same round trip (`Err` when they could not be
    /// read), or answers 429.
    /// A `cost` above 1 is an operation's whole cost paid at once (a kept
    /// answer's), refused as its operation would be.
    async fn pay(
        self,
        state: &AppState,
        cost: u32,
        scopes: &[String],
    ) -> Result<(Caller, Result<Vec<Option<u64>>, Unavailable>), Response> {
        let (charged, versions) =
            state.limits.charge_reading(&self.key, cost, Some(&state.cache), scopes).await;
        let budget = charged.map_err(|overdrawn| match cost {
            1 => too_many(&overdrawn),
            _ => too_costly(cost, &overdrawn),
        })?;
        let caller = Caller {
            ip: self.ip,
            identity: self.identity,
            key: self.key,
            budget: RequestBudget(Arc::new(std::sync::Mutex::new(budget))),
            unchecked: self.unchecked,
            _turn: self.turn,
        };
        Ok((caller, versions))
    }
}

impl Caller {
    /// Checks a viewer admitted unchecked, given their version as read with
    /// the charge (`None`: not read), or answers the refusal.
    async fn check_at(mut self, state: &AppState, version: Option<u64>) -> Result<Self, Response> {
        if let Some(token) = self.unchecked.take() {
            self.identity = checked(state, self.ip, &token, version).await?;
        }
        Ok(self)
    }
}

/// The identity of `token`, a viewer kept for it whose version was `version`
/// (when read), loaded again if it moved; or the refusal.
async fn checked(
    state: &AppState,
    ip: ClientIp,
    token: &str,
    version: Option<u64>,
) -> Result<Identity, Response> {
    match state.known.viewer_at(&state.db, &state.tokens, token, version).await {
        Ok(viewer) => Ok(Identity::User(viewer)),
        Err(error) => Err(refused_early(state, ip, for_authentication(error)).await),
    }
}

/// Authentication fails on the credentials (401) or on the database it
/// needs to look the account up (503), never as the client's mistake.
fn for_authentication(error: AppError) -> AppError {
    match error {
        AppError::Unauthenticated(_) | AppError::ServiceUnavailable(_) | AppError::Timeout(_) => {
            error
        }
        other => {
            tracing::error!(error = ?other, "could not authenticate a request");
            AppError::ServiceUnavailable(
                "your token could not be checked just now; try again in a few seconds".to_owned(),
            )
        }
    }
}

/// Whether a POST body is declared as JSON. Only JSON runs: a browser sends
/// `text/plain`, `multipart/form-data` and form encodings cross-site without
/// asking, and JSON it does not (the GraphQL-over-HTTP spec's CSRF advice).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|essence| essence.trim().to_ascii_lowercase())
        .is_some_and(|essence| {
            essence == "application/json" || essence == "application/graphql-response+json"
        })
}

/// 400: what was sent is not a GraphQL request.
fn not_graphql(error: &async_graphql::ParseRequestError) -> AppError {
    AppError::bad_input(format!(
        "the request is not a GraphQL request ({error}); send JSON like {{\"query\": \"{{ shops {{ totalCount }} }}\"}}"
    ))
}

/// The GraphQL request of a POST's JSON body, read as async-graphql reads
/// it (one request, not a batch).
fn from_json(body: &[u8]) -> Result<async_graphql::Request, async_graphql::ParseRequestError> {
    serde_json::from_slice::<async_graphql::BatchRequest>(body)
        .map_err(|e| async_graphql::ParseRequestError::InvalidRequest(Box::new(e)))?
        .into_single()
}

/// POST `/graphql`: runs one GraphQL request as its sender.
///
/// The body is read before anything may refuse the request: a refusal
/// that left it unread would leave the connection unusable, and the
/// client's next request on it would fail. What is not a GraphQL request
/// in JSON is refused (415, 400) before the caller is admitted, so it takes
/// no turn and no database lookup, and costs its address one point.
pub async fn post(State(state): State<AppState>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let Ok(ip) = ClientIp::from_request_parts(&mut parts, &state).await;
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        // The body limit ran out (a chunked body), or the client went.
        let error = AppError::PayloadTooLarge(format!(
            "the request body is larger than {} KiB; send less in one request",
            crate::router::MAX_BODY_BYTES / 1024
        ));
        return refused_early(&state, ip, error).await;
    };
    if !is_json(&parts.headers) {
        let error = AppError::UnsupportedMediaType(
            "send GraphQL requests as `Content-Type: application/json`; other types are refused, so that no web page can make a browser run an operation"
                .to_owned(),
        );
        return refused_early(&state, ip, error).await;
    }
    let request = match from_json(&bytes) {
        Ok(request) => request,
        Err(error) => return refused_early(&state, ip, not_graphql(&error)).await,
    };
    admit_and_run(state, ip, &parts.headers, request).await
}

/// GET `/graphql`: the GraphiQL playground, or a query when one is given.
pub async fn get(State(state): State<AppState>, request: Request) -> Response {
    // A query, or a persisted query's hash alone (Apollo's GET form).
    let asks = request.uri().query().is_some_and(|q| {
        q.split('&').any(|pair| pair.starts_with("query=") || pair.starts_with("extensions="))
    });
    if !asks {
        return super::playground::page().await.into_response();
    }
    let (mut parts, _) = request.into_parts();
    let Ok(ip) = ClientIp::from_request_parts(&mut parts, &state).await;
    let request = match async_graphql::http::parse_query_string(parts.uri.query().unwrap_or("")) {
        Ok(request) => request.data(ViaGet),
        Err(error) => return refused_early(&state, ip, not_graphql(&error)).await,
    };
    admit_and_run(state, ip, &parts.headers, request).await
}

/// Admits a request and runs it, recording the time it kept a worker
/// busy by how it was answered.
async fn admit_and_run(
    state: AppState,
    ip: ClientIp,
    headers: &HeaderMap,
    request: async_graphql::Request,
) -> Response {
    let (mut response, busy) = telemetry::Busy::new(async {
        match Admitted::admit(&state, ip, headers).await {
            Ok(admitted) => run(state.clone(), admitted, request).await,
            Err(refused) => refused,
        }
    })
    .await;
    telemetry::graphql_busy(response.extensions_mut().remove::<telemetry::Answered>(), busy);
    response
}

/// Runs an admitted request, then finishes its response.
async fn run(state: AppState, admitted: Admitted, mut request: async_graphql::Request) -> Response {
    let started = Instant::now();
    let persisted = request.extensions.contains_key("persistedQuery");
    // Before the request is paid for, only what this process keeps is
    // looked at: a client over its budget costs no more than its refusal.
    // A kept answer here (not for a persisted query, whose text is not
    // known yet) has its versions read in the round trip that pays.
    let viewer = admitted.identity.viewer();
    let near = match (!persisted).then(|| kept_keys(&state, &request, viewer)).flatten() {
        Some(keys) => state.public.candidate(&keys, viewer, true).await,
        None => None,
    };
    // Else the round trip reads the version of a viewer admitted unchecked.
    let identity_scope =
        viewer.filter(|_| admitted.unchecked.is_some()).map(|viewer| known::scope(viewer.id()));
    let scopes = match (&near, &identity_scope) {
        (Some(candidate), _) => candidate.scopes().to_vec(),
        (None, Some(scope)) => vec![scope.clone()],
        (None, None) => Vec::new(),
    };
    // A kept answer costs what its operation cost when it was computed,
    // and a document seen before what it cost then: paid at once, with
    // the first point (what can never be paid goes the long way, to be
    // refused as too complex).
    let known = match (&near, persisted) {
        (Some(candidate), _) => Some(candidate.cost()),
        (None, false) => state.known_costs.of(&request.query),
        (None, true) => None,
    };
    let prepaid = known.filter(|cost| *cost <= state.limits.burst()).unwrap_or(1).max(1);
    // A document whose cost is not known yet is learnt once it has run (a
    // persisted query's text is not looked up, so not learnt either).
    let to_learn = (known.is_none() && !persisted).then(|| request.query.clone());
    let (caller, versions) = match admitted.pay(&state, prepaid, &scopes).await {
        Ok(paid) => paid,
        Err(refused) => return refused,
    };
    let versions = versions.ok();
    let looked_near = near.is_some();
    if let (Some(candidate), Some(current)) = (near, &versions)
        && let Some(kept) = state.public.confirm(candidate, current)
    {
        if caller.unchecked.is_some() {
            state.known.confirmed();
        }
        return answer_kept(&state, &caller, kept, prepaid, started).await;
    }
    let identity_version = identity_scope.and_then(|scope| {
        let at = scopes.iter().position(|read| *read == scope)?;
        versions.as_ref()?.get(at).copied().flatten()
    });
    let caller = match caller.check_at(&state, identity_version).await {
        Ok(caller) => caller,
        Err(refused) => return refused,
    };
    // A document whose cost is known and cannot vary, paid in full on
    // arrival, runs without the limits' extension (see `Schemas::lean`).
    let fixed_cost = match (looked_near, persisted) {
        (false, false) => known,
        (true, false) => state.known_costs.of(&request.query),
        (_, true) => None,
    };
    let lean = fixed_cost == Some(prepaid);
    let personal = caller.identity.viewer().is_some();
    let budget = caller.budget.clone();
    let registration = match persisted::resolve(&state.persisted, &mut request).await {
        Ok(Asked::Register { hash }) => {
            match state.limits.charge(&caller.key, persisted::REGISTRATION_COST).await {
                Ok(after) => budget.set(after),
                Err(overdrawn) => return too_many(&overdrawn),
            }
            Some((hash, request.query.clone()))
        }
        Ok(Asked::Nothing | Asked::Known) => None,
        Err(error) => {
            let response = async_graphql::Response::from_errors(vec![error.into_server_error()]);
            let finished = Finished { response, operation: None, personal, until: None };
            return finished.into_http(&state, &budget, &OperationInfo::default(), started);
        }
    };
    // A read may have been answered already, for everyone or for this
    // viewer (see `public`): one kept elsewhere (another replica), or a
    // persisted query's.
    let viewer = caller.identity.viewer();
    let kept_keys = match registration {
        None => kept_keys(&state, &request, viewer),
        Some(_) => None,
    };
    let keeping = match &kept_keys {
        None => None,
        Some(keys) if looked_near => Some((keys, state.public.start(viewer).await)),
        Some(keys) => match state.public.lookup_or_start(keys, viewer).await {
            Ok(kept) => return answer_kept(&state, &caller, kept, prepaid, started).await,
            Err(at_start) => Some((keys, at_start)),
        },
    };
    // What an answer shows, for keeping it, and for how long any cache on
    // the way may keep an anonymous one.
    let touched = (!personal || keeping.is_some()).then(Touched::default);
    let info = OperationInfo::default();
    let requested_name = request.operation_name.clone();
    let request = request
        .data(caller.key.clone())
        .data(budget.clone())
        .data(info.clone())
        .data(caller.ip)
        .data(Prepaid(prepaid));
    let schemas = &state.schemas;
    let prepared = match lean {
        true => schemas.limits.prepare(request, prepaid).map(|request| (&schemas.lean, request)),
        false => Ok((&schemas.checked, request)),
    };
    let mut response = match prepared {
        Ok((schema, request)) => {
            let identity = caller.identity.clone();
            super::loader::execute(schema, request, &state.reads, identity, touched.clone()).await
        }
        Err(refused) => async_graphql::Response::from_errors(vec![refused]),
    };
    super::ensure_error_codes(&mut response);
    if let Some(text) = to_learn {
        state.known_costs.learn(text, &info);
    }
    let ran = info.name(requested_name.as_deref());
    // Never a document with a mutation in it, whichever operation ran.
    if let (Some((keys, started)), Some(touched)) = (keeping, &touched)
        && info.only_queries()
    {
        state.public.keep(keys, started, touched, &response, info.cost(), ran.clone()).await;
    }
    // Kept once it parsed and validated (a field's error has a path; an
    // error of the whole request has none).
    let request_refused = response.data == async_graphql::Value::Null
        && response.errors.iter().any(|e| e.path.is_empty());
    if let Some((hash, query)) = registration
        && !request_refused
        && persisted::register(&state.persisted, &hash, &query).await
        && let Some(name) = &ran
    {
        state.operation_names.learn(name);
    }
    let until = touched.as_ref().and_then(Touched::until);
    let finished = Finished { response, operation: ran, personal, until };
    finished.into_http(&state, &budget, &info, started)
}

/// Points a request paid on arrival: its first, or a kept answer's whole
/// cost when one was found then (its operation owes only the rest).
#[derive(Clone, Copy, Debug)]
pub struct Prepaid(pub u32);

/// The keys an answer to `request` may be kept under, when it may be
/// kept: a signed-in viewer's may be everyone's when public answers are
/// kept too.
fn kept_keys(
    state: &AppState,
    request: &async_graphql::Request,
    viewer: Option<&crate::auth::Viewer>,
) -> Option<public::Keys> {
    let config = &state.config;
    let may_keep = match viewer {
        None => config.public_cache,
        Some(_) => config.personal_cache,
    };
    // A document known to write (or subscribe) has no answer kept.
    let may_keep = may_keep && state.schemas.limits.may_be_kept(&request.query);
    let viewer = viewer.map(|viewer| viewer.id());
    may_keep.then(|| public::Keys::of(request, viewer, config.public_cache))
}

/// `extensions.cost` of an answer: the points it cost and what is left.
fn cost_extension(requested: u32, spent: &Budget) -> serde_json::Value {
    serde_json::json!({
        "requested": requested,
        "remaining": spent.remaining,
        "limit": spent.limit,
        "resetAt": spent.reset_at.to_rfc3339(),
    })
}

/// A public answer kept in the cache, as it was computed, with this
/// request's cost paid and reported.
async fn answer_kept(
    state: &AppState,
    caller: &Caller,
    kept: Kept,
    prepaid: u32,
    started: Instant,
) -> Response {
    // Charged as when it is computed (less what was paid ahead), refused
    // the same way.
    let owed = kept.cost.saturating_sub(prepaid - 1);
    if let Err(refusal) = charge_operation(&state.limits, &caller.key, &caller.budget, owed).await {
        if let AppError::RateLimited { .. } = refusal {
            telemetry::rate_limit_refused("cost_or_sign_in");
        }
        return with_budget(refusal.into_response(), &caller.budget.get());
    }
    let spent = caller.budget.get();
    let cost = cost_extension(kept.cost, &spent);
    let mut body = Vec::with_capacity(kept.data.len() + 128);
    body.extend_from_slice(b"{\"data\":");
    body.extend_from_slice(&kept.data);
    body.extend_from_slice(b",\"extensions\":{\"cost\":");
    body.extend_from_slice(cost.to_string().as_bytes());
    body.extend_from_slice(b"}}");
    let label = state.operation_names.label(kept.operation.as_deref());
    telemetry::graphql_request(
        &label,
        &async_graphql::Response::default(),
        started.elapsed(),
        state.config.slow_request_ms,
    );
    let mut http = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    http.extensions_mut().insert(telemetry::Answered { operation: label, kept: true });
    if let Ok(value) = HeaderValue::from_str(&kept.cache_control) {
        http.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    with_budget(http, &spent)
}

/// A GraphQL response on its way out.
struct Finished {
    response: async_graphql::Response,
    /// The name of the operation that ran, if it had one.
    operation: Option<String>,
    /// Whether it answers a signed-in user.
    personal: bool,
    /// Until when the answer holds as time passes (free slots), in Unix
    /// milliseconds; no cache may keep it longer.
    until: Option<i64>,
}

impl Finished {
    /// The error that gives the response its HTTP status: one that refused
    /// the request as a whole (no data) and tells the client to wait or to
    /// send it differently.
    fn refusal(&self) -> Option<&AppError> {
        if self.response.data != async_graphql::Value::Null {
            // A field refused inside a mutation that otherwise ran keeps
            // 200: retrying could repeat the rest.
            return None;
        }
        self.response
            .errors
            .iter()
            .filter_map(|e| e.source::<AppError>())
            .filter(|e| e.sets_status())
            .max_by_key(|e| e.status())
    }

    fn into_http(
        mut self,
        state: &AppState,
        budget: &RequestBudget,
        info: &OperationInfo,
        started: Instant,
    ) -> Response {
        let spent = budget.get();
        let cost = cost_extension(info.cost(), &spent);
        self.response
            .extensions
            .insert("cost".to_owned(), async_graphql::Value::from_json(cost).unwrap_or_default());
        let label = state.operation_names.label(self.operation.as_deref());
        telemetry::graphql_request(
            &label,
            &self.response,
            started.elapsed(),
            state.config.slow_request_ms,
        );
        let refusal = self.refusal().map(AppError::duplicate);
        let hints = self.response.cache_control;
        let bounded = self
            .until
            .filter(|_| hints.public && hints.max_age > 0)
            .map(|until| public::cache_control(hints.max_age, Some(until)));
        let mut http = GraphQLResponse::from(self.response).into_response();
        http.extensions_mut().insert(telemetry::Answered { operation: label, kept: false });
        if let Some(bounded) = bounded
            && http.headers().contains_key(header::CACHE_CONTROL)
            && let Ok(value) = HeaderValue::from_str(&bounded)
        {
            http.headers_mut().insert(header::CACHE_CONTROL, value);
        }
        if let Some(refusal) = refusal {
            if let AppError::RateLimited { .. } = refusal {
                telemetry::rate_limit_refused("cost_or_sign_in");
            }
            *http.status_mut() = refusal.status();
            refusal.add_headers(http.headers_mut());
        }
        if self.personal {
            // An answer for one person: no cache on the way may keep it.
            http.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        with_budget(http, &spent)
    }
}

/// Adds the `RateLimit-*` headers of `budget`.
fn with_budget(mut response: Response, budget: &Budget) -> Response {
    let headers = response.headers_mut();
    headers.insert("ratelimit-limit", HeaderValue::from(budget.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(budget.remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(budget.reset_secs()));
    response
}
