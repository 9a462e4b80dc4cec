//! Every operation runs as one request for the pool's guard ([`crate::db::held`]): a query or
//! mutation in one scope, a subscription's stream in one scope across its polls, and each field
//! in a field scope of its own, so fields that resolve side by side take turns at the request's
//! one connection. Over HTTP the server's middleware scopes the whole request as well.

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextResolve, NextSubscribe,
    ResolveInfo,
};
use async_graphql::futures_util::StreamExt as _;
use async_graphql::futures_util::stream::BoxStream;
use async_graphql::{Response, ServerResult, Value};

use crate::db::held;

/// Installs the per-operation scope.
pub struct OneConnection;

impl ExtensionFactory for OneConnection {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(OneConnection)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for OneConnection {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        held::scope(next.run(ctx, operation_name)).await
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        // Every field: siblings at any depth (a page of conversations and each one's messages)
        // resolve side by side. A resolver's own connection is gone before its children run.
        held::field_scope(next.run(ctx, info)).await
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        held::scope_stream(next.run(ctx, stream)).boxed()
    }
}
