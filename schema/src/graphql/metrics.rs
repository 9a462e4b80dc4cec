//! The [`OperationMetrics`] extension: every GraphQL operation counted by name, type and
//! outcome, with its latency (`cloudbase_graphql_operations_total`,
//! `cloudbase_graphql_operation_duration_seconds`), and every live subscription in
//! `cloudbase_subscriptions_active`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest, NextRequest,
    NextSubscribe,
};
use async_graphql::futures_util::stream::{BoxStream, StreamExt};
use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{Request, Response, ServerResult, Variables};

use super::errors::code_of;
use super::running_operation;
use crate::metrics::GaugeGuard;
use crate::services::App;

/// Counts operations and live subscriptions into the instance's metrics.
pub struct OperationMetrics;

impl ExtensionFactory for OperationMetrics {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(OperationMetricsExtension::default())
    }
}

#[derive(Default)]
struct Operation {
    /// The name asked for, or the one named operation of the document.
    name: Option<String>,
    /// `query`, `mutation` or `subscription`, once the document parsed.
    kind: Option<&'static str>,
}

#[derive(Default)]
struct OperationMetricsExtension {
    operation: Mutex<Operation>,
}

#[async_graphql::async_trait::async_trait]
impl Extension for OperationMetricsExtension {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let started = Instant::now();
        let response = next.run(ctx).await;
        let Some(app) = ctx.data_opt::<Arc<App>>() else {
            return response;
        };
        let outcome = response
            .errors
            .first()
            .map_or_else(|| "ok".to_owned(), code_of);
        let (name, kind) = {
            let op = self.operation.lock().unwrap_or_else(|p| p.into_inner());
            (op.name.clone(), op.kind.unwrap_or("unknown"))
        };
        let operation = app.metrics.operation_label(name.as_deref());
        app.metrics.request(
            (
                "cloudbase_graphql_operations_total",
                "cloudbase_graphql_operation_duration_seconds",
            ),
            [("operation", &operation), ("type", kind)],
            ("outcome", &outcome),
            started.elapsed().as_secs_f64(),
        );
        response
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        self.operation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .name
            .clone_from(&request.operation_name);
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let mut op = self.operation.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((name, operation)) = running_operation(&document, op.name.as_deref()) {
            op.name = name;
            op.kind = Some(match operation.ty {
                OperationType::Query => "query",
                OperationType::Mutation => "mutation",
                OperationType::Subscription => "subscription",
            });
        }
        drop(op);
        Ok(document)
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let stream = next.run(ctx, stream);
        match ctx.data_opt::<Arc<App>>() {
            Some(app) => {
                let guard = GaugeGuard::new(app.clone(), "cloudbase_subscriptions_active");
                stream
                    .map(move |response| {
                        let _live = &guard;
                        response
                    })
                    .boxed()
            }
            None => stream,
        }
    }
}
