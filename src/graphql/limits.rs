//! Query limits and cost, checked before any resolver runs.
//!
//! Before async-graphql reads the document: mutations over GET, the fields
//! and the depth it reaches once fragments are expanded (counted linearly,
//! see `expansion`), and NUL characters. Any depth over `MAX_QUERY_DEPTH` is
//! `QUERY_TOO_COMPLEX`, also past async-graphql's own recursion limit and
//! its parser's. After validation: complexity, and the cost charged to the
//! client.
//!
//! Complexity is one per field; a connection counts its child `first` (or
//! `last`, 20 by default) times, which async-graphql's own complexity does
//! not. An operation costs its complexity in points, a hundred to the point
//! and at least one (GitHub's normalisation), so a plain request costs 1.
//! GraphiQL's introspection query is exempt from the depth limit, up to
//! async-graphql's own 32 levels.

use std::sync::{Arc, Mutex};

use async_graphql::{
    Request, ServerError, ServerResult, ValidationResult,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextValidation,
    },
    parser::types::{
        DocumentOperations, ExecutableDocument, OperationDefinition, OperationType, Selection,
    },
};

use super::expansion::Unexecutable;
use crate::{
    error::AppError,
    protect::{ClientKey, Limits, RequestBudget},
};

/// Complexity per cost point.
pub const COMPLEXITY_PER_POINT: usize = 100;

/// What `availableSlots` weighs beyond its fields: it reads a barber's day
/// (hours, time off, bookings) and walks it slot by slot. In the hardening
/// probe 2,000 aliased copies took 1.35 s of server time (0.7 ms each),
/// against microseconds for a plain field.
pub const AVAILABLE_SLOTS_WEIGHT: usize = 200;

/// What `analytics` weighs beyond its fields: a dashboard reads and folds a
/// shop's bookings over up to a year (15 ms cold on the big seed, by the
/// analytics benchmark; the probe's 300 aliased copies took 0.67 s).
pub const ANALYTICS_WEIGHT: usize = 1_000;

/// The points an operation of `complexity` costs.
pub fn cost_of(complexity: usize) -> u32 {
    u32::try_from(complexity.div_ceil(COMPLEXITY_PER_POINT).max(1)).unwrap_or(u32::MAX)
}

/// Complexity of a connection field: its child, times the page size.
pub fn page_complexity(first: Option<i32>, last: Option<i32>, child: usize) -> usize {
    let size = first.or(last).unwrap_or(20).clamp(0, 100);
    1 + child.saturating_mul(usize::try_from(size).unwrap_or(0))
}

/// Marks a request that came over GET, which must not run a mutation.
#[derive(Clone, Copy, Debug)]
pub struct ViaGet;

/// The operation's name and cost as seen by the limits, for logs, metrics
/// and `extensions.cost`; shared between the handler and the extension.
#[derive(Clone, Debug, Default)]
pub struct OperationInfo(Arc<Mutex<Seen>>);

/// What the limits saw of a request.
#[derive(Debug, Default)]
struct Seen {
    /// The names of the operations the parsed document really has.
    names: Vec<String>,
    /// The points the request was charged.
    cost: u32,
    /// Whether every operation of the document is a query (async-graphql
    /// weighs cache hints over the whole document, not the one that runs).
    only_queries: bool,
    /// Whether the document costs the same whatever its variables.
    fixed_cost: bool,
}

impl OperationInfo {
    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The name of the operation that ran: `requested` when the document has
    /// it, the document's only name otherwise.
    pub fn name(&self, requested: Option<&str>) -> Option<String> {
        let names = &self.seen().names;
        match requested {
            Some(name) if names.iter().any(|n| n == name) => Some(name.to_owned()),
            _ if names.len() == 1 => names.first().cloned(),
            _ => None,
        }
    }

    /// Points this request was charged (1 when it never reached validation).
    pub fn cost(&self) -> u32 {
        self.seen().cost.max(1)
    }

