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
use crate::db::admission_batch::{self, Admitting, Flown};
use crate::db::budgets::refused_index;
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

/// How a call's admission through the queue ended.
#[derive(Debug)]
pub enum Admitted {
    /// Recorded and reserved, on disk.
    Yes,
    /// Refused for lack of room in `planned.wanted[i]` (a call admitted alone).
    Refused(usize),
    /// Committed, or perhaps so, without the flush confirmed: the call fails, and is not admitted
    /// again (its record may exist; the sweep of expired reservations releases what it holds).
    Unsure(String),
}

impl Batch for Admission {
    type Item = ToAdmit;
    type Out = Admitted;
    const WHAT: &'static str = "admissions under budgets";

    fn key(item: &ToAdmit) -> &str {
        &item.call.id
    }

    fn written(out: &Admitted) -> bool {
        !matches!(out, Admitted::Refused(_))
    }

    async fn write(
        conn: &mut AsyncPgConnection,
        items: &[&ToAdmit],
    ) -> QueryResult<Vec<(String, Admitted)>> {
        let calls: Vec<Admitting<'_>> = items
            .iter()
            .map(|item| Admitting {
                call: &item.call,
                wanted: &item.planned.wanted,
            })
            .collect();
        let each = |out: &dyn Fn() -> Admitted| {
            items
                .iter()
                .map(|item| (item.call.id.clone(), out()))
                .collect()
        };
        Ok(
            match admission_batch::insert_and_reserve(conn, &calls).await? {
                Flown::Admitted => each(&|| Admitted::Yes),
                // A budget had no room for the batch: each call on its own.
                Flown::Refused(_) => Vec::new(),
                // Not given back: the calls may be recorded already.
                Flown::Unsure(e) => each(&|| Admitted::Unsure(e.to_string())),
            },
        )
    }

    async fn write_one(
        conn: &mut AsyncPgConnection,
        item: &ToAdmit,
    ) -> QueryResult<Option<Admitted>> {
        let wanted = &item.planned.wanted;
        let alone = [Admitting {
            call: &item.call,
            wanted,
        }];
        Ok(Some(
            match admission_batch::insert_and_reserve(conn, &alone).await? {
                Flown::Admitted => Admitted::Yes,
                Flown::Refused(full) => Admitted::Refused(refused_index(wanted, full)),
                Flown::Unsure(e) => Admitted::Unsure(e.to_string()),
            },
        ))
    }
}
