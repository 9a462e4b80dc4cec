//! A PostgreSQL transaction sent in one flight: `BEGIN`, its statements and `COMMIT` pipelined on
//! one connection, so that the database runs them back to back, in one round trip.
//!
//! Why: a row lock taken by a statement is held until the commit. When the client sends `COMMIT`
//! only after it has read the statements' results, the lock is also held for that round trip and
//! for as long as the client's runtime takes to get round to it: on a busy core, milliseconds.
//! Every call under a global budget updates that budget's row to reserve (here) and to settle (in
//! the finish's one statement, `db::budgets::finish_and_settle`), so those milliseconds capped
//! the calls of a whole cluster (`bench/RESULTS.md`). In one flight the lock is held while the
//! rest of the flight runs and the commit is flushed, and no longer.
//!
//! The statements of a flight cannot wait for each other's results, so whatever the transaction
//! must decide is decided in SQL: a budget without room raises an error
//! (`cloudbase_budget_full`), which aborts the transaction, and its `COMMIT` then rolls it back.
//!
//! While a flight is out, the connection's transaction manager is marked broken ([`take_off`]).
//! A flight dropped halfway (its request cancelled before the `COMMIT` was sent) leaves it so,
//! and the pool discards the connection instead of lending out one whose transaction is open.
//! [`landed`] marks it sound again once the `COMMIT` (or the `ROLLBACK` it became) is done.

use diesel::connection::TransactionManagerStatus;
use diesel::pg::Pg;
use diesel::query_builder::{QueryFragment, QueryId};
use diesel::result::{Error as DieselError, QueryResult};
use diesel_async::{AnsiTransactionManager, AsyncPgConnection, TransactionManager};

use super::fixed::fixed_shape;

/// The flight's first statement, kept prepared like the rest (a statement prepared again on
/// every run is sent only once its preparation is answered: the flight would take two round
/// trips).
pub(crate) fn begin() -> impl QueryFragment<Pg> + QueryId + Send {
    fixed_shape!(diesel::sql_query("BEGIN"))
}

/// The flight's last statement: it commits, or, after an error in the flight, rolls back.
pub(crate) fn commit() -> impl QueryFragment<Pg> + QueryId + Send {
    fixed_shape!(diesel::sql_query("COMMIT"))
}

fn status(conn: &mut AsyncPgConnection) -> &mut TransactionManagerStatus {
    <AnsiTransactionManager as TransactionManager<AsyncPgConnection>>::transaction_manager_status_mut(
        conn,
    )
}

/// Whether `conn` is inside a transaction (or in a state that cannot say: taken as yes).
pub(crate) fn in_transaction(conn: &mut AsyncPgConnection) -> bool {
    !matches!(status(conn).transaction_depth(), Ok(None))
}

/// Marks `conn` broken until [`landed`]. A flight opens its own transaction: it may not start
/// inside another.
pub(crate) fn take_off(conn: &mut AsyncPgConnection) -> QueryResult<()> {
    let status = status(conn);
    if status.transaction_depth()?.is_some() {
        return Err(DieselError::AlreadyInTransaction);
    }
    status.set_in_error();
    Ok(())
}

/// Marks `conn` sound again when the flight's `COMMIT` ran (`committed` is its result). A
/// `COMMIT` that failed leaves the transaction's state unknown: the connection stays broken.
pub(crate) fn landed(conn: &mut AsyncPgConnection, committed: &QueryResult<usize>) {
    if committed.is_ok() {
        *status(conn) = TransactionManagerStatus::default();
    }
}

/// Whether `error` is a budget's refusal raised inside a flight (`cloudbase_budget_full`).
pub(crate) fn budget_full(error: &DieselError) -> bool {
    matches!(error, DieselError::DatabaseError(_, info) if info.hint() == Some(BUDGET_FULL_HINT))
}

/// The hint `cloudbase_budget_full` raises its error with (migration `2026-12-03-000021`).
const BUDGET_FULL_HINT: &str = "cloudbase_budget_full";
