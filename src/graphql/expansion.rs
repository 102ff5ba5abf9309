//! How many fields an operation executes once every fragment spread is
//! expanded, counted without expanding anything.
//!
//! A document of a kilobyte can spread a fragment that spreads another twice,
//! and so on: `fragment F1 on Query { ...F0 ...F0 }` … `F28 { ...F27 ...F27 }`
//! executes 2^28 fields. async-graphql's own complexity and depth visitors
//! expand fragments inline (so they would take as long as the bomb itself),
//! and its complexity counts `__typename` as nothing. This count is linear
//! in the document's size: each fragment's total is computed once, from its
//! own fields and the totals of the fragments it spreads, with saturating
//! arithmetic. It runs right after parsing, before validation.

use std::collections::HashMap;

use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, Selection, SelectionSet,
};

/// How often one fragment may be spread in one selection set. Spreading it
/// again adds nothing (the fields merge), so more is a sign of abuse.
pub const MAX_SPREADS_OF_ONE_FRAGMENT: usize = 3;

/// Why a document is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Unexecutable {
    /// The fields it would execute, or `usize::MAX` when that overflows.
    TooManyFields { fields: usize, max: usize },
    /// One fragment spread more than [`MAX_SPREADS_OF_ONE_FRAGMENT`] times
    /// in one selection set.
    RepeatedSpread { fragment: String, times: usize },
    /// A fragment that spreads itself, directly or through others.
    Cycle { fragment: String },
}

impl std::fmt::Display for Unexecutable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unexecutable::TooManyFields { fields, max } => {
                let fields = if *fields == usize::MAX {
                    "more fields than can be counted".to_owned()
                } else {
                    format!("{fields} fields")
                };
                write!(
                    f,
                    "the operation executes {fields} once its fragments are expanded; at most {max} are allowed: ask for less in one request"
                )
            }
            Unexecutable::RepeatedSpread { fragment, times } => write!(
                f,
                "fragment `{fragment}` is spread {times} times in one selection; at most {MAX_SPREADS_OF_ONE_FRAGMENT} are allowed, and once is enough"
            ),
            Unexecutable::Cycle { fragment } => {
                write!(f, "fragment `{fragment}` spreads itself; fragments must not form a cycle")
            }
        }
    }
}

/// What one selection set holds: fields counted with everything nested
/// under them, and the fragments it spreads (at any depth).
/// Fields nest `depth` levels deep in it and selection sets `nesting`
/// levels, not counting its spreads; each spread is a [`Spread`].
#[derive(Default)]
struct Shape<'a> {
    fields: usize,
    depth: usize,
    nesting: usize,
    spreads: Vec<Spread<'a>>,
}

/// A fragment spread: its name, the fields above it and the selection sets
/// its fragment's own set sits in.
#[derive(Clone, Copy)]
struct Spread<'a> {
    name: &'a str,
    level: usize,
    nesting: usize,
}

/// Reads `set`, which sits under `level` fields and `nesting` selection
/// sets (fields with a selection, inline fragments and spreads each add a
/// set, as async-graphql's recursion check counts them).
fn shape_of<'a>(
    set: &'a SelectionSet,
    level: usize,
    nesting: usize,
    shape: &mut Shape<'a>,
) -> Result<(), Unexecutable> {
    shape.nesting = shape.nesting.max(nesting);
    let mut spread_here: HashMap<&str, usize> = HashMap::new();
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => {
                shape.fields = shape.fields.saturating_add(1);
                shape.depth = shape.depth.max(level + 1);
                let inner = &field.node.selection_set.node;
                if !inner.items.is_empty() {
                    shape_of(inner, level + 1, nesting + 1, shape)?;
                }
            }
            Selection::InlineFragment(inline) => {
                shape_of(&inline.node.selection_set.node, level, nesting + 1, shape)?;
            }
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                // Counted as its fragment's fields (see `check`).
                let times = spread_here.entry(name).or_default();
                *times += 1;
                if *times > MAX_SPREADS_OF_ONE_FRAGMENT {
                    return Err(Unexecutable::RepeatedSpread {
                        fragment: name.to_owned(),
                        times: *times,
                    });
                }
                shape.spreads.push(Spread { name, level, nesting: nesting + 1 });
            }
        }
    }
    Ok(())
}

