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

/// Admits `calls` in one transaction sent in one flight, or none of them ([`Flown`]); an error is
/// a flight that kept nothing. The commit does not wait for the disk, so the budgets'
/// rows are released at once; the flush is waited for after it ([`flight::flushed`]), as for a
/// call admitted alone.
pub async fn insert_and_reserve<'c>(
    conn: &mut AsyncPgConnection,
    calls: &[Admitting<'c>],
) -> QueryResult<Flown<'c>> {
    in_one_flight(conn, calls).await
}

/// How a flight of admissions ended, when it did not fail with nothing kept.
#[derive(Debug)]
pub enum Flown<'c> {
    /// Every call is recorded and reserved, and on disk.
    Admitted,
    /// The budget with this id had no room for what the calls want of it: nothing was kept.
    Refused(&'c str),
    /// The transaction was committed (or may have been), but the wait for it to reach the disk
    /// failed: the calls must not go on, nor be admitted again (their records may exist). What
    /// it kept is released by the sweep of expired reservations.
    Unsure(diesel::result::Error),
}

/// The flight of [`insert_and_reserve`], and of a call admitted alone
/// ([`super::budgets::insert_and_reserve_in_one_flight`], whose record is inserted by its own
/// one-row statement): `BEGIN`, the records, each budget's update by the sum of what the calls
/// want of it, the reservations, `COMMIT`, the flush.
///
/// The updates come before the reservations' inserts: each insert's foreign key then locks
/// (`FOR KEY SHARE`) a budget row this transaction already holds, which costs nothing. Inserted
/// first, every call's check would share the row of a budget all calls update with the call
/// updating it at that moment, a multixact each time, and its own update would then wait on
/// that one and check the row again.
pub(super) async fn in_one_flight<'c>(
    conn: &mut AsyncPgConnection,
    calls: &[Admitting<'c>],
) -> QueryResult<Flown<'c>> {
    let mut sums: BTreeMap<&'c str, Sum> = BTreeMap::new();
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
    // A batch's records as one statement; one call's by its own one-row statement, cheaper for
    // the database.
    let records = (calls.len() != 1)
        .then(|| Records::of(&calls.iter().map(|a| a.call).collect::<Vec<&AiCall>>()));
    flight::take_off(conn)?;
    let mut c: &AsyncPgConnection = conn;
    let begun = flight::begin().execute(&mut c);
    // Either returns the setting that turns the transaction's wait for the disk off
    // (`flight::ASYNC_COMMIT`).
    let inserted: futures_util::future::BoxFuture<'_, QueryResult<usize>> = match (calls, &records)
    {
        ([one], _) => Box::pin(super::ai_calls::insert_pending_statement(one.call).execute(&mut c)),
        (_, Some(records)) => Box::pin(records.statement().execute(&mut c)),
        // Not reached (one call or a batch); were it, the count below would refuse the flight.
        (_, None) => Box::pin(std::future::ready(Ok(0))),
    };
    // In id order (a `BTreeMap`), the order every other admission and settlement locks them in.
    let reserved = futures_util::future::join_all(sums.iter().map(|(id, sum)| {
        reserve_or_raise_statement(id, sum.micros, sum.tokens, sum.requests).execute(&mut c)
    }));
    let held = InsertReservations(&reservations).execute(&mut c);
    let committed = flight::commit().execute(&mut c);
    let flushed = flight::flushed().execute(&mut c);
    // The statements reach PostgreSQL in the order their futures are first polled (as written):
    // diesel-async sends each in the poll that finds it prepared, and a first prepare holds the
    // statement cache's lock, which waiters take in turn. So the reservations (whose foreign keys
    // name the calls and the budgets) never arrive before the records and the updates, nor the
    // `COMMIT` before them. Every statement is waited for, also after a failure: none is left in
    // flight.
    let (begun, inserted, reserved, held, committed, flushed) =
        futures_util::join!(begun, inserted, reserved, held, committed, flushed);
    flight::landed(conn, [&committed]);
    begun?;
    let inserted = inserted?;
    // The updates first: after a refusal, the statements behind it fail as the transaction's.
    for (r, id) in reserved.into_iter().zip(sums.keys()) {
        match r {
            Ok(1) => {}
            // The budget is gone (deleted since it was read).
            Ok(_) => return Err(diesel::result::Error::NotFound),
            Err(e) if flight::budget_full(&e) => return Ok(Flown::Refused(id)),
            Err(e) => return Err(e),
        }
    }
    held?;
    // Every statement ran: from here on the transaction is, or may be, committed.
    if let Err(e) = committed {
        return Ok(Flown::Unsure(e));
    }
    if inserted != calls.len() {
        // Cannot happen (the insert writes every row or fails); were it so, the commit kept the
        // reservations of calls without a record: report it rather than admit them.
        return Ok(Flown::Unsure(diesel::result::Error::NotFound));
    }
    // Admitted once it is on disk: the calls may spend then.
    Ok(match flushed {
        Ok(_) => Flown::Admitted,
        Err(e) => Flown::Unsure(e),
    })
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
