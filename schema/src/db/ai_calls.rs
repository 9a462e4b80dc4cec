//! Queries on `ai_calls`.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::fixed::fixed_shape;
use super::models::AiCall;
use super::schema::ai_calls;
use super::{DbConn, db_run};
use crate::domain::{CallStatus, UsageSource};

/// Inserts a call record.
pub async fn insert(conn: &mut DbConn, call: &AiCall) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::insert_into(ai_calls::table)
            .values(call)
            .execute(c)
            .await
    })
}

/// Inserts a call's `PENDING` record, in a statement of its own (never inside a transaction).
///
/// On PostgreSQL its commit does not wait for the write-ahead log to reach the disk: the
/// statement turns `synchronous_commit` off for its own implicit transaction only
/// (`set_config(…, true)` in its `RETURNING`, read when that transaction commits). Nothing is
/// acknowledged on the strength of this row alone. The call's finish commits synchronously, and
/// the log is flushed in order, so a finished record is durable with its insert. What a crash of
/// the database can lose is the `PENDING` row of a call still in flight, and its finish then
/// writes it again (`services::chat::record`). A call with budgets is admitted in a transaction
/// of its own whose flush to disk it waits for before it goes on (`db::budgets`): a reservation
/// is never lost.
pub async fn insert_pending(conn: &mut DbConn, call: &AiCall) -> QueryResult<()> {
    match conn {
        DbConn::Pg(c) => {
            let c: &mut diesel_async::AsyncPgConnection = c;
            if super::flight::in_transaction(c) {
                // The setting would last until that transaction's commit: not ours to change.
                return fixed_shape!(
                    diesel::insert_into(ai_calls::table).values(call.pending_row())
                )
                .execute(c)
                .await
                .map(drop);
            }
            insert_pending_statement(call)
                .get_result::<String>(c)
                .await
                .map(drop)
        }
        DbConn::Sqlite(obj, _) => {
            // Diesel's own statement, found in the cache by its static id: through the async
            // wrapper it would build its SQL text first (`db::budgets`, the finish, says more).
            let c: &mut super::SqliteConn = obj;
            let call = call.clone();
            c.spawn_blocking(move |c| {
                let insert =
                    fixed_shape!(diesel::insert_into(ai_calls::table).values(call.pending_row()));
                super::fixed::run_on_sqlite(c, insert)
            })
            .await
        }
    }
}

/// The insert of [`insert_pending`] on PostgreSQL, kept prepared (the `RETURNING`'s SQL literal
/// alone would have diesel prepare it again on every run).
pub(crate) fn insert_pending_statement(
    call: &AiCall,
) -> impl diesel::query_builder::Query<SqlType = diesel::sql_types::Text>
+ diesel::query_builder::QueryFragment<diesel::pg::Pg>
+ diesel::query_builder::QueryId
+ Send
+ '_ {
    fixed_shape!(
        diesel::insert_into(ai_calls::table)
            .values(call.pending_row())
            .returning(diesel::dsl::sql::<diesel::sql_types::Text>(
                super::flight::ASYNC_COMMIT
            )),
    )
}

/// How a call ended.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = ai_calls, treat_none_as_null = true)]
pub struct Finish {
    /// The provider that answered (the last of the attempt chain).
    pub provider: String,
    /// The model that answered.
    pub model: String,
    /// `Succeeded`, `Failed` or `Cancelled`.
    pub status: CallStatus,
    /// The error code.
    pub error_code: Option<String>,
    /// The error message.
    pub error_message: Option<String>,
    /// Input tokens.
    pub prompt_tokens: i64,
    /// Cached input tokens.
    pub cached_prompt_tokens: i64,
    /// Output tokens.
    pub completion_tokens: i64,
    /// Reported or estimated.
    pub usage_source: Option<UsageSource>,
    /// UTC.
    pub finished_at: Option<NaiveDateTime>,
    /// Total time.
    pub latency_ms: Option<i64>,
    /// Time to first token.
    pub ttft_ms: Option<i64>,
    /// Time on the provider.
    pub upstream_ms: Option<i64>,
    /// The price row used.
    pub price_id: Option<String>,
    /// The cost.
    pub cost_micros: i64,
    /// Its currency.
    pub currency: Option<String>,
    /// Whether a price was in force.
    pub priced: bool,
    /// Served from the response cache.
    pub cached: bool,
    /// The attempt chain.
    pub attempts: serde_json::Value,
    /// Prompt and reply, with prompt logging on.
    pub prompt_log: Option<serde_json::Value>,
}

