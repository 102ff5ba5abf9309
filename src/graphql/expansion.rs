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
pub enum Refusal {
    /// The fields it would execute, or `usize::MAX` when that overflows.
    TooManyFields { fields: usize, max: usize },
    /// One fragment spread more than [`MAX_SPREADS_OF_ONE_FRAGMENT`] times
    /// in one selection set.
    RepeatedSpread { fragment: String, times: usize },
    /// A fragment that spreads itself, directly or through others.
    Cycle { fragment: String },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::TooManyFields { fields, max } => {
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
            Refusal::RepeatedSpread { fragment, times } => write!(
                f,
                "fragment `{fragment}` is spread {times} times in one selection; at most {MAX_SPREADS_OF_ONE_FRAGMENT} are allowed, and once is enough"
            ),
            Refusal::Cycle { fragment } => {
                write!(f, "fragment `{fragment}` spreads itself; fragments must not form a cycle")
            }
        }
    }
}

/// What one selection set holds: fields counted with everything nested
/// under them, and the fragments it spreads (at any depth).
#[derive(Default)]
struct Shape<'a> {
    fields: usize,
    spreads: Vec<&'a str>,
}

fn shape_of<'a>(set: &'a SelectionSet, shape: &mut Shape<'a>) -> Result<(), Refusal> {
    let mut spread_here: HashMap<&str, usize> = HashMap::new();
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => {
                shape.fields = shape.fields.saturating_add(1);
                shape_of(&field.node.selection_set.node, shape)?;
            }
            Selection::InlineFragment(inline) => {
                shape_of(&inline.node.selection_set.node, shape)?;
            }
            Selection::FragmentSpread(spread) => {
                let name = spread.node.fragment_name.node.as_str();
                // Counted as its fragment's fields (see `check`).
                let times = spread_here.entry(name).or_default();
                *times += 1;
                if *times > MAX_SPREADS_OF_ONE_FRAGMENT {
                    return Err(Refusal::RepeatedSpread {
                        fragment: name.to_owned(),
                        times: *times,
                    });
                }
                shape.spreads.push(name);
            }
        }
    }
    Ok(())
}

/// The fields the largest operation of `document` executes after fragment
/// expansion; refused past `max`, on a spread repeated too often or on a
/// fragment cycle. A spread of an unknown fragment counts as one field
/// (validation reports it), so that spreads alone cannot expand without
/// bound either.
pub fn check(document: &ExecutableDocument, max: usize) -> Result<usize, Refusal> {
    let mut fragments: HashMap<&str, Shape<'_>> = HashMap::with_capacity(document.fragments.len());
    for (name, fragment) in &document.fragments {
        let mut shape = Shape::default();
        shape_of(&fragment.node.selection_set.node, &mut shape)?;
        fragments.insert(name.as_str(), shape);
    }
    let totals = fragment_totals(&fragments)?;
    let total_of = |shape: &Shape<'_>| {
        shape.spreads.iter().fold(shape.fields, |sum, name| {
            sum.saturating_add(totals.get(name).copied().unwrap_or(1))
        })
    };
    let mut largest = 0;
    for operation in operations(document) {
        let mut shape = Shape::default();
        shape_of(&operation.selection_set.node, &mut shape)?;
        largest = largest.max(total_of(&shape));
    }
    if largest > max {
        return Err(Refusal::TooManyFields { fields: largest, max });
    }
    Ok(largest)
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

/// Every fragment's expanded field count, each computed once, in an order
/// where a fragment comes after those it spreads. Iterative, so a long
/// chain of fragments cannot exhaust the stack.
fn fragment_totals<'a>(
    fragments: &HashMap<&'a str, Shape<'a>>,
) -> Result<HashMap<&'a str, usize>, Refusal> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    let mut totals: HashMap<&str, usize> = HashMap::with_capacity(fragments.len());
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
            if let Some(&child) = shape.spreads.get(*next) {
                *next += 1;
                if !fragments.contains_key(child) {
                    continue;
                }
                match marks.get(child) {
                    Some(Mark::Done) => {}
                    Some(Mark::Open) => return Err(Refusal::Cycle { fragment: child.to_owned() }),
                    None => {
                        marks.insert(child, Mark::Open);
                        stack.push((child, 0));
                    }
                }
            } else {
                let total = shape.spreads.iter().fold(shape.fields, |sum, spread| {
                    sum.saturating_add(totals.get(spread).copied().unwrap_or(1))
                });
                let name = *name;
                totals.insert(name, total);
                marks.insert(name, Mark::Done);
                stack.pop();
            }
        }
    }
    Ok(totals)
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

    fn count(query: &str, max: usize) -> Result<usize, Refusal> {
        check(&parse_query(query).unwrap(), max)
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
            Err(Refusal::TooManyFields { fields: 1 << 28, max: 5_000 })
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // Far past what a usize holds: saturates, never overflows.
        let huge = count(&bomb(200, 3), 5_000);
        assert_eq!(huge, Err(Refusal::TooManyFields { fields: usize::MAX, max: 5_000 }));
    }

    #[test]
    fn a_fragment_spread_over_and_over_at_one_level_is_refused() {
        let refused = count(&bomb(2, 4), 1_000_000);
        assert!(matches!(refused, Err(Refusal::RepeatedSpread { times: 4, .. })), "{refused:?}");
        // Spreads of a fragment that does not exist cannot bomb either.
        let phantom = bomb(28, 2).replace("{__typename}", "{...Missing}");
        assert!(matches!(count(&phantom, 5_000), Err(Refusal::TooManyFields { .. })));
    }

    #[test]
    fn cycles_are_refused_and_long_chains_do_not_overflow_the_stack() {
        let cycle = "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }";
        assert!(matches!(count(cycle, 10), Err(Refusal::Cycle { .. })));
        let chain = bomb(20_000, 1);
        assert_eq!(count(&chain, 10), Ok(1));
    }
}
