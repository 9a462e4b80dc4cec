//! PostgreSQL: the finishes of concurrent calls written together ([`super::batches`]).
//!
//! A call with no budget to settle and no conversation turn to append finishes with one
//! statement ([`crate::db::budgets::finish_and_add_to_daily`]) and one durable commit. Calls that
//! finish at the same moment each paid for their own commit and updated the same rollup rows one
//! after another. Here they queue instead, and a batch is written as one statement
//! ([`crate::db::finish_batch`]) that tells each caller its call was finished, with the row's
//! `conversation_id` (the caller makes the record: [`crate::db::budgets::finished_record`]).
//! A call the batch did not
//! finish (the batch failed, or the call was not `PENDING`) comes back to its caller, which
//! finishes it on its own as before.

use chrono::NaiveDateTime;
use diesel::QueryResult;
use diesel_async::AsyncPgConnection;

use super::batches::{Batch, Queue};
use crate::db::finish_batch::{self, FinishBatch, Finishing};
use crate::db::{ai_calls, budgets};
use crate::services::audit;

/// The queue of finishes.
pub type Finishes = Queue<Finish>;

/// Finishes, as a kind of batch.
pub struct Finish;

/// A call's finish as it waits in the queue: what a single finish takes, owned.
pub struct Queued {
    /// The call.
    pub id: String,
    /// How it ended.
    pub finish: ai_calls::Finish,
    /// Its rollups' day.
    pub day: String,
    /// The start of the minute it finished in.
    pub minute: NaiveDateTime,
    /// The token counters its tokens go to.
    pub token_counters: Vec<String>,
    /// The mutation's audit entry, written with it.
    pub audit: Option<audit::Stored>,
}

impl Batch for Finish {
    type Item = Queued;
    /// The finished row's `conversation_id`.
    type Out = Option<String>;
    const WHAT: &'static str = "finishes";

    fn key(item: &Queued) -> &str {
        &item.id
    }

    async fn write(
        conn: &mut AsyncPgConnection,
        items: &[&Queued],
    ) -> QueryResult<Vec<(String, Option<String>)>> {
        let mut batch = FinishBatch::new(budgets::shard());
        for call in items {
            batch.push(Finishing {
                id: &call.id,
                finish: &call.finish,
                day: &call.day,
                minute: call.minute,
                token_counters: &call.token_counters,
                audit: call.audit.as_ref().map(audit::Stored::row),
            });
        }
        finish_batch::finish(conn, &batch).await
    }

    async fn write_one(
        conn: &mut AsyncPgConnection,
        call: &Queued,
    ) -> QueryResult<Option<Option<String>>> {
        let add_to = budgets::AddTo {
            day: &call.day,
            token_counters: &call.token_counters,
            minute: call.minute,
        };
        let audit = call.audit.as_ref().map(audit::Stored::row);
        budgets::finish_and_add_to_daily_pg(conn, &call.id, &call.finish, &add_to, audit.as_ref())
            .await
    }
}