impl Finish {
    /// The record `call` (`PENDING`) becomes when this finish is written over it: each of these
    /// columns is set, a `None` to null (`treat_none_as_null`), and the others kept.
    pub fn applied_to(self, call: AiCall) -> AiCall {
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
        } = self;
        AiCall {
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
            ..call
        }
    }
}

/// One call.
pub async fn find(conn: &mut DbConn, id: &str) -> QueryResult<AiCall> {
    db_run!(conn, |c| {
        ai_calls::table
            .find(id)
            .select(AiCall::as_select())
            .get_result(c)
            .await
    })
}

/// Whether a call record with this id exists.
pub async fn exists(conn: &mut DbConn, id: &str) -> QueryResult<bool> {
    db_run!(conn, |c| {
        diesel::select(diesel::dsl::exists(ai_calls::table.find(id)))
            .get_result(c)
            .await
    })
}

/// Filters for a page of calls; `None` means any.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Only this user's calls.
    pub user_id: Option<String>,
    /// Only this provider instance.
    pub provider: Option<String>,
    /// Only this model.
    pub model: Option<String>,
    /// Only this API key's calls.
    pub api_key_id: Option<String>,
    /// Only this status.
    pub status: Option<CallStatus>,
    /// Started at or after.
    pub from: Option<NaiveDateTime>,
    /// Started before.
    pub to: Option<NaiveDateTime>,
}

/// Calls matching `filter`, newest first, with ids below `before` (the cursor).
pub async fn page(
    conn: &mut DbConn,
    filter: &Filter,
    before: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<AiCall>> {
    db_run!(conn, |c| {
        let mut query = ai_calls::table
            .select(AiCall::as_select())
            .order(ai_calls::id.desc())
            .limit(limit)
            .into_boxed();
        if let Some(v) = &filter.user_id {
            query = query.filter(ai_calls::user_id.eq(v));
        }
        if let Some(v) = &filter.provider {
            query = query.filter(ai_calls::provider.eq(v));
        }
        if let Some(v) = &filter.model {
            query = query.filter(ai_calls::model.eq(v));
        }
        if let Some(v) = &filter.api_key_id {
            query = query.filter(ai_calls::api_key_id.eq(v));
        }
        if let Some(v) = &filter.status {
            query = query.filter(ai_calls::status.eq(v));
        }
        if let Some(v) = filter.from {
            query = query.filter(ai_calls::started_at.ge(v));
        }
        if let Some(v) = filter.to {
            query = query.filter(ai_calls::started_at.lt(v));
        }
        if let Some(b) = before {
            query = query.filter(ai_calls::id.lt(b));
        }
        query.load(c).await
    })
}

/// Up to `limit` calls still `PENDING` that started before `before`, oldest first (through the
/// partial index of `PENDING` calls, which needs the status written out, not bound).
pub async fn stale_pending(
    conn: &mut DbConn,
    before: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<AiCall>> {
    db_run!(conn, |c| {
        ai_calls::table
            .filter(diesel::dsl::sql::<diesel::sql_types::Bool>(
                "ai_calls.status = 'PENDING'",
            ))
            .filter(ai_calls::started_at.lt(before))
            .order(ai_calls::started_at.asc())
            .select(AiCall::as_select())
            .limit(limit)
            .load(c)
            .await
    })
}

/// Those of `ids` still `PENDING`.
pub async fn pending_among(conn: &mut DbConn, ids: &[String]) -> QueryResult<Vec<AiCall>> {
    db_run!(conn, |c| {
        ai_calls::table
            .filter(ai_calls::id.eq_any(ids))
            .filter(ai_calls::status.eq(CallStatus::Pending))
            .select(AiCall::as_select())
            .load(c)
            .await
    })
}

/// Deletes up to `limit` finished calls that started before `cutoff`.
pub async fn delete_finished_before(
    conn: &mut DbConn,
    cutoff: NaiveDateTime,
    limit: i64,
) -> QueryResult<usize> {
    db_run!(conn, |c| {
        let ids: Vec<String> = ai_calls::table
            .filter(ai_calls::started_at.lt(cutoff))
            .filter(ai_calls::status.ne(CallStatus::Pending))
            .select(ai_calls::id)
            .limit(limit)
            .load(c)
            .await?;
        diesel::delete(ai_calls::table.filter(ai_calls::id.eq_any(&ids)))
            .execute(c)
            .await
    })
}
