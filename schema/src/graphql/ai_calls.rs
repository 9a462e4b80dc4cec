//! Call records: `AiCall`, `aiCalls` and `aiCall`.

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, ID, InputObject, Json, Object};
use chrono::{DateTime, Utc};

use super::ContextExt;
use super::money::Micros;
use super::view::view;
use crate::Error;
use crate::db::models::AiCall as CallRow;
use crate::domain::{CallStatus, UsageSource};
use crate::services::ai_calls::{self, CallFilter};

view!(
    /// AiCall as the API shows it. The record is shared: a live update reaches every
    /// subscriber as the same record, read once.
    AiCall(std::sync::Arc<CallRow>)
);

impl From<CallRow> for AiCall {
    fn from(row: CallRow) -> Self {
        Self(std::sync::Arc::new(row))
    }
}

/// One attempt to call a provider, whatever its outcome.
#[Object]
impl AiCall {
    /// Stable id (UUIDv7).
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }
    /// Who asked.
    async fn user_id(&self) -> ID {
        ID(self.user_id.clone())
    }
    /// The conversation, if the call was a turn of one.
    async fn conversation_id(&self) -> Option<ID> {
        self.conversation_id.clone().map(ID)
    }
    /// The HTTP request that made it.
    async fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }
    /// Provider instance.
    async fn provider(&self) -> &str {
        &self.provider
    }
    /// Model.
    async fn model(&self) -> &str {
        &self.model
    }
    /// Streamed or not.
    async fn stream(&self) -> bool {
        self.stream
    }
    /// Where it stands.
    async fn status(&self) -> CallStatus {
        self.status
    }
    /// The `extensions.code` of the failure.
    async fn error_code(&self) -> Option<&str> {
        self.error_code.as_deref()
    }
    /// The failure.
    async fn error_message(&self) -> Option<&str> {
        self.error_message.as_deref()
    }
    /// Input tokens, cached ones included.
    async fn prompt_tokens(&self) -> i64 {
        self.prompt_tokens
    }
    /// Input tokens billed at the cached rate.
    async fn cached_prompt_tokens(&self) -> i64 {
        self.cached_prompt_tokens
    }
    /// Output tokens.
    async fn completion_tokens(&self) -> i64 {
        self.completion_tokens
    }
    /// Reported by the provider or estimated.
    async fn usage_source(&self) -> Option<UsageSource> {
        self.usage_source
    }
    /// When it was admitted.
    async fn started_at(&self) -> DateTime<Utc> {
        self.started_at.and_utc()
    }
    /// When it ended.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.finished_at.map(|t| t.and_utc())
    }
    /// Start to end, in milliseconds.
    async fn latency_ms(&self) -> Option<i64> {
        self.latency_ms
    }
    /// Start to the first streamed token, in milliseconds.
    async fn ttft_ms(&self) -> Option<i64> {
        self.ttft_ms
    }
    /// Time spent on the provider, in milliseconds.
    async fn upstream_ms(&self) -> Option<i64> {
        self.upstream_ms
    }
    /// The gateway's own share of the latency, in milliseconds.
    async fn overhead_ms(&self) -> Option<i64> {
        Some(self.latency_ms? - self.upstream_ms?).map(|d| d.max(0))
    }
    /// The price row used.
    async fn price_id(&self) -> Option<ID> {
        self.price_id.clone().map(ID)
    }
    /// Cost in micro-units of `currency`.
    async fn cost_micros(&self) -> Micros {
        Micros(self.cost_micros)
    }
    /// Currency of the cost.
    async fn currency(&self) -> Option<&str> {
        self.currency.as_deref()
    }
    /// Whether a price was in force (otherwise the cost is 0).
    async fn priced(&self) -> bool {
        self.priced
    }
    /// Answered from the response cache (cost 0).
    async fn cached(&self) -> bool {
        self.cached
    }
    /// The attempt chain: `[{provider, model, outcome, ms}]`.
    async fn attempts(&self) -> Json<&serde_json::Value> {
        Json(&self.attempts)
    }
    /// The API key that made it (null: a signed-in session).
    async fn api_key_id(&self) -> Option<ID> {
        self.api_key_id.clone().map(ID)
    }
}

/// Filters for `aiCalls`.
#[derive(InputObject, Default)]
pub struct AiCallFilter {
    /// Admins only: one user's calls.
    pub user_id: Option<ID>,
    /// Provider instance.
    pub provider: Option<String>,
    /// Model.
    pub model: Option<String>,
    /// One API key's calls.
    pub api_key_id: Option<ID>,
    /// Status.
    pub status: Option<CallStatus>,
    /// Started at or after.
    pub from: Option<DateTime<Utc>>,
    /// Started before.
    pub to: Option<DateTime<Utc>>,
}

/// Call record queries.
#[derive(Default)]
pub struct AiCallsQuery;

#[Object]
impl AiCallsQuery {
    /// Call records, newest first: your own, or everyone's for an admin.
    async fn ai_calls(
        &self,
        ctx: &Context<'_>,
        filter: Option<AiCallFilter>,
        #[graphql(desc = "Page size, 1–100 (default 20).")] first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, AiCall, EmptyFields, EmptyFields>, Error> {
        let f = filter.unwrap_or_default();
        let filter = CallFilter {
            user_id: f.user_id.map(|id| id.0),
            provider: f.provider,
            model: f.model,
            api_key_id: f.api_key_id.map(|id| id.0),
            status: f.status,
            from: f.from,
            to: f.to,
        };
        let (items, more) =
            ai_calls::list(ctx.app()?, ctx.viewer()?, filter, first, after.as_deref()).await?;
        let mut connection = Connection::new(after.is_some(), more);
        connection
            .edges
            .extend(items.into_iter().map(|c| Edge::new(c.id.clone(), c.into())));
        Ok(connection)
    }

    /// One call record (yours, or any for an admin).
    async fn ai_call(&self, ctx: &Context<'_>, id: ID) -> Result<AiCall, Error> {
        ai_calls::get(ctx.app()?, ctx.viewer()?, &id)
            .await
            .map(Into::into)
    }
}
