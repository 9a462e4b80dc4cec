//! PostgreSQL: the finishes of several calls as **one statement** and one commit.
//!
//! A call's finish on PostgreSQL is one statement ([`super::budgets::finish_and_add_to_daily`]):
//! its record, three rollup rows, its token counters and its audit row. At 32 calls in flight
//! that is 32 commits a moment, each with its own flush of the write-ahead log, and the same
//! rollup rows updated 32 times over, each time a new row version and its WAL records
//! (`bench/RESULTS.md`, "2026-12-03, night": about 25 WAL records a call, most of them in the
//! finish). [`FinishBatch`] writes the finishes of the calls queued together
//! (`services::chat::finishes`) at once:
//! - the records, in one `UPDATE ai_calls … FROM unnest(…)`, each still only if it is
//!   `PENDING` (a call finishes once; one already finished is not in the result and adds nothing
//!   anywhere);
//! - each rollup row once, with the sums of the batch's calls that share its key;
//! - each token counter once, with the sum of its calls' tokens;
//! - the audit rows of the calls finished.
//!
//! Rows of one table are written in the order of their keys, and the tables in the order every
//! finish writes them ([`super::budgets`]'s `in_one`), so two batches, or a batch and a single
//! finish, never wait for each other in a cycle.

use chrono::NaiveDateTime;
use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Bool, Jsonb, Nullable, SmallInt, Text, Timestamp};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::ai_calls::Finish;
use super::budgets::FINISHED_COLUMNS;
use super::budgets::in_one::{ROLLUPS, SUMS};
use super::models::NewAuditRow;
use crate::domain::{CallStatus, UsageSource};

/// The finishes of a batch of calls, a column each (see the module's documentation).
#[derive(Default)]
pub struct FinishBatch<'a> {
    id: Vec<&'a str>,
    provider: Vec<&'a str>,
    model: Vec<&'a str>,
    status: Vec<CallStatus>,
    error_code: Vec<Option<&'a str>>,
    error_message: Vec<Option<&'a str>>,
    prompt_tokens: Vec<i64>,
    cached_prompt_tokens: Vec<i64>,
    completion_tokens: Vec<i64>,
    usage_source: Vec<Option<UsageSource>>,
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
    /// The rollups' day of each call.
    day: Vec<&'a str>,
    /// The minute each call's tokens count in.
    minute: Vec<NaiveDateTime>,
    /// The token counters, a row per (counter, call).
    counter_key: Vec<&'a str>,
    counter_call: Vec<&'a str>,
    /// The audit rows, each with its call.
    audit_call: Vec<&'a str>,
    audit_at: Vec<NaiveDateTime>,
    actor_id: Vec<Option<&'a str>>,
    actor_role: Vec<Option<&'a str>>,
    operation_name: Vec<Option<&'a str>>,
    field: Vec<&'a str>,
    arguments: Vec<&'a str>,
    outcome: Vec<&'a str>,
    client_ip: Vec<Option<&'a str>>,
    user_agent: Vec<Option<&'a str>>,
    request_id: Vec<&'a str>,
    /// The rollup rows' shard ([`super::budgets::shard`]).
    shard: i16,
}

/// One call of a batch: what [`super::budgets::finish_and_add_to_daily`] takes for one.
pub struct Finishing<'a> {
    /// The call.
    pub id: &'a str,
    /// How it ended.
    pub finish: &'a Finish,
    /// Its rollups' day (`YYYY-MM-DD` in the budgets' time zone).
    pub day: &'a str,
    /// The start of the minute it finished in.
    pub minute: NaiveDateTime,
    /// The token counters its tokens go to.
    pub token_counters: &'a [String],
    /// The mutation's audit row, written if the call is finished.
    pub audit: Option<NewAuditRow<'a>>,
}

impl<'a> FinishBatch<'a> {
    /// An empty batch whose rollups go to `shard`.
    pub fn new(shard: i16) -> Self {
        Self {
            shard,
            ..Self::default()
        }
    }

