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
use diesel::sql_types::{Array, Bool, Nullable, Text, Timestamp};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::finish_batch::unnest;
use super::models::{AiCall, PendingRow};
use crate::domain::CallStatus;

/// The records of a batch of calls, a column each: the columns of [`PendingRow`], but for the
/// status, which is `PENDING` for every one of them and written as such.
#[derive(Default)]
struct Columns<'a> {
    id: Vec<&'a str>,
    user_id: Vec<&'a str>,
    conversation_id: Vec<Option<&'a str>>,
    request_id: Vec<Option<&'a str>>,
    provider: Vec<&'a str>,
    model: Vec<&'a str>,
    stream: Vec<bool>,
    started_at: Vec<NaiveDateTime>,
    api_key_id: Vec<Option<&'a str>>,
}

impl<'a> Columns<'a> {
    fn push(&mut self, call: &'a AiCall) {
        // Every field named: a column added to `PendingRow` fails to compile here until it is
        // written here (and in the statement) too.
        let PendingRow {
            id,
            user_id,
            conversation_id,
            request_id,
            provider,
            model,
            stream,
            // `PENDING` for every new call: written as a literal.
            status: _,
            started_at,
            api_key_id,
        } = call.pending_row();
        self.id.push(id);
        self.user_id.push(user_id);
        self.conversation_id.push(conversation_id);
        self.request_id.push(request_id);
        self.provider.push(provider);
        self.model.push(model);
        self.stream.push(stream);
        self.started_at.push(started_at);
        self.api_key_id.push(api_key_id);
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
    let records = Records::of(calls);
    records.statement().load(conn).await
}

/// The columns of a batch of calls' records, for [`Records::statement`].
pub(crate) struct Records<'a>(Columns<'a>);

impl<'a> Records<'a> {
    /// `calls`' records, a column each.
    pub(crate) fn of(calls: &[&'a AiCall]) -> Self {
        let mut columns = Columns::default();
        for call in calls {
            columns.push(call);
        }
        Self(columns)
    }

    /// [`insert`]'s statement, for a flight of its own (`db::admission_batch`): inside a
    /// transaction, the setting it returns lasts until that transaction's commit.
    pub(crate) fn statement(
        &self,
    ) -> impl Query<SqlType = (Text, Text)> + QueryFragment<Pg> + QueryId + Send + '_ {
        Statement(&self.0)
    }
}

/// `INSERT INTO ai_calls (<columns>) SELECT <columns> FROM unnest(<arrays>) RETURNING id`, with
/// `synchronous_commit` off for the statement's transaction.
struct Statement<'s, 'a>(&'s Columns<'a>);

/// The columns of `ai_calls` the statement writes from [`Columns`], named as its fields, in the
/// order `unnest` binds them; the others are the table's defaults ([`AiCall::pending_row`]).
const COLUMNS: &str =
    "id, user_id, conversation_id, request_id, provider, model, stream, started_at, api_key_id";

impl QueryFragment<Pg> for Statement<'_, '_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let b = self.0;
        out.push_sql("INSERT INTO ai_calls (");
        out.push_sql(COLUMNS);
        out.push_sql(", status) SELECT ");
        out.push_sql(COLUMNS);
        out.push_sql(", '");
        out.push_sql(CallStatus::Pending.as_str());
        out.push_sql("' FROM ");
        unnest!(out, b, "v",
            id: Text,
            user_id: Text,
            conversation_id: Nullable<Text>,
            request_id: Nullable<Text>,
            provider: Text,
            model: Text,
            stream: Bool,
            started_at: Timestamp,
            api_key_id: Nullable<Text>,
        );
        // Read at the commit of the statement's own transaction (`ai_calls::insert_pending`).
        out.push_sql(" RETURNING id, ");
        out.push_sql(super::flight::ASYNC_COMMIT);
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