    /// What any request sending the same document costs: this one's, when
    /// it reached validation and its document's cost does not vary.
    pub fn document_cost(&self) -> Option<u32> {
        let seen = self.seen();
        (seen.fixed_cost && seen.cost > 0).then_some(seen.cost)
    }

    /// Whether the document held queries alone: its answer can change
    /// nothing, whichever operation ran.
    pub fn only_queries(&self) -> bool {
        self.seen().only_queries
    }
}

/// What each document costs, by its text, for documents whose cost does
/// not vary with their variables (most: a page size from a variable is
/// what makes it vary). A request that sends one again pays its whole cost
/// on arrival, in the round trip it makes anyway, and its operation owes
/// nothing more: one call to the shared budget, not two.
#[derive(Clone)]
pub struct KnownCosts(moka::sync::Cache<String, u32>);

impl Default for KnownCosts {
    fn default() -> Self {
        Self(
            moka::sync::Cache::builder()
                .max_capacity(CHECKED_BYTES / 4)
                .weigher(|text: &String, _: &u32| u32::try_from(text.len()).unwrap_or(u32::MAX))
                .build(),
        )
    }
}

impl KnownCosts {
    /// What the document `query` costs, if known.
    pub fn of(&self, query: &str) -> Option<u32> {
        self.0.get(query)
    }

    /// Notes what the document `query` costs, as a request that ran it
    /// found ([`OperationInfo::document_cost`]).
    pub fn learn(&self, query: String, info: &OperationInfo) {
        if let Some(cost) = info.document_cost() {
            self.0.insert(query, cost);
        }
    }
}

/// The query limits: the extension's factory, configured once, and what
/// checks a request run without the extension ([`QueryLimits::prepare`]).
/// Clones share the documents checked.
#[derive(Clone)]
pub struct QueryLimits {
    max_depth: usize,
    max_complexity: usize,
    /// Fields an operation may execute after fragment expansion.
    max_fields: usize,
    /// Documents parsed and checked already, by their text: most requests
    /// send one of a few queries, and parsing is a tenth of a small one.
    checked: moka::sync::Cache<String, Arc<Checked>>,
}

/// Bytes of query text and documents kept, about.
const CHECKED_BYTES: u64 = 32 * 1024 * 1024;

impl QueryLimits {
    pub fn new(max_depth: usize, max_complexity: usize, max_fields: usize) -> Self {
        Self {
            max_depth,
            max_complexity,
            max_fields,
            checked: moka::sync::Cache::builder()
                .max_capacity(CHECKED_BYTES)
                // The text, and its document about four times over.
                .weigher(|text: &String, _: &Arc<Checked>| {
                    u32::try_from(text.len().saturating_mul(5)).unwrap_or(u32::MAX)
                })
                .build(),
        }
    }

    /// Whether the document `query` may have an answer kept: not when it
    /// was seen before and holds a mutation or a subscription (whose
    /// answers are never kept, so no cache need be asked for one).
    pub fn may_be_kept(&self, query: &str) -> bool {
        self.checked.get(query).is_none_or(|checked| checked.only_queries)
    }

    /// Checks `request` as the extension does before async-graphql reads
    /// it, for a request that runs on a schema without the extension: its
    /// document's cost is known (a request with the same text passed
    /// validation and every limit, and its cost cannot vary with the
    /// variables) and was paid in full on arrival, so validation has
    /// nothing left to check or charge. `paid` is recorded as its cost.
    /// What may differ from the request that taught the cost (a NUL in a
    /// variable, a mutation over GET) is refused here as there.
    pub fn prepare(&self, request: Request, paid: u32) -> ServerResult<Request> {
        let info = request_data::<OperationInfo>(&request).cloned();
        let request = self.admit(request, false)?;
        if let Some(info) = info {
            info.seen().cost = paid;
        }
        Ok(request)
    }