    /// Whether no call is in it.
    pub fn is_empty(&self) -> bool {
        self.id.is_empty()
    }

    /// Adds a call's finish.
    pub fn push(&mut self, call: Finishing<'a>) {
        // Every field named: a column added to `Finish` fails to compile here until it is
        // written here (and in the statement) too.
        let Finish {
            provider,
            model,
            status,
            error_code,
            error_message,
            prompt_tokens,
            cached_prompt_tokens,
            completion_tokens,
            usage_source,
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
        } = call.finish;
        self.id.push(call.id);
        self.provider.push(provider);
        self.model.push(model);
        self.status.push(*status);
        self.error_code.push(error_code.as_deref());
        self.error_message.push(error_message.as_deref());
        self.prompt_tokens.push(*prompt_tokens);
        self.cached_prompt_tokens.push(*cached_prompt_tokens);
        self.completion_tokens.push(*completion_tokens);
        self.usage_source.push(*usage_source);
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
        self.day.push(call.day);
        self.minute.push(call.minute);
        for counter in call.token_counters {
            self.counter_key.push(counter);
            self.counter_call.push(call.id);
        }
        if let Some(row) = call.audit {
            let NewAuditRow {
                at,
                actor_id,
                actor_role,
                operation_name,
                field,
                arguments,
                outcome,
                client_ip,
                user_agent,
                request_id,
            } = row;
            self.audit_call.push(call.id);
            self.audit_at.push(at);
            self.actor_id.push(actor_id);
            self.actor_role.push(actor_role);
            self.operation_name.push(operation_name);
            self.field.push(field);
            self.arguments.push(arguments);
            self.outcome.push(outcome);
            self.client_ip.push(client_ip);
            self.user_agent.push(user_agent);
            self.request_id.push(request_id);
        }
    }
}

/// Writes the batch; returns the id and the `conversation_id` of each row it finished (for
/// [`super::budgets::finished_record`]), in no particular order. A call missing from them was
/// not `PENDING` (already finished, or its `PENDING` row lost) and was written nowhere.
pub async fn finish(
    conn: &mut AsyncPgConnection,
    batch: &FinishBatch<'_>,
) -> QueryResult<Vec<(String, Option<String>)>> {
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    Statement(batch).load(conn).await
}

/// The statement: `WITH v AS (<the finishes, from unnest>), f AS (<the update>), <rollups>,
/// <token counters>, <audit rows> SELECT f.id, f.conversation_id FROM f`.
struct Statement<'s, 'a>(&'s FinishBatch<'a>);

/// Binds each listed column of the batch as an array and names them for `unnest`'s alias.
macro_rules! unnest_columns {
    ($out:ident, $batch:expr, $alias:literal, $first:ident: $first_ty:ty $(, $name:ident: $ty:ty)* $(,)?) => {{
        $out.push_sql("unnest(");
        $out.push_bind_param::<Array<$first_ty>, _>(&$batch.$first)?;
        $(
            $out.push_sql(", ");
            $out.push_bind_param::<Array<$ty>, _>(&$batch.$name)?;
        )*
        $out.push_sql(concat!(") AS ", $alias, "(", stringify!($first) $(, ", ", stringify!($name))*, ")"));
    }};
}
pub(super) use unnest_columns as unnest;

/// The columns of `ai_calls` a finish sets, named as [`FinishBatch`]'s columns.
const FINISHED: [&str; 20] = [
    "provider",
    "model",
    "status",
    "error_code",
    "error_message",
    "prompt_tokens",
    "cached_prompt_tokens",
    "completion_tokens",
    "usage_source",
    "finished_at",
    "latency_ms",
    "ttft_ms",
    "upstream_ms",
    "price_id",
    "cost_micros",
    "currency",
    "priced",
    "cached",
    "attempts",
    "prompt_log",
];

