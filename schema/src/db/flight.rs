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

/// Right after [`begin`]: the transaction's commit does not wait for the write-ahead log to reach
/// the disk. Its row locks are then released as soon as it commits, instead of after the flush
/// (on this machine's disk about 1 to 2 ms, during which every other call waiting for the same
/// row waits too: a budget, or a user's rate counter, is one row for all their calls). Where the
/// transaction must be durable before anyone is told, [`flushed`] follows its `COMMIT` in the
/// flight.
///
/// Others may see the transaction before it is on disk. Nothing durable can depend on it: a later
/// transaction that read or changed its rows commits later in the log, so a crash that loses this
/// one loses that one too, unless it was itself flushed, which flushes this one first.
pub(crate) fn commit_without_waiting() -> impl QueryFragment<Pg> + QueryId + Send {
    fixed_shape!(diesel::sql_query("SET LOCAL synchronous_commit TO off"))
}

/// After the `COMMIT` of a transaction begun with [`commit_without_waiting`]: returns once the
/// write-ahead log is on disk up to that commit, so the transaction is durable when this
/// statement's result is. It is a transaction of its own that writes one record to the log (a
/// logical decoding message, which only a logical decoding client that asks for messages ever
/// reads) and commits as every transaction does here, waiting for its record, and everything
/// logged before it, to be flushed. The wait is shared with the other commits flushed at the
/// same moment, and no row is locked during it.
pub(crate) fn flushed() -> impl QueryFragment<Pg> + QueryId + Send {
    fixed_shape!(diesel::sql_query(
        "SELECT pg_logical_emit_message(true, 'cloudbase', '')"
    ))
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

/// Marks `conn` sound again when the flight's `COMMIT`s ran (`committed`: each one's result). A
/// `COMMIT` that failed leaves its transaction's state unknown: the connection stays broken.
pub(crate) fn landed<'a>(
    conn: &mut AsyncPgConnection,
    committed: impl IntoIterator<Item = &'a QueryResult<usize>>,
) {
    if committed.into_iter().all(Result::is_ok) {
        *status(conn) = TransactionManagerStatus::default();
    }
}

/// In a statement's `RETURNING` (or select list): turns `synchronous_commit` off until the end of
/// the current transaction. A statement sent on its own is its own (implicit) transaction, so its
/// commit then does not wait for the disk; inside a flight's transaction it does what
/// [`commit_without_waiting`] does, without a statement of its own. Evaluated for each row
/// returned: a statement that changes no row leaves the setting alone, and has nothing to flush.
pub(crate) const ASYNC_COMMIT: &str = "set_config('synchronous_commit', 'off', true)";

/// `statement` (which returns [`ASYNC_COMMIT`] for each row it changes) as a transaction of its
/// own, one statement whose commit does not wait for the disk: for a counter that many calls
/// update (a user's requests this minute), whose row would otherwise stay locked for each
/// update's flush. A crash of the database may lose the last moment's updates of it, never
/// anything else. Returns the rows `statement` changed. Not inside a transaction: the setting
/// would last until that one's commit.
pub(crate) async fn without_waiting<S>(
    conn: &mut AsyncPgConnection,
    statement: S,
) -> QueryResult<usize>
where
    S: diesel::query_builder::Query<SqlType = diesel::sql_types::Text>
        + QueryFragment<Pg>
        + QueryId
        + Send,
{
    use diesel_async::RunQueryDsl;
    if in_transaction(conn) {
        return Err(DieselError::AlreadyInTransaction);
    }
    Ok(statement.load::<String>(conn).await?.len())
}

/// Whether `error` is a budget's refusal raised inside a flight (`cloudbase_budget_full`).
pub(crate) fn budget_full(error: &DieselError) -> bool {
    matches!(error, DieselError::DatabaseError(_, info) if info.hint() == Some(BUDGET_FULL_HINT))
}

/// The hint `cloudbase_budget_full` raises its error with (migration `2026-12-03-000021`).
const BUDGET_FULL_HINT: &str = "cloudbase_budget_full";
