//! PostgreSQL: the `PENDING` records of concurrent calls written together ([`super::batches`]).
//!
//! A call with no budget opens its record with one insert that does not wait for the disk
//! ([`crate::db::ai_calls::insert_pending`]). Calls that open at the same moment queue here
//! instead, and a batch is one statement ([`crate::db::pending_batch`]) under the same rule. A
//! call the batch did not insert (the batch failed) comes back to its caller, which inserts it
//! on its own as before. A call with budgets is admitted with its reservations instead
//! ([`super::admissions`]).

use diesel::QueryResult;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::batches::{Batch, Queue};
use crate::db::models::AiCall;
use crate::db::{ai_calls, pending_batch};

/// The queue of `PENDING` inserts.
pub type Pendings = Queue<Pending>;

/// `PENDING` inserts, as a kind of batch.
pub struct Pending;

impl Batch for Pending {
    type Item = AiCall;
    type Out = ();
    const WHAT: &'static str = "pending records";

    fn key(item: &AiCall) -> &str {
        &item.id
    }

    async fn write(
        conn: &mut AsyncPgConnection,
        items: &[&AiCall],
    ) -> QueryResult<Vec<(String, ())>> {
        let inserted = pending_batch::insert(conn, items).await?;
        Ok(inserted.into_iter().map(|(id, _)| (id, ())).collect())
    }

    async fn write_one(conn: &mut AsyncPgConnection, call: &AiCall) -> QueryResult<Option<()>> {
        ai_calls::insert_pending_statement(call)
            .get_result::<String>(conn)
            .await
            .map(|_| Some(()))
    }
}