    /// What the extension checks before async-graphql reads a request (see
    /// [`Check::prepare_request`]); `over_ws`: it came over a subscription
    /// connection. Returns it with its document parsed.
    fn admit(&self, mut request: Request, over_ws: bool) -> ServerResult<Request> {
        let via_get = request_data::<ViaGet>(&request).is_some();
        let info = request_data::<OperationInfo>(&request);
        let checked = self.checked(&request)?;
        checked.admit(via_get, info)?;
        // A subscription connection signed in once; everything else runs
        // over HTTP, where each request is admitted, checked and charged.
        if over_ws && !checked.only_subscriptions {
            return Err(AppError::bad_input(
                "only subscriptions run over `/graphql/ws`; send queries and mutations to `POST /graphql`",
            )
            .into_server_error());
        }
        // One rule for every text argument, before any resolver sees it.
        if holds_nul(&checked.document, &request.variables) {
            return Err(AppError::bad_input(
                "the request holds a NUL character (U+0000), which no text may contain; remove it",
            )
            .into_server_error());
        }
        // async-graphql takes the document as it is: no second parse.
        request.set_parsed_query(checked.document.clone());
        Ok(request)
    }
}

impl ExtensionFactory for QueryLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Check(self.clone()))
    }
}

/// The extension: checks a document before async-graphql reads it, and
/// its complexity and cost after validation.
struct Check(QueryLimits);

/// A document that passed the checks, with what they learnt of it.
struct Checked {
    document: ExecutableDocument,
    /// The names of its operations.
    names: Vec<String>,
    only_queries: bool,
    has_mutation: bool,
    only_subscriptions: bool,
    /// Whether its cost may differ with its variables (see
    /// [`super::expansion::cost_varies`]).
    cost_varies: bool,
}

impl Checked {
    /// Refuses a mutation over GET, and tells `info` what the document is.
    fn admit(&self, via_get: bool, info: Option<&OperationInfo>) -> ServerResult<()> {
        if via_get && self.has_mutation {
            // Caches, logs and prefetchers replay GETs: nothing may change.
            return Err(AppError::MethodNotAllowed(
                "mutations are not allowed over GET; send them with POST".to_owned(),
            )
            .into_server_error());
        }
        if let Some(info) = info {
            let mut seen = info.seen();
            seen.only_queries = self.only_queries;
            seen.fixed_cost = !self.cost_varies;
            seen.names.clone_from(&self.names);
        }
        Ok(())
    }
}

/// How deep async-graphql itself lets a document nest (its default,
/// kept); deeper ones are refused here first, as too complex.
pub const RECURSION_LIMIT: usize = 32;

/// Selection sets async-graphql's parser reads nested before it gives up.
const PARSER_NESTING: usize = 64;

fn too_deep(depth: impl std::fmt::Display, max: usize) -> ServerError {
    AppError::QueryTooComplex(format!(
        "the operation is nested {depth} levels deep; at most {max} are allowed: ask for less in one request"
    ))
    .into_server_error()
}

fn only_introspection(operation: &OperationDefinition) -> bool {
    operation.selection_set.node.items.iter().all(|item| match &item.node {
        Selection::Field(field) => field.node.name.node.starts_with("__"),
        _ => false,
    })
}

/// Whether a value holds a NUL character anywhere (PostgreSQL cannot store
/// one in text, and no field of ours means it).
fn const_has_nul(value: &async_graphql::Value) -> bool {
    use async_graphql::Value;
    match value {
        Value::String(text) => text.contains('\0'),
        Value::List(items) => items.iter().any(const_has_nul),
        Value::Object(fields) => {
            fields.iter().any(|(name, value)| name.contains('\0') || const_has_nul(value))
        }
        _ => false,
    }
}

fn literal_has_nul(value: &async_graphql_value::Value) -> bool {
    use async_graphql_value::Value;
    match value {
        Value::String(text) => text.contains('\0'),
        Value::List(items) => items.iter().any(literal_has_nul),
        Value::Object(fields) => {
            fields.iter().any(|(name, value)| name.contains('\0') || literal_has_nul(value))
        }
        _ => false,
    }
}

