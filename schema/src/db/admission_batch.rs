//! PostgreSQL: the admissions of several calls under budgets as **one flight**.
//!
//! A call under budgets is admitted in a transaction of its own
//! ([`super::budgets::insert_and_reserve_in_one_flight`]): its `PENDING` insert, an update of
//! each of its budgets, its reservations, `COMMIT` and the wait for the flush, seven statements.
//! Every call under a budget updates that budget's row, so the calls of a whole cluster pass
//! through it one at a time, and at 32 calls in flight the database's own work per statement is
//! what limits them (`bench/RESULTS.md`, "2026-12-05, night"). [`insert_and_reserve`] admits the
//! calls queued together (`services::chat::admissions`) in one transaction, sent in one flight:
//! `BEGIN`, their inserts as one statement, **each budget updated once** by the sum of what the
//! calls want of it (in id order, as every admission and settlement takes them), their
//! reservations as one statement, `COMMIT` and the flush: six statements for the batch.
//!
//! A budget that has no room for the sum refuses the whole batch, which then keeps nothing: each
//! of its calls is admitted on its own as before, which says exactly which ones fit. So a batch
//! never admits a call its budgets could not hold, nor refuses one they could.

use chrono::NaiveDateTime;
use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Text, Timestamp};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use std::collections::BTreeMap;

use super::budgets::reserve_or_raise_statement;
use super::finish_batch::unnest;
use super::flight;
use super::models::{AiCall, Reservation};
use super::pending_batch::Records;

/// One call of a batch: its record and what it wants of each budget.
pub struct Admitting<'a> {
    /// The `PENDING` record.
    pub call: &'a AiCall,
    /// Its reservations, one per budget.
    pub wanted: &'a [Reservation],
}

/// What the calls of a batch want of one budget, summed.
#[derive(Default, Clone, Copy)]
struct Sum {
    micros: i64,
    tokens: i64,
    requests: i64,
}

/// Admits `calls` in one transaction sent in one flight, or none of them: `Ok(true)` when every
/// call is recorded and reserved and the commit is on disk; `Ok(false)` when a budget had no room
/// for the batch's sum (nothing was kept). The commit does not wait for the disk, so the budgets'
/// rows are released at once; the flush is waited for after it ([`flight::flushed`]), as for a
/// call admitted alone.
pub async fn insert_and_reserve(
    conn: &mut AsyncPgConnection,
    calls: &[Admitting<'_>],
) -> QueryResult<bool> {
    let mut sums: BTreeMap<&str, Sum> = BTreeMap::new();
    let mut reservations = Reservations::default();
    for admitting in calls {
        for r in admitting.wanted {
            let sum = sums.entry(&r.budget_id).or_default();
            // Checked: a sum past i64 (absurd limits) fails the batch, and each call then
            // reserves its own amount alone.
            sum.micros = checked(sum.micros.checked_add(r.amount_micros))?;
            sum.tokens = checked(sum.tokens.checked_add(r.tokens))?;
            sum.requests = checked(sum.requests.checked_add(r.requests))?;
            reservations.push(r);
        }
    }
    let records: Vec<&AiCall> = calls.iter().map(|a| a.call).collect();
    let records = Records::of(&records);
    flight::take_off(conn)?;
    let mut c: &AsyncPgConnection = conn;
    let begun = flight::begin().execute(&mut c);
    // Its `RETURNING` turns the transaction's wait for the disk off (`flight::ASYNC_COMMIT`).
    let inserted = records.statement().load::<(String, String)>(&mut c);
    // In id order (a `BTreeMap`), the order every other admission and settlement locks them in.
    let reserved = futures_util::future::join_all(sums.iter().map(|(id, sum)| {
        reserve_or_raise_statement(id, sum.micros, sum.tokens, sum.requests).execute(&mut c)
    }));
    let held = InsertReservations(&reservations).execute(&mut c);
    let committed = flight::commit().execute(&mut c);
    let flushed = flight::flushed().execute(&mut c);
    // Sent in the order written (`budgets::insert_and_reserve_in_one_flight` says why), and
    // every statement waited for.
    let (begun, inserted, reserved, held, committed, flushed) =
        futures_util::join!(begun, inserted, reserved, held, committed, flushed);
    flight::landed(conn, [&committed]);
    begun?;
    let inserted = inserted?;
    // The updates first: after a refusal, the statements behind it fail as the transaction's.
    for r in reserved {
        match r {
            Ok(1) => {}
            // A budget is gone (deleted since it was read): each call finds out on its own.
            Ok(_) => return Ok(false),
            Err(e) if flight::budget_full(&e) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    held?;
    committed?;
    if inserted.len() != calls.len() {
        // Cannot happen (the insert writes every row or fails); were it so, the commit kept the
        // reservations of calls without a record: report it rather than admit them.
        return Err(diesel::result::Error::NotFound);
    }
    flushed.map(|_| true)
}

fn checked(sum: Option<i64>) -> QueryResult<i64> {
    sum.ok_or_else(|| diesel::result::Error::SerializationError("a batch's sum overflowed".into()))
}

/// The reservations of a batch, a column each.
#[derive(Default)]
struct Reservations<'a> {
    ai_call_id: Vec<&'a str>,
    budget_id: Vec<&'a str>,
    amount_micros: Vec<i64>,
    tokens: Vec<i64>,
    requests: Vec<i64>,
    expires_at: Vec<NaiveDateTime>,
}

impl<'a> Reservations<'a> {
    fn push(&mut self, r: &'a Reservation) {
        // Every field named: a column added to `Reservation` fails to compile here until it is
        // written here (and in the statement) too.
        let Reservation {
            ai_call_id,
            budget_id,
            amount_micros,
            tokens,
            requests,
            expires_at,
        } = r;
        self.ai_call_id.push(ai_call_id);
        self.budget_id.push(budget_id);
        self.amount_micros.push(*amount_micros);
        self.tokens.push(*tokens);
        self.requests.push(*requests);
        self.expires_at.push(*expires_at);
    }
}

/// `INSERT INTO budget_reservations (<columns>) SELECT <columns> FROM unnest(<arrays>)`: one
/// text whatever the batch's size, so it is prepared once per connection.
struct InsertReservations<'s, 'a>(&'s Reservations<'a>);

impl QueryFragment<Pg> for InsertReservations<'_, '_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let b = self.0;
        out.push_sql(
            "INSERT INTO budget_reservations \
             (ai_call_id, budget_id, amount_micros, tokens, requests, expires_at) \
             SELECT ai_call_id, budget_id, amount_micros, tokens, requests, expires_at FROM ",
        );
        unnest!(out, b, "v",
            ai_call_id: Text,
            budget_id: Text,
            amount_micros: BigInt,
            tokens: BigInt,
            requests: BigInt,
            expires_at: Timestamp,
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

impl QueryId for InsertReservations<'_, '_> {
    type QueryId = InsertReservationsId;
    const HAS_STATIC_QUERY_ID: bool = true;
}

/// [`InsertReservations`]' id in the statement cache.
struct InsertReservationsId;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::fixed::kept_prepared;

    #[test]
    fn the_reservations_insert_stays_prepared() {
        let columns = Reservations::default();
        assert!(kept_prepared(&InsertReservations(&columns), &Pg));
    }
}
