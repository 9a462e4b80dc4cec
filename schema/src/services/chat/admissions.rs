//! PostgreSQL: the admissions of concurrent calls under budgets written together
//! ([`super::batches`]).
//!
//! A call under budgets is admitted in a transaction of its own: its `PENDING` record, an update
//! of each of its budgets, its reservations ([`crate::db::budgets::insert_and_reserve_in_one_flight`]).
//! Calls admitted at the same moment queue here instead, and a batch is one transaction
//! ([`crate::db::admission_batch`]) that updates each budget once, by the sum of what its calls
//! want. A batch that a budget has no room for keeps nothing, and each of its calls comes back to
//! its caller, which is admitted (or refused) on its own as before: what fits is decided call by
//! call.

use diesel::QueryResult;
use diesel_async::AsyncPgConnection;

use super::batches::{Batch, Queue};
use crate::db::admission_batch::{self, Admitting};
use crate::db::budgets::insert_and_reserve_in_one_flight;
use crate::db::models::AiCall;
use crate::services::budgets::Planned;

/// The queue of admissions under budgets.
pub type Admissions = Queue<Admission>;

/// Admissions under budgets, as a kind of batch.
pub struct Admission;

/// A call to admit, and what it wants of its budgets.
#[derive(Debug)]
pub struct ToAdmit {
    /// Its `PENDING` record.
    pub call: AiCall,
    /// Its reservations.
    pub planned: Planned,
}

impl Batch for Admission {
    type Item = ToAdmit;
    /// `Some(i)`: refused for lack of room in `planned.wanted[i]` (a call admitted alone).
    type Out = Option<usize>;
    const WHAT: &'static str = "admissions under budgets";

    fn key(item: &ToAdmit) -> &str {
        &item.call.id
    }

    async fn write(
        conn: &mut AsyncPgConnection,
        items: &[&ToAdmit],
    ) -> QueryResult<Vec<(String, Option<usize>)>> {
        let calls: Vec<Admitting<'_>> = items
            .iter()
            .map(|item| Admitting {
                call: &item.call,
                wanted: &item.planned.wanted,
            })
            .collect();
        Ok(
            if admission_batch::insert_and_reserve(conn, &calls).await? {
                items
                    .iter()
                    .map(|item| (item.call.id.clone(), None))
                    .collect()
            } else {
                // A budget had no room for the batch: each call on its own.
                Vec::new()
            },
        )
    }

    async fn write_one(
        conn: &mut AsyncPgConnection,
        item: &ToAdmit,
    ) -> QueryResult<Option<Option<usize>>> {
        insert_and_reserve_in_one_flight(conn, &item.call, &item.planned.wanted)
            .await
            .map(Some)
    }
}
