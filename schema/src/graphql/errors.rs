//! The one place where errors become GraphQL errors.
//!
//! Resolvers return `crate::Error` with `?`; async-graphql keeps it as the error's source. This
//! extension then gives every error a stable `extensions.code`: parse and validation failures get
//! `GRAPHQL_PARSE_FAILED` / `GRAPHQL_VALIDATION_FAILED`, service errors get their own code, and an
//! internal error is logged once, here, and leaves as an opaque message with the request id.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextRequest, NextSubscribe,
    NextValidation,
};
use async_graphql::futures_util::StreamExt;
use async_graphql::futures_util::stream::BoxStream;
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Response, ServerError, ServerResult, ValidationResult, Variables};

use crate::error::{Code, Error};
use crate::services::RequestMeta;

/// Request data that marks introspection as refused for this request (non-admins in `prod`).
#[derive(Debug, Clone, Copy)]
pub struct IntrospectionDenied;

/// Installs the error policy, the nesting and alias limits and the introspection refusal.
pub struct ErrorPolicy {
    /// Most aliased fields allowed in one document.
    pub max_aliases: usize,
    /// Deepest bracket nesting allowed, checked before parsing (see [`super::nesting`]).
    pub max_nesting: usize,
    /// Deepest ordinary selection allowed (see [`super::depth`]).
    pub max_depth: usize,
}

impl ExtensionFactory for ErrorPolicy {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorPolicyExtension {
            max_aliases: self.max_aliases,
            max_nesting: self.max_nesting,
            max_depth: self.max_depth,
            request_id: std::sync::Mutex::new(String::new()),
        })
    }
}

/// One per request (the factory makes a new one each time).
struct ErrorPolicyExtension {
    max_aliases: usize,
    max_nesting: usize,
    max_depth: usize,
    /// Captured while parsing: the `request` hook's context cannot see per-request data.
    request_id: std::sync::Mutex<String>,
}

impl ErrorPolicyExtension {
    fn remember_request_id(&self, ctx: &ExtensionContext<'_>) {
        let id = request_id(ctx);
        if !id.is_empty() {
            *self.request_id.lock().unwrap_or_else(|p| p.into_inner()) = id;
        }
    }

    fn request_id(&self, ctx: &ExtensionContext<'_>) -> String {
        let stored = self
            .request_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if stored.is_empty() {
            request_id(ctx)
        } else {
            stored
        }
    }
}

fn request_id(ctx: &ExtensionContext<'_>) -> String {
    ctx.data_opt::<RequestMeta>()
        .map(|m| m.request_id.clone())
        .unwrap_or_default()
}

fn set_code(error: &mut ServerError, code: &str) {
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
}

fn has_code(error: &ServerError) -> bool {
    error
        .extensions
        .as_ref()
        .is_some_and(|ext| ext.get("code").is_some())
}

/// The code of one of async-graphql's own errors (it has no source): argument coercion inside a
/// field, or an operation that cannot run (no such operation name, a subscription over HTTP).
fn own_error_code(error: &ServerError) -> &'static str {
    if error.path.is_empty() {
        "BAD_REQUEST"
    } else {
        Code::BadUserInput.as_str()
    }
}

/// The code `error` has or will get from [`finish_error`], without changing it.
pub fn code_of(error: &ServerError) -> String {
    if let Some(async_graphql::Value::String(code)) =
        error.extensions.as_ref().and_then(|ext| ext.get("code"))
    {
        return code.clone();
    }
    match error.source::<Error>() {
        Some(e) => e.code().as_str().to_owned(),
        None if error.source.is_none() => own_error_code(error).to_owned(),
        None => Code::Internal.as_str().to_owned(),
    }
}