fn arguments_have_nul(
    arguments: &[(
        async_graphql::Positioned<async_graphql::Name>,
        async_graphql::Positioned<async_graphql_value::Value>,
    )],
) -> bool {
    arguments.iter().any(|(_, value)| literal_has_nul(&value.node))
}

fn selection_has_nul(set: &async_graphql::parser::types::SelectionSet) -> bool {
    set.items.iter().any(|item| match &item.node {
        Selection::Field(field) => {
            arguments_have_nul(&field.node.arguments)
                || field.node.directives.iter().any(|d| arguments_have_nul(&d.node.arguments))
                || selection_has_nul(&field.node.selection_set.node)
        }
        Selection::InlineFragment(inline) => {
            inline.node.directives.iter().any(|d| arguments_have_nul(&d.node.arguments))
                || selection_has_nul(&inline.node.selection_set.node)
        }
        Selection::FragmentSpread(spread) => {
            spread.node.directives.iter().any(|d| arguments_have_nul(&d.node.arguments))
        }
    })
}

/// Whether any text the request carries, in its variables or in the
/// document's literals, holds a NUL character.
fn holds_nul(document: &ExecutableDocument, variables: &async_graphql::Variables) -> bool {
    variables.iter().any(|(_, value)| const_has_nul(value))
        || super::expansion::operations(document).iter().any(|op| {
            selection_has_nul(&op.selection_set.node)
                || op.variable_definitions.iter().any(|definition| {
                    definition
                        .node
                        .default_value
                        .as_ref()
                        .is_some_and(|value| const_has_nul(&value.node))
                })
        })
        || document.fragments.values().any(|f| selection_has_nul(&f.node.selection_set.node))
}

/// Request data of type `T`, before async-graphql has attached it to the
/// extension context.
fn request_data<T: std::any::Any>(request: &Request) -> Option<&T> {
    request.data.get(&std::any::TypeId::of::<T>()).and_then(|data| data.downcast_ref::<T>())
}

impl QueryLimits {
    /// Refuses a document that must not run, before async-graphql looks at
    /// it: its own recursion-depth check, complexity and depth all expand
    /// every fragment spread, and a kilobyte can spread 2^28 fields.
    fn check_document(&self, document: ExecutableDocument) -> ServerResult<Checked> {
        let operations = super::expansion::operations(&document);
        let has_mutation = operations.iter().any(|op| op.ty == OperationType::Mutation);
        let expanded = super::expansion::check(&document, self.max_fields).map_err(|refusal| {
            match refusal {
                Unexecutable::Cycle { .. } => AppError::bad_input(refusal),
                _ => AppError::QueryTooComplex(refusal.to_string()),
            }
            .into_server_error()
        })?;
        let introspection = operations.iter().all(|op| only_introspection(op));
        // GraphiQL's introspection query is deeper than an API client needs
        // to go; it is exempt up to async-graphql's own limit.
        let max_depth = if introspection { RECURSION_LIMIT } else { self.max_depth };
        if expanded.depth > max_depth {
            return Err(too_deep(expanded.depth, max_depth));
        }
        // Fragments nest too, and async-graphql refuses past its limit
        // whatever nests: that is too deep as well.
        if expanded.nesting > RECURSION_LIMIT {
            return Err(too_deep(expanded.nesting, RECURSION_LIMIT));
        }
        let only_queries = operations.iter().all(|op| op.ty == OperationType::Query);
        let only_subscriptions = operations.iter().all(|op| op.ty == OperationType::Subscription);
        let names = match &document.operations {
            DocumentOperations::Multiple(ops) => ops.keys().map(|name| name.to_string()).collect(),
            DocumentOperations::Single(_) => Vec::new(),
        };
        let cost_varies = super::expansion::cost_varies(&document);
        Ok(Checked { document, names, only_queries, has_mutation, only_subscriptions, cost_varies })
    }

