//! PostgreSQL: the `PENDING` records of several calls as **one statement**.
//!
//! A call with no budget opens its record with one insert whose commit does not wait for the
//! disk ([`super::ai_calls::insert_pending`]). At 32 calls in flight that is a statement a call,
//! each a round trip with its own parse, plan and commit on the server and its own wake-ups on
//! ours. [`insert`] writes the records of the calls queued together
//! (`services::chat::pendings`) as one `INSERT … SELECT … FROM unnest(…)`, under the same rule:
//! `synchronous_commit` off for that statement's own transaction only. One text whatever the
//! batch's size, so the statement is prepared once per connection.

use chrono::NaiveDateTime;
use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Bool, Jsonb, Nullable, Text, Timestamp};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::finish_batch::unnest;
use super::models::AiCall;
use crate::domain::{CallStatus, UsageSource};

/// The records of a batch of calls, a column each.
#[derive(Default)]
struct Columns<'a> {
    id: Vec<&'a str>,
    user_id: Vec<&'a str>,
    conversation_id: Vec<Option<&'a str>>,
    request_id: Vec<Option<&'a str>>,
    provider: Vec<&'a str>,
    model: Vec<&'a str>,
    stream: Vec<bool>,
    status: Vec<CallStatus>,
    error_code: Vec<Option<&'a str>>,
    error_message: Vec<Option<&'a str>>,
    prompt_tokens: Vec<i64>,
    cached_prompt_tokens: Vec<i64>,
    completion_tokens: Vec<i64>,
    usage_source: Vec<Option<UsageSource>>,
    started_at: Vec<NaiveDateTime>,
    finished_at: Vec<Option<NaiveDateTime>>,
    latency_ms: Vec<Option<i64>>,
    ttft_ms: Vec<Option<i64>>,
    upstream_ms: Vec<Option<i64>>,
    price_id: Vec<Option<&'a str>>,
    cost_micros: Vec<i64>,
    currency: Vec<Option<&'a str>>,
    priced: Vec<bool>,
    cached: Vec<bool>,
    attempts: Vec<&'a serde_json::Value>,
    prompt_log: Vec<Option<&'a serde_json::Value>>,
    api_key_id: Vec<Option<&'a str>>,
}

impl<'a> Columns<'a> {
    fn push(&mut self, call: &'a AiCall) {
        // Every field named: a column added to `AiCall` fails to compile here until it is
        // written here (and in the statement) too.
        let AiCall {
            id,
            user_id,
            conversation_id,
            request_id,
            provider,
            model,
            stream,
            status,
            error_code,
            error_message,
            prompt_tokens,
            cached_prompt_tokens,
            completion_tokens,
            usage_source,
            started_at,
            finished_at,
            latency_ms,
            ttft_ms,
            upstream_ms,
            price_id,
            cost_micros,
            currency,
            priced,
            cached,
            attempts,
            prompt_log,
            api_key_id,
        } = call;
        self.id.push(id);
        self.user_id.push(user_id);
        self.conversation_id.push(conversation_id.as_deref());
        self.request_id.push(request_id.as_deref());
        self.provider.push(provider);
        self.model.push(model);
        self.stream.push(*stream);
        self.status.push(*status);
        self.error_code.push(error_code.as_deref());
        self.error_message.push(error_message.as_deref());
        self.prompt_tokens.push(*prompt_tokens);
        self.cached_prompt_tokens.push(*cached_prompt_tokens);
        self.completion_tokens.push(*completion_tokens);
        self.usage_source.push(*usage_source);
        self.started_at.push(*started_at);
        self.finished_at.push(*finished_at);
        self.latency_ms.push(*latency_ms);
        self.ttft_ms.push(*ttft_ms);
        self.upstream_ms.push(*upstream_ms);
        self.price_id.push(price_id.as_deref());
        self.cost_micros.push(*cost_micros);
        self.currency.push(currency.as_deref());
        self.priced.push(*priced);
        self.cached.push(*cached);
        self.attempts.push(attempts);
        self.prompt_log.push(prompt_log.as_ref());
        self.api_key_id.push(api_key_id.as_deref());
    }
}

/// Inserts `calls` as one statement whose commit does not wait for the disk; returns each id
/// inserted with the `synchronous_commit` its statement's transaction commits with (`off`). The
/// statement inserts all of them or, failing, none.
pub async fn insert(
    conn: &mut AsyncPgConnection,
    calls: &[&AiCall],
) -> QueryResult<Vec<(String, String)>> {
    if calls.is_empty() {
        return Ok(Vec::new());
    }
    let mut columns = Columns::default();
    for call in calls {
        columns.push(call);
    }
    Statement(&columns).load(conn).await
}

/// `INSERT INTO ai_calls (<columns>) SELECT <columns> FROM unnest(<arrays>) RETURNING id`, with
/// `synchronous_commit` off for the statement's transaction.
struct Statement<'s, 'a>(&'s Columns<'a>);

/// The columns of `ai_calls`, named as [`Columns`]' fields, in the order `unnest` binds them.
const COLUMNS: &str = "id, user_id, conversation_id, request_id, provider, model, stream, \
     status, error_code, error_message, prompt_tokens, cached_prompt_tokens, completion_tokens, \
     usage_source, started_at, finished_at, latency_ms, ttft_ms, upstream_ms, price_id, \
     cost_micros, currency, priced, cached, attempts, prompt_log, api_key_id";

impl QueryFragment<Pg> for Statement<'_, '_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let b = self.0;
        out.push_sql("INSERT INTO ai_calls (");
        out.push_sql(COLUMNS);
        out.push_sql(") SELECT ");
        out.push_sql(COLUMNS);
        out.push_sql(" FROM ");
        unnest!(out, b, "v",
            id: Text,
            user_id: Text,
            conversation_id: Nullable<Text>,
            request_id: Nullable<Text>,
            provider: Text,
            model: Text,
            stream: Bool,
            status: Text,
            error_code: Nullable<Text>,
            error_message: Nullable<Text>,
            prompt_tokens: BigInt,
            cached_prompt_tokens: BigInt,
            completion_tokens: BigInt,
            usage_source: Nullable<Text>,
            started_at: Timestamp,
            finished_at: Nullable<Timestamp>,
            latency_ms: Nullable<BigInt>,
            ttft_ms: Nullable<BigInt>,
            upstream_ms: Nullable<BigInt>,
            price_id: Nullable<Text>,
            cost_micros: BigInt,
            currency: Nullable<Text>,
            priced: Bool,
            cached: Bool,
            attempts: Jsonb,
            prompt_log: Nullable<Jsonb>,
            api_key_id: Nullable<Text>,
        );
        // Read at the commit of the statement's own transaction (`ai_calls::insert_pending`).
        out.push_sql(" RETURNING id, set_config('synchronous_commit', 'off', true)");
        Ok(())
    }

    fn to_sql(&self, out: &mut diesel::pg::PgQueryBuilder, backend: &Pg) -> QueryResult<()> {
        super::fixed::write_kept(self, out, backend)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> QueryResult<bool> {
        // One text, whatever the batch's size: its columns are arrays.
        Ok(true)
    }
}

impl QueryId for Statement<'_, '_> {
    type QueryId = StatementId;
    const HAS_STATIC_QUERY_ID: bool = true;
}

/// [`Statement`]'s id in the statement cache.
struct StatementId;

impl Query for Statement<'_, '_> {
    type SqlType = (Text, Text);
}