/// Gives `error` its code (and, for internal errors, an opaque message with the request id).
pub fn finish_error(error: &mut ServerError, request_id: &str) {
    if has_code(error) {
        return;
    }
    let budget = match error.source::<Error>() {
        Some(Error::BudgetExceeded {
            remaining_micros,
            reset_at,
            ..
        }) => Some((*remaining_micros, *reset_at)),
        _ => None,
    };
    if let Some((remaining, reset_at)) = budget {
        let ext = error.extensions.get_or_insert_with(Default::default);
        ext.set("remainingMicros", remaining.to_string());
        if let Some(at) = reset_at {
            ext.set("resetAt", at.to_rfc3339());
        }
    }
    if let Some(
        Error::RateLimited { retry_after_ms, .. } | Error::Overloaded { retry_after_ms, .. },
    ) = error.source::<Error>()
    {
        let retry = *retry_after_ms;
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("retryAfterMs", retry);
    }
    let (code, field) = match error.source::<Error>() {
        Some(e) => (
            e.code(),
            match e {
                Error::BadInput { field, .. } => *field,
                _ => None,
            },
        ),
        None if error.source.is_none() => {
            let code = own_error_code(error);
            set_code(error, code);
            return;
        }
        None => (Code::Internal, None),
    };
    if code == Code::Internal {
        tracing::error!(request.id = %request_id, error = %error.message, path = ?error.path, "internal error");
        error.message = format!("internal error; quote request id {request_id} when reporting it");
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("requestId", request_id);
    }
    set_code(error, code.as_str());
    if let Some(field) = field {
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("field", field);
    }
}

fn count_aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) => {
                usize::from(f.node.alias.is_some()) + count_aliases(&f.node.selection_set.node)
            }
            Selection::InlineFragment(f) => count_aliases(&f.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

fn selects_introspection(set: &SelectionSet) -> bool {
    set.items.iter().any(|item| match &item.node {
        Selection::Field(f) => {
            matches!(f.node.name.node.as_str(), "__schema" | "__type")
                || selects_introspection(&f.node.selection_set.node)
        }
        Selection::InlineFragment(f) => selects_introspection(&f.node.selection_set.node),
        Selection::FragmentSpread(_) => false,
    })
}

fn document_introspects(doc: &ExecutableDocument) -> bool {
    doc.operations
        .iter()
        .any(|(_, op)| selects_introspection(&op.node.selection_set.node))
        || doc
            .fragments
            .values()
            .any(|f| selects_introspection(&f.node.selection_set.node))
}

fn document_aliases(doc: &ExecutableDocument) -> usize {
    let operations: usize = doc
        .operations
        .iter()
        .map(|(_, op)| count_aliases(&op.node.selection_set.node))
        .sum();
    let fragments: usize = doc
        .fragments
        .values()
        .map(|f| count_aliases(&f.node.selection_set.node))
        .sum();
    operations + fragments
}

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorPolicyExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        let id = self.request_id(ctx);
        for error in &mut response.errors {
            finish_error(error, &id);
        }
        response
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let id = request_id(ctx);
        next.run(ctx, stream)
            .map(move |mut response| {
                for error in &mut response.errors {
                    finish_error(error, &id);
                }
                response
            })
            .boxed()
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        self.remember_request_id(ctx);
        // Before the parser, which recurses on nesting (every entry point comes through here).
        if let Err(e) = super::nesting::check(query, self.max_nesting) {
            let mut e = ServerError::new(e.to_string(), None);
            set_code(&mut e, "GRAPHQL_PARSE_FAILED");
            return Err(e);
        }
        let doc = next.run(ctx, query, variables).await.map_err(|mut e| {
            set_code(&mut e, "GRAPHQL_PARSE_FAILED");
            e
        })?;
        if ctx.data_opt::<IntrospectionDenied>().is_some() && document_introspects(&doc) {
            let mut e = ServerError::new("introspection is only for admins in production", None);
            set_code(&mut e, Code::Forbidden.as_str());
            return Err(e);
        }
        let aliases = document_aliases(&doc);
        if aliases > self.max_aliases {
            let mut e = ServerError::new(
                format!(
                    "the document uses {aliases} aliases; at most {} are allowed",
                    self.max_aliases
                ),
                None,
            );
            set_code(&mut e, "GRAPHQL_VALIDATION_FAILED");
            return Err(e);
        }
        if let Err(message) = super::depth::check(&doc, self.max_depth) {
            let mut e = ServerError::new(message, None);
            set_code(&mut e, "GRAPHQL_VALIDATION_FAILED");
            return Err(e);
        }
        Ok(doc)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|mut e| {
                    set_code(&mut e, "GRAPHQL_VALIDATION_FAILED");
                    e
                })
                .collect()
        })
    }
}