impl QueryFragment<Pg> for Statement<'_, '_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let b = self.0;
        out.push_sql("WITH v AS (SELECT * FROM ");
        unnest!(out, b, "v",
            id: Text,
            provider: Text,
            model: Text,
            status: Text,
            error_code: Nullable<Text>,
            error_message: Nullable<Text>,
            prompt_tokens: BigInt,
            cached_prompt_tokens: BigInt,
            completion_tokens: BigInt,
            usage_source: Nullable<Text>,
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
            day: Text,
            minute: Timestamp,
        );
        out.push_sql("), f AS (UPDATE ai_calls SET ");
        for (i, column) in FINISHED.into_iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            out.push_sql(column);
            out.push_sql(" = v.");
            out.push_sql(column);
        }
        out.push_sql(" FROM v WHERE ai_calls.id = v.id AND ai_calls.status = ");
        out.push_bind_param::<Text, _>(&CallStatus::Pending)?;
        out.push_sql(" RETURNING ");
        FINISHED_COLUMNS.walk_ast(out.reborrow())?;
        out.push_sql(")");
        // In the order of `budgets::in_one`'s statement, so that the tables are written in the
        // same order (PostgreSQL runs these the last first).
        // The rollups of `budgets::in_one`'s statement, summed over the batch's calls.
        for (insert, keys, conflict) in ROLLUPS {
            out.push_sql(insert);
            out.push_sql(
                "requests, prompt_tokens, cached_prompt_tokens, completion_tokens, cost_micros) \
                 SELECT v.day, ",
            );
            out.push_sql(keys);
            out.push_sql(", ");
            out.push_bind_param::<SmallInt, _>(&b.shard)?;
            out.push_sql(
                ", count(*), sum(f.prompt_tokens), sum(f.cached_prompt_tokens), \
                 sum(f.completion_tokens), sum(f.cost_micros) FROM f JOIN v ON v.id = f.id \
                 GROUP BY v.day, ",
            );
            out.push_sql(keys);
            out.push_sql(" ORDER BY v.day, ");
            out.push_sql(keys);
            out.push_sql(" ON CONFLICT (");
            out.push_sql(conflict);
            out.push_sql(SUMS);
        }
        out.push_sql(
            ", spent AS (INSERT INTO rate_counters AS r (key, window_start, count) \
             SELECT k.counter_key, v.minute, sum(f.prompt_tokens + f.completion_tokens) \
             FROM f JOIN v ON v.id = f.id JOIN ",
        );
        unnest!(out, b, "k", counter_key: Text, counter_call: Text);
        out.push_sql(
            " ON k.counter_call = f.id WHERE f.prompt_tokens + f.completion_tokens > 0 \
             GROUP BY k.counter_key, v.minute ORDER BY k.counter_key, v.minute \
             ON CONFLICT (key, window_start) DO UPDATE SET count = r.count + excluded.count)",
        );
        out.push_sql(
            ", audited AS (INSERT INTO audit_log (at, actor_id, actor_role, operation_name, \
             field, arguments, outcome, client_ip, user_agent, request_id) \
             SELECT a.audit_at, a.actor_id, a.actor_role, a.operation_name, a.field, \
             a.arguments, a.outcome, a.client_ip, a.user_agent, a.request_id FROM ",
        );
        unnest!(out, b, "a",
            audit_call: Text,
            audit_at: Timestamp,
            actor_id: Nullable<Text>,
            actor_role: Nullable<Text>,
            operation_name: Nullable<Text>,
            field: Text,
            arguments: Text,
            outcome: Text,
            client_ip: Nullable<Text>,
            user_agent: Nullable<Text>,
            request_id: Text,
        );
        out.push_sql(
            " JOIN f ON f.id = a.audit_call ORDER BY a.audit_at) SELECT f.id, f.conversation_id FROM f",
        );
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
    type SqlType = (Text, Nullable<Text>);
}