    /// The request's document, parsed and checked now or found so before.
    fn checked(&self, request: &Request) -> ServerResult<Arc<Checked>> {
        if let Some(checked) = self.checked.get(&request.query) {
            return Ok(checked);
        }
        let checked = Arc::new(self.check_document(parse(&request.query, self.max_depth)?)?);
        self.checked.insert(request.query.clone(), checked.clone());
        Ok(checked)
    }
}

/// Parses the request's query (a persisted query's text was filled in by
/// then). The parser gives up past 64 nested selections, before
/// anything can count them: that is refused as too deep, like any depth
/// over the limit.
fn parse(query: &str, max_depth: usize) -> ServerResult<ExecutableDocument> {
    match async_graphql::parser::parse_query(query) {
        Ok(document) => Ok(document),
        Err(async_graphql::parser::Error::RecursionLimitExceeded) => {
            Err(too_deep(format!("more than {PARSER_NESTING}"), max_depth))
        }
        // Past a few hundred levels the parser fails on its own grammar
        // before it counts them; the text's braces tell why.
        Err(_) if super::expansion::brace_depth(query) > PARSER_NESTING => {
            Err(too_deep(format!("more than {PARSER_NESTING}"), max_depth))
        }
        Err(error) => Err(error.into()),
    }
}

#[async_trait::async_trait]
impl Extension for Check {
    /// Parses the query once, here, and checks it before anything else
    /// reads it; async-graphql then uses the parsed document as it is (a
    /// persisted query arrives parsed already).
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let over_ws = ctx.data_opt::<Arc<super::ws::Session>>().is_some();
        let request = self.0.admit(request, over_ws)?;
        next.run(ctx, request).await
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        // Depth was checked before validation, through fragments, as
        // async-graphql counts it here.
        if result.complexity > self.0.max_complexity {
            return Err(vec![
                AppError::QueryTooComplex(format!(
                    "the operation's complexity is {}; at most {} is allowed (a connection counts its nodes `first` times): ask for smaller pages",
                    result.complexity, self.0.max_complexity
                ))
                .into_server_error(),
            ]);
        }
        let mut cost = cost_of(result.complexity);
        if let Some(info) = ctx.data_opt::<OperationInfo>() {
            info.seen().cost = cost;
        }
        // Over HTTP a request paid its first point on arrival (or, found
        // kept then, what its answer cost: this operation owes the rest);
        // a subscription pays all of it here.
        if ctx.data_opt::<Arc<super::ws::Session>>().is_some() {
            cost = cost.saturating_add(1);
        } else if let Some(super::http::Prepaid(paid)) = ctx.data_opt::<super::http::Prepaid>() {
            cost = cost.saturating_sub(paid.saturating_sub(1));
        }
        if let (Some(limits), Some(key), Some(budget)) = (
            ctx.data_opt::<Arc<Limits>>(),
            ctx.data_opt::<ClientKey>(),
            ctx.data_opt::<RequestBudget>(),
        ) {
            charge_operation(limits, key, budget, cost)
                .await
                .map_err(|error| vec![error.into_server_error()])?;
        }
        Ok(result)
    }
}

/// Charges an operation of `cost` points to `key`, beyond the point its
/// request paid on arrival, and keeps the budget left in `budget`.
pub async fn charge_operation(
    limits: &Limits,
    key: &ClientKey,
    budget: &RequestBudget,
    cost: u32,
) -> Result<(), AppError> {
    if cost <= 1 {
        return Ok(());
    }
    match limits.charge(key, cost - 1).await {
        Ok(after) => {
            budget.set(after);
            Ok(())
        }
        Err(overdrawn) if overdrawn.impossible => Err(AppError::QueryTooComplex(format!(
            "this operation costs {cost} points, more than the {} a client may spend at once: ask for smaller pages",
            limits.burst()
        ))),
        Err(overdrawn) => {
            budget.set(overdrawn.budget);
            let what =
                format!("this operation costs {cost} points, more than your budget holds now");
            Err(overdrawn.error(&what))
        }
    }
}