/// What the largest operation of a document executes once its fragments
/// are expanded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expanded {
    /// Fields, saturating at `usize::MAX`.
    pub fields: usize,
    /// Levels of nested fields, counted as async-graphql's validation does.
    pub depth: usize,
    /// Levels of nested selection sets, counted as async-graphql's
    /// recursion check does (fragments add one too).
    pub nesting: usize,
}

/// The fields and depth the operations of `document` reach after fragment
/// expansion; refused past `max` fields, on a spread repeated too often or
/// on a fragment cycle. A spread of an unknown fragment counts as one field
/// (validation reports it), so that spreads alone cannot expand without
/// bound either.
pub fn check(document: &ExecutableDocument, max: usize) -> Result<Expanded, Unexecutable> {
    let mut fragments: HashMap<&str, Shape<'_>> = HashMap::with_capacity(document.fragments.len());
    for (name, fragment) in &document.fragments {
        let mut shape = Shape::default();
        shape_of(&fragment.node.selection_set.node, 0, 0, &mut shape)?;
        fragments.insert(name.as_str(), shape);
    }
    let totals = fragment_totals(&fragments)?;
    let mut largest = Expanded { fields: 0, depth: 0, nesting: 0 };
    for operation in operations(document) {
        let mut shape = Shape::default();
        shape_of(&operation.selection_set.node, 0, 0, &mut shape)?;
        let expanded = expand(&shape, &totals);
        largest.fields = largest.fields.max(expanded.fields);
        largest.depth = largest.depth.max(expanded.depth);
        largest.nesting = largest.nesting.max(expanded.nesting);
    }
    if largest.fields > max {
        return Err(Unexecutable::TooManyFields { fields: largest.fields, max });
    }
    Ok(largest)
}

/// `shape` with its spreads replaced by their fragments' totals.
fn expand(shape: &Shape<'_>, totals: &HashMap<&str, Expanded>) -> Expanded {
    // An unknown fragment (validation reports it) counts as one field.
    let unknown = Expanded { fields: 1, depth: 1, nesting: 0 };
    shape.spreads.iter().fold(
        Expanded { fields: shape.fields, depth: shape.depth, nesting: shape.nesting },
        |sum, spread| {
            let inner = totals.get(spread.name).copied().unwrap_or(unknown);
            Expanded {
                fields: sum.fields.saturating_add(inner.fields),
                depth: sum.depth.max(spread.level.saturating_add(inner.depth)),
                nesting: sum.nesting.max(spread.nesting.saturating_add(inner.nesting)),
            }
        },
    )
}

/// How deeply braces nest in a document's text, outside strings and
/// comments: for a text too deep for the parser to read, it tells "too
/// deep" from "malformed".
pub fn brace_depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            '}' => depth = depth.saturating_sub(1),
            '#' => {
                // A comment runs to the end of the line.
                for c in chars.by_ref() {
                    if c == '\n' || c == '\r' {
                        break;
                    }
                }
            }
            '"' => {
                // A string (a block string's quotes pair up as empty
                // strings around it, which is as good here).
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    deepest
}

/// The operations of `document`, whether it has one anonymous or several
/// named ones.
pub fn operations(document: &ExecutableDocument) -> Vec<&OperationDefinition> {
    match &document.operations {
        DocumentOperations::Single(operation) => vec![&operation.node],
        DocumentOperations::Multiple(operations) => {
            operations.values().map(|operation| &operation.node).collect()
        }
    }
}

/// Every fragment's expanded fields and depth, each computed once, in an order
/// where a fragment comes after those it spreads. Iterative, so a long
/// chain of fragments cannot exhaust the stack.
fn fragment_totals<'a>(
    fragments: &HashMap<&'a str, Shape<'a>>,
) -> Result<HashMap<&'a str, Expanded>, Unexecutable> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    let mut totals: HashMap<&str, Expanded> = HashMap::with_capacity(fragments.len());
    let mut marks: HashMap<&str, Mark> = HashMap::with_capacity(fragments.len());
    for &root in fragments.keys() {
        if marks.contains_key(root) {
            continue;
        }
        // (fragment, index of the next spread to look at)
        let mut stack: Vec<(&str, usize)> = vec![(root, 0)];
        marks.insert(root, Mark::Open);
        while let Some((name, next)) = stack.last_mut() {
            let shape = &fragments[name];
            if let Some(&Spread { name: child, .. }) = shape.spreads.get(*next) {
                *next += 1;
                if !fragments.contains_key(child) {
                    continue;
                }
                match marks.get(child) {
                    Some(Mark::Done) => {}
                    Some(Mark::Open) => {
                        return Err(Unexecutable::Cycle { fragment: child.to_owned() });
                    }
                    None => {
                        marks.insert(child, Mark::Open);
                        stack.push((child, 0));
                    }
                }
            } else {
                let total = expand(shape, &totals);
                let name = *name;
                totals.insert(name, total);
                marks.insert(name, Mark::Done);
                stack.pop();
            }
        }
    }
    Ok(totals)
}

