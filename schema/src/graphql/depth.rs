//! The depth limit, measured on the parsed document before it is validated or run. Ordinary
//! selections are held to `[graphql] max_depth`. An introspection subtree (`__schema`, `__type`)
//! is held to [`INTROSPECTION_DEPTH`] instead: the full introspection queries that GraphiQL,
//! graphql-js (`getIntrospectionQuery()`), codegen and API clients send nest `ofType` seven to
//! nine levels inside a type's fields, deeper than any ordinary query needs. Introspection
//! resolves from the schema in memory, and the complexity limit still bounds its breadth.
//!
//! Fragment spreads count where they are spread, so a fragment cannot hide depth; a cycle of
//! fragments stops the walk here and is refused by validation.

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

/// The deepest introspection subtree allowed, counting its root field.
pub const INTROSPECTION_DEPTH: usize = 20;

/// Checks every operation of `doc`; the error is what the client reads.
pub fn check(doc: &ExecutableDocument, max_depth: usize) -> Result<(), String> {
    for (_, operation) in doc.operations.iter() {
        let mut walk = Walk {
            doc,
            spreads: Vec::new(),
        };
        let (ordinary, introspection) = walk.root(&operation.node.selection_set.node);
        if ordinary > max_depth {
            return Err("Query is nested too deep.".into());
        }
        if introspection > INTROSPECTION_DEPTH {
            return Err(format!(
                "the introspection query is nested too deep (at most {INTROSPECTION_DEPTH} levels)"
            ));
        }
    }
    Ok(())
}

struct Walk<'a> {
    doc: &'a ExecutableDocument,
    /// The fragments being walked, to stop at a cycle.
    spreads: Vec<&'a str>,
}

impl<'a> Walk<'a> {
    /// The root selections: `(ordinary depth, deepest introspection subtree)`.
    fn root(&mut self, set: &'a SelectionSet) -> (usize, usize) {
        let (mut ordinary, mut introspection) = (0, 0);
        for item in &set.items {
            match &item.node {
                Selection::Field(field) => {
                    let depth = 1 + self.depth(&field.node.selection_set.node);
                    match field.node.name.node.as_str() {
                        "__schema" | "__type" => introspection = introspection.max(depth),
                        _ => ordinary = ordinary.max(depth),
                    }
                }
                Selection::InlineFragment(inline) => {
                    let (o, i) = self.root(&inline.node.selection_set.node);
                    (ordinary, introspection) = (ordinary.max(o), introspection.max(i));
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    if let Some(fragment) = self.enter(name) {
                        let (o, i) = self.root(&fragment.node.selection_set.node);
                        (ordinary, introspection) = (ordinary.max(o), introspection.max(i));
                        self.spreads.pop();
                    }
                }
            }
        }
        (ordinary, introspection)
    }

    /// The depth of a selection set: a field counts one more than its selections.
    fn depth(&mut self, set: &'a SelectionSet) -> usize {
        let mut deepest = 0;
        for item in &set.items {
            let depth = match &item.node {
                Selection::Field(field) => 1 + self.depth(&field.node.selection_set.node),
                Selection::InlineFragment(inline) => self.depth(&inline.node.selection_set.node),
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    match self.enter(name) {
                        Some(fragment) => {
                            let depth = self.depth(&fragment.node.selection_set.node);
                            self.spreads.pop();
                            depth
                        }
                        None => 0,
                    }
                }
            };
            deepest = deepest.max(depth);
        }
        deepest
    }

    /// The fragment named `name`, pushed on the walk, unless it is unknown or already being
    /// walked (a cycle).
    fn enter(
        &mut self,
        name: &'a str,
    ) -> Option<&'a async_graphql::Positioned<async_graphql::parser::types::FragmentDefinition>>
    {
        if self.spreads.contains(&name) {
            return None;
        }
        let fragment = self.doc.fragments.get(name)?;
        self.spreads.push(name);
        Some(fragment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_text(text: &str, max: usize) -> Result<(), String> {
        let doc = async_graphql::parser::parse_query(text).expect("parses");
        check(&doc, max)
    }

    #[test]
    fn fields_count_and_fragments_count_where_spread() {
        assert!(check_text("{ a { b { c } } }", 3).is_ok());
        assert!(check_text("{ a { b { c { d } } } }", 3).is_err());
        let hidden = "{ a { ...F } } fragment F on T { b { c { d } } }";
        assert!(
            check_text(hidden, 3).is_err(),
            "a fragment cannot hide depth"
        );
        let inline = "{ a { ... on T { b { c { d } } } } }";
        assert!(check_text(inline, 3).is_err());
        let cycle = "{ a { ...F } } fragment F on T { b { ...F } }";
        assert!(
            check_text(cycle, 3).is_ok(),
            "a cycle ends the walk (validation refuses it)"
        );
    }

    #[test]
    fn introspection_has_its_own_bound_and_only_at_the_root() {
        let mut deep_types = String::from("kind");
        for _ in 0..9 {
            deep_types = format!("kind ofType {{ {deep_types} }}");
        }
        let full = format!("{{ __schema {{ types {{ fields {{ type {{ {deep_types} }} }} }} }} }}");
        assert!(check_text(&full, 12).is_ok());
        let spread = format!(
            "query {{ ...Root }} fragment Root on Query {{ __type(name: \"Query\") {{ fields {{ type {{ {deep_types} }} }} }} }}"
        );
        assert!(check_text(&spread, 12).is_ok());
        let mut too_deep = String::from("kind");
        for _ in 0..INTROSPECTION_DEPTH {
            too_deep = format!("kind ofType {{ {too_deep} }}");
        }
        let attack = format!("{{ __type(name: \"Query\") {{ {too_deep} }} }}");
        assert!(check_text(&attack, 12).is_err());
        // An ordinary field named like a root introspection field, below the root, is ordinary.
        let nested = format!("{{ me {{ profile {{ __schema {{ {deep_types} }} }} }} }}");
        assert!(check_text(&nested, 12).is_err());
    }
}
