//! Parsed documents, kept by their exact text. Clients send the same few operations over and
//! over (an app's `chat` mutation, a dashboard's queries), and parsing one costs several times
//! what cloning its tree does (`bench/RESULTS.md`). The cache sits innermost among the
//! extensions, so every other `parse_query` hook (the nesting check before, the alias and
//! introspection checks after, the audit's capture of the variables) still runs on every request.
//!
//! Bounded in entries and in the size of a document kept; when full, an arbitrary entry makes
//! room. A client that sends a new document each time only costs itself a parse.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{ServerResult, Variables};

/// Documents kept at most.
const ENTRIES: usize = 512;
/// Longer documents are parsed every time.
const MAX_TEXT: usize = 16 * 1024;

/// The shared cache; one per schema.
#[derive(Default)]
pub struct ParsedDocuments {
    documents: Arc<Mutex<HashMap<Box<str>, ExecutableDocument>>>,
}

impl ExtensionFactory for ParsedDocuments {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Lookup {
            documents: Arc::clone(&self.documents),
        })
    }
}

struct Lookup {
    documents: Arc<Mutex<HashMap<Box<str>, ExecutableDocument>>>,
}

impl Lookup {
    fn get(&self, query: &str) -> Option<ExecutableDocument> {
        let documents = self.documents.lock().unwrap_or_else(|p| p.into_inner());
        documents.get(query).cloned()
    }

    fn keep(&self, query: &str, doc: &ExecutableDocument) {
        let mut documents = self.documents.lock().unwrap_or_else(|p| p.into_inner());
        if documents.len() >= ENTRIES
            && let Some(old) = documents.keys().next().cloned()
        {
            documents.remove(&old);
        }
        documents.insert(query.into(), doc.clone());
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for Lookup {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        if query.len() > MAX_TEXT {
            return next.run(ctx, query, variables).await;
        }
        if let Some(doc) = self.get(query) {
            return Ok(doc);
        }
        let doc = next.run(ctx, query, variables).await?;
        self.keep(query, &doc);
        Ok(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ExecutableDocument {
        async_graphql::parser::parse_query(text).unwrap()
    }

    #[test]
    fn keeps_at_most_its_bound() {
        let cache = ParsedDocuments::default();
        let lookup = Lookup {
            documents: Arc::clone(&cache.documents),
        };
        for i in 0..ENTRIES + 10 {
            let text = format!("{{ f{i} }}");
            lookup.keep(&text, &parse(&text));
        }
        assert_eq!(cache.documents.lock().unwrap().len(), ENTRIES);
        let last = format!("{{ f{} }}", ENTRIES + 9);
        assert!(lookup.get(&last).is_some(), "the newest entry is kept");
    }
}