/// Whether what the document costs may differ from one request to the
/// next: it has several operations, a page size (`first`, `last`) comes
/// from a variable, or a directive's argument does (`@skip(if: $x)`).
/// Otherwise its cost is the document's own, whatever the variables.
pub fn cost_varies(document: &ExecutableDocument) -> bool {
    let operations = match &document.operations {
        DocumentOperations::Single(operation) => vec![&operation.node],
        DocumentOperations::Multiple(operations) => {
            operations.values().map(|operation| &operation.node).collect()
        }
    };
    operations.len() > 1
        || operations.iter().any(|operation| set_varies(&operation.selection_set.node))
        || document.fragments.values().any(|fragment| set_varies(&fragment.node.selection_set.node))
}

fn set_varies(set: &SelectionSet) -> bool {
    set.items.iter().any(|item| match &item.node {
        Selection::Field(field) => {
            let field = &field.node;
            field.arguments.iter().any(|(name, value)| {
                matches!(name.node.as_str(), "first" | "last")
                    && matches!(value.node, async_graphql_value::Value::Variable(_))
            }) || directives_vary(&field.directives)
                || set_varies(&field.selection_set.node)
        }
        Selection::FragmentSpread(spread) => directives_vary(&spread.node.directives),
        Selection::InlineFragment(inline) => {
            directives_vary(&inline.node.directives) || set_varies(&inline.node.selection_set.node)
        }
    })
}

