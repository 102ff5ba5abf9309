//! Query limits and cost: depth and complexity are checked, and the cost
//! charged to the client, after validation and before any resolver runs.
//!
//! Complexity is one per field; a connection counts its child `first` (or
//! `last`, 20 by default) times, which async-graphql's own complexity does
//! not. An operation costs its complexity in points, a hundred to the point
//! and at least one (GitHub's normalisation), so a plain request costs 1.
//! GraphiQL's introspection query is exempt from the depth limit.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, Ordering},
};

use async_graphql::{
    ErrorExtensionValues, Request, ServerError, ServerResult, ValidationResult,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextValidation,
    },
    parser::types::{
        DocumentOperations, ExecutableDocument, OperationDefinition, OperationType, Selection,
    },
};

use crate::protect::{ClientKey, Limits, RequestBudget};

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
/// and `extensions.cost`: the names the parsed document really has, and the
/// points charged.
#[derive(Clone, Debug, Default)]
pub struct OperationInfo(pub Arc<Mutex<(Vec<String>, u32)>>);

impl OperationInfo {
    /// The name of the operation that ran: `requested` when the document has
    /// it, the document's only name otherwise.
    pub fn name(&self, requested: Option<&str>) -> Option<String> {
        let names = &self.0.lock().unwrap_or_else(|e| e.into_inner()).0;
        match requested {
            Some(name) if names.iter().any(|n| n == name) => Some(name.to_owned()),
            _ if names.len() == 1 => names.first().cloned(),
            _ => None,
        }
    }

    /// Points this request was charged (1 when it never reached validation).
    pub fn cost(&self) -> u32 {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).1.max(1)
    }
}

/// The extension's factory; configured once.
pub struct QueryLimits {
    pub max_depth: usize,
    pub max_complexity: usize,
    /// Fields an operation may execute after fragment expansion.
    pub max_fields: usize,
}

impl ExtensionFactory for QueryLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Check {
            max_depth: self.max_depth,
            max_complexity: self.max_complexity,
            max_fields: self.max_fields,
            introspection: AtomicBool::new(false),
        })
    }
}

struct Check {
    max_depth: usize,
    max_complexity: usize,
    max_fields: usize,
    introspection: AtomicBool,
}

fn error(code: &str, message: String) -> ServerError {
    let mut error = ServerError::new(message, None);
    let mut extensions = ErrorExtensionValues::default();
    extensions.set("code", code);
    error.extensions = Some(extensions);
    error
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

impl Check {
    /// Refuses a document that must not run, before async-graphql looks at
    /// it: its own recursion-depth check, complexity and depth all expand
    /// every fragment spread, and a kilobyte can spread 2^28 fields.
    fn check_document(
        &self,
        via_get: bool,
        info: Option<&OperationInfo>,
        document: &ExecutableDocument,
    ) -> ServerResult<()> {
        let operations = super::expansion::operations(document);
        if via_get && operations.iter().any(|op| op.ty == OperationType::Mutation) {
            // Caches, logs and prefetchers replay GETs: nothing may change.
            let mut refused = error(
                "BAD_USER_INPUT",
                "mutations are not allowed over GET; send them with POST".to_owned(),
            );
            if let Some(extensions) = refused.extensions.as_mut() {
                extensions.set("allowedMethods", "POST");
            }
            return Err(refused);
        }
        if let Err(refusal) = super::expansion::check(document, self.max_fields) {
            let code = match refusal {
                super::expansion::Refusal::Cycle { .. } => "BAD_USER_INPUT",
                _ => "QUERY_TOO_COMPLEX",
            };
            return Err(error(code, refusal.to_string()));
        }
        self.introspection
            .store(operations.iter().all(|op| only_introspection(op)), Ordering::Relaxed);
        if let (Some(info), DocumentOperations::Multiple(ops)) = (info, &document.operations) {
            info.0.lock().unwrap_or_else(|e| e.into_inner()).0 =
                ops.keys().map(|name| name.to_string()).collect();
        }
        Ok(())
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
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        // Parses the text unless a persisted query's document is there.
        let via_get = request_data::<ViaGet>(&request).is_some();
        let info = request_data::<OperationInfo>(&request).cloned();
        let variables = std::mem::take(&mut request.variables);
        let document = request.parsed_query()?;
        self.check_document(via_get, info.as_ref(), document)?;
        // One rule for every text argument, before any resolver sees it.
        if holds_nul(document, &variables) {
            return Err(error(
                "BAD_USER_INPUT",
                "the request holds a NUL character (U+0000), which no text may contain; remove it"
                    .to_owned(),
            ));
        }
        request.variables = variables;
        next.run(ctx, request).await
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        if !self.introspection.load(Ordering::Relaxed) && result.depth > self.max_depth {
            return Err(vec![error(
                "QUERY_TOO_COMPLEX",
                format!(
                    "the operation is nested {} levels deep; at most {} are allowed: ask for less in one request",
                    result.depth, self.max_depth
                ),
            )]);
        }
        if result.complexity > self.max_complexity {
            return Err(vec![error(
                "QUERY_TOO_COMPLEX",
                format!(
                    "the operation's complexity is {}; at most {} is allowed (a connection counts its nodes `first` times): ask for smaller pages",
                    result.complexity, self.max_complexity
                ),
            )]);
        }
        let cost = cost_of(result.complexity);
        if let Some(info) = ctx.data_opt::<OperationInfo>() {
            info.0.lock().unwrap_or_else(|e| e.into_inner()).1 = cost;
        }
        // The request itself was charged one point on arrival.
        if let (Some(limits), Some(key), Some(budget), true) = (
            ctx.data_opt::<Arc<Limits>>(),
            ctx.data_opt::<ClientKey>(),
            ctx.data_opt::<RequestBudget>(),
            cost > 1,
        ) {
            match limits.charge(key, cost - 1) {
                Ok(after) => budget.set(after),
                Err(refusal) if refusal.impossible => {
                    return Err(vec![error(
                        "QUERY_TOO_COMPLEX",
                        format!(
                            "this operation costs {cost} points, more than the {} a client may spend at once: ask for smaller pages",
                            limits.burst()
                        ),
                    )]);
                }
                Err(refusal) => {
                    budget.set(refusal.budget);
                    let mut refused = error(
                        "RATE_LIMITED",
                        format!(
                            "this operation costs {cost} points, more than your budget holds now; try again in {} s",
                            refusal.retry_after.as_secs() + 1
                        ),
                    );
                    if let Some(extensions) = refused.extensions.as_mut() {
                        extensions.set("retryAfter", refusal.retry_after.as_secs() + 1);
                    }
                    return Err(vec![refused]);
                }
            }
        }
        Ok(result)
    }
}