fn directives_vary(
    directives: &[async_graphql::Positioned<async_graphql::parser::types::Directive>],
) -> bool {
    directives.iter().any(|directive| {
        directive
            .node
            .arguments
            .iter()
            .any(|(_, value)| matches!(value.node, async_graphql_value::Value::Variable(_)))
    })
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;

    use super::*;

    /// `{...F<n>}` where each fragment spreads the one below it `width`
    /// times: `width^n` fields of `__typename`.
    fn bomb(levels: usize, width: usize) -> String {
        let mut query = format!("{{...F{levels}}} fragment F0 on Query{{__typename}}");
        for level in 1..=levels {
            let spreads = format!("...F{} ", level - 1).repeat(width);
            query.push_str(&format!(" fragment F{level} on Query{{{spreads}}}"));
        }
        query
    }

    fn count(query: &str, max: usize) -> Result<usize, Unexecutable> {
        check(&parse_query(query).unwrap(), max).map(|expanded| expanded.fields)
    }

    fn depth(query: &str) -> usize {
        check(&parse_query(query).unwrap(), usize::MAX).unwrap().depth
    }

    fn nesting(query: &str) -> usize {
        check(&parse_query(query).unwrap(), usize::MAX).unwrap().nesting
    }

    #[test]
    fn nesting_counts_selection_sets_as_async_graphql_does() {
        assert_eq!(nesting("{ __typename }"), 0);
        assert_eq!(nesting("{ shops { nodes { id } } }"), 2);
        assert_eq!(nesting("{ ... on Query { ... on Query { __typename } } }"), 2);
        assert_eq!(nesting("{ ...A } fragment A on Query { shops { totalCount } }"), 2);
        let mut chain = String::from("{ ...F0 }");
        for level in 0..40 {
            chain.push_str(&format!(" fragment F{level} on Query {{ ...F{} }}", level + 1));
        }
        chain.push_str(" fragment F40 on Query { __typename }");
        assert_eq!(nesting(&chain), 41);
        assert_eq!(depth(&chain), 1);
    }

    #[test]
    fn brace_depth_skips_strings_and_comments() {
        assert_eq!(brace_depth("{ a { b } }"), 2);
        assert_eq!(brace_depth("{ a(x: \"{{{\\\"{{\") # {{{{\n { b } }"), 2);
        assert_eq!(brace_depth(&"{".repeat(500)), 500);
    }

    #[test]
    fn depth_counts_nested_fields_through_fragments() {
        assert_eq!(depth("{ __typename }"), 1);
        assert_eq!(depth("{ shops { nodes { id } } }"), 3);
        let with_fragments = "{ shops { ...S ... on ShopConnection { totalCount } } }
            fragment S on ShopConnection { nodes { ...N } } fragment N on Shop { id owner { id } }";
        assert_eq!(depth(with_fragments), 4);
        assert_eq!(depth("query A { a { b } } query B { a }"), 2);
        // A chain of fragments, each one level deeper than the last.
        let mut chain = String::from("{ ...F0 }");
        for level in 0..100 {
            chain.push_str(&format!(" fragment F{level} on Query {{ a {{ ...F{} }} }}", level + 1));
        }
        chain.push_str(" fragment F100 on Query { a }");
        assert_eq!(depth(&chain), 101);
    }

    #[test]
    fn counts_fields_after_expansion_including_typename() {
        assert_eq!(count("{ __typename }", 10), Ok(1));
        assert_eq!(count("{ a: __typename b: __typename shops { nodes { id } } }", 10), Ok(5));
        let with_fragments = "{ shops { ...S ... on ShopConnection { totalCount } } }
            fragment S on ShopConnection { nodes { ...N } } fragment N on Shop { id name }";
        assert_eq!(count(with_fragments, 10), Ok(5));
        assert_eq!(count(&bomb(3, 2), 10), Ok(8));
        // The largest of several operations.
        assert_eq!(count("query A { a } query B { a b c }", 10), Ok(3));
    }

    #[test]
    fn the_fragment_bomb_is_refused_without_expanding_it() {
        let query = bomb(28, 2);
        assert!(query.len() < 1_200, "{} bytes", query.len());
        let started = std::time::Instant::now();
        assert_eq!(
            count(&query, 5_000),
            Err(Unexecutable::TooManyFields { fields: 1 << 28, max: 5_000 })
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // Far past what a usize holds: saturates, never overflows.
        let huge = count(&bomb(200, 3), 5_000);
        assert_eq!(huge, Err(Unexecutable::TooManyFields { fields: usize::MAX, max: 5_000 }));
    }

    #[test]
    fn a_fragment_spread_over_and_over_at_one_level_is_refused() {
        let refused = count(&bomb(2, 4), 1_000_000);
        assert!(
            matches!(refused, Err(Unexecutable::RepeatedSpread { times: 4, .. })),
            "{refused:?}"
        );
        // Spreads of a fragment that does not exist cannot bomb either.
        let phantom = bomb(28, 2).replace("{__typename}", "{...Missing}");
        assert!(matches!(count(&phantom, 5_000), Err(Unexecutable::TooManyFields { .. })));
    }

    #[test]
    fn cycles_are_refused_and_long_chains_do_not_overflow_the_stack() {
        let cycle = "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }";
        assert!(matches!(count(cycle, 10), Err(Unexecutable::Cycle { .. })));
        let chain = bomb(20_000, 1);
        assert_eq!(count(&chain, 10), Ok(1));
    }

    #[test]
    fn a_page_size_or_a_directive_from_a_variable_makes_the_cost_vary() {
        let varies = |query: &str| cost_varies(&parse_query(query).unwrap());
        assert!(!varies("{ __typename }"));
        assert!(!varies("query($s: String) { shops(first: 5, search: $s) { nodes { id } } }"));
        assert!(varies("query($n: Int) { shops(first: $n) { nodes { id } } }"));
        assert!(varies(
            "query($n: Int) { ...F } fragment F on Query { shops(last: $n) { nodes { id } } }"
        ));
        assert!(varies("query($x: Boolean!) { shops { nodes { id @skip(if: $x) } } }"));
        assert!(varies("query($x: Boolean!) { ... @include(if: $x) { __typename } }"));
        assert!(varies("query A { a: __typename } query B { b: __typename }"));
    }
}
