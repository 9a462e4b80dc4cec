//! Queries on `budgets`, `budget_reservations` and the daily rollups (`usage_daily`,
//! `usage_daily_users`, `usage_daily_models`), and the finish of a call with its rollups.

use chrono::NaiveDateTime;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{Query, QueryFragment, QueryId};
use diesel::sqlite::Sqlite;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::FutureExt;
use futures_util::future::OptionFuture;

use super::ai_calls::Finish;
use super::fixed::fixed_shape;
use super::flight;
use super::models::{AiCall, Budget, NewAuditRow, Reservation};
use super::schema::{ai_calls, budget_reservations, budgets};
use super::{DbConn, db_run};
use crate::domain::CallStatus;

/// Inserts a budget.
pub async fn insert(conn: &mut DbConn, budget: &Budget) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::insert_into(budgets::table)
            .values(budget)
            .execute(c)
            .await
    })
}

/// The budget of an API key family, if it has one.
pub async fn of_key(conn: &mut DbConn, family_id: &str) -> QueryResult<Option<Budget>> {
    db_run!(conn, |c| {
        budgets::table
            .filter(budgets::api_key_id.eq(family_id))
            .select(Budget::as_select())
            .first(c)
            .await
            .optional()
    })
}

/// One budget.
pub async fn find(conn: &mut DbConn, id: &str) -> QueryResult<Budget> {
    db_run!(conn, |c| {
        budgets::table
            .find(id)
            .select(Budget::as_select())
            .get_result(c)
            .await
    })
}

/// Budgets that apply to `user_id`: theirs and the global ones. `None` lists every budget.
pub async fn list(conn: &mut DbConn, user_id: Option<&str>) -> QueryResult<Vec<Budget>> {
    db_run!(conn, |c| {
        let mut query = budgets::table
            .select(Budget::as_select())
            .order(budgets::id.asc())
            .into_boxed();
        if let Some(user) = user_id {
            query = query.filter(budgets::user_id.eq(user).or(budgets::scope.eq("GLOBAL")));
        }
        query.load(c).await
    })
}

/// The budgets a call by `user_id` counts against (the user's own, the global ones, and with an
/// API key its family's), oldest first. A fixed-shape statement: it runs on every call, so both
/// databases keep its plan (a call without a key passes `""`, which no family has).
pub async fn applicable(
    conn: &mut DbConn,
    user_id: &str,
    key_family: Option<&str>,
) -> QueryResult<Vec<Budget>> {
    let family = key_family.unwrap_or("");
    db_run!(conn, |c| {
        budgets::table
            .filter(
                budgets::user_id
                    .eq(user_id)
                    .and(budgets::api_key_id.is_null())
                    .or(budgets::scope.eq("GLOBAL"))
                    .or(budgets::api_key_id.eq(family)),
            )
            .select(Budget::as_select())
            .order(budgets::id.asc())
            .load(c)
            .await
    })
}

/// Changes a budget's limits.
pub async fn set_limits(
    conn: &mut DbConn,
    id: &str,
    limits: (i64, Option<i64>, Option<i64>),
    now: NaiveDateTime,
) -> QueryResult<Budget> {
    db_run!(conn, |c| {
        diesel::update(budgets::table.find(id))
            .set((
                budgets::limit_micros.eq(limits.0),
                budgets::limit_tokens.eq(limits.1),
                budgets::limit_requests.eq(limits.2),
                budgets::updated_at.eq(now),
            ))
            .returning(Budget::as_returning())
            .get_result(c)
            .await
    })
}

/// Deletes a budget (and its reservations).
pub async fn delete(conn: &mut DbConn, id: &str) -> QueryResult<usize> {
    db_run!(conn, |c| diesel::delete(budgets::table.find(id))
        .execute(c)
        .await)
}

/// Starts a new period if the current one ended at `old_end`: settled amounts go back to zero
/// (reservations in flight stay). Idempotent across instances: only one update matches.
pub async fn roll(
    conn: &mut DbConn,
    id: &str,
    old_end: NaiveDateTime,
    start: NaiveDateTime,
    end: Option<NaiveDateTime>,
) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::update(
            budgets::table
                .find(id)
                .filter(budgets::period_end.eq(old_end)),
        )
        .set((
            budgets::spent_micros.eq(0),
            budgets::spent_tokens.eq(0),
            budgets::spent_requests.eq(0),
            budgets::period_start.eq(start),
            budgets::period_end.eq(end),
        ))
        .execute(c)
        .await
    })
}

/// Reserves `amount` micro-units, `tokens` and one request, only if every limit still holds
/// afterwards (the check and the reservation are one statement; no row updated: no room).
/// Prepared once per connection (diesel prepares an `UPDATE` again on every run unless told its
/// shape is fixed).
pub(super) fn reserve_statement(
    id: &str,
    amount: i64,
    tokens: i64,
) -> impl QueryFragment<Pg> + QueryFragment<Sqlite> + QueryId + Send + '_ {
    fixed_shape!(
        diesel::update(
            budgets::table
                .find(id)
                .filter(
                    (budgets::spent_micros + budgets::reserved_micros + amount)
                        .le(budgets::limit_micros),
                )
                .filter(
                    budgets::limit_tokens.is_null().or((budgets::spent_tokens
                        + budgets::reserved_tokens
                        + tokens)
                        .nullable()
                        .le(budgets::limit_tokens)),
                )
                .filter(
                    budgets::limit_requests
                        .is_null()
                        .or(
                            (budgets::spent_requests + budgets::reserved_requests + 1i64)
                                .nullable()
                                .le(budgets::limit_requests),
                        ),
                ),
        )
        .set((
            budgets::reserved_micros.eq(budgets::reserved_micros + amount),
            budgets::reserved_tokens.eq(budgets::reserved_tokens + tokens),
            budgets::reserved_requests.eq(budgets::reserved_requests + 1i64),
        )),
    )
}

/// SQLite: inserts call `call` (`PENDING`) and, for each of `wanted` in turn, its reservation,
/// reserving its amounts in its budget where every limit still holds afterwards. Stops at the
/// first budget without room and returns its index in `wanted`; the caller then rolls the whole
/// of it back. Inside the caller's transaction (on the one writer connection).
pub async fn insert_and_reserve(
    c: &mut super::SqliteConn,
    call: &AiCall,
    wanted: &[Reservation],
) -> QueryResult<Option<usize>> {
    diesel::insert_into(ai_calls::table)
        .values(call.pending_row())
        .execute(c)
        .await?;
    for (i, r) in wanted.iter().enumerate() {
        let took = reserve_statement(&r.budget_id, r.amount_micros, r.tokens)
            .execute(c)
            .await?
            == 1;
        if !took {
            return Ok(Some(i));
        }
        diesel::insert_into(budget_reservations::table)
            .values(r)
            .execute(c)
            .await?;
    }
    Ok(None)
}

/// PostgreSQL: the same as [`insert_and_reserve`] as a transaction of its own, sent in one flight
/// ([`flight`]): `BEGIN`, the call's insert, the budgets' updates, its reservations, `COMMIT` and
/// the wait for it to be on disk, in one round trip (the flight of a batch of one,
/// [`super::admission_batch`]). The commit releases the budgets' rows without waiting for the
/// disk; the wait comes after ([`flight::flushed`]), so the call is admitted durably all the
/// same, and the next call's reservation does not wait for this one's flush. A budget without
/// room raises `cloudbase_budget_full` inside its update, and the flight's `COMMIT` then rolls
/// everything back. Returns the index in `wanted` of the budget that had no room, or `None` when
/// the call is admitted and committed. An error after the commit (its flush not confirmed) is an
/// error too: the call does not go on.
pub async fn insert_and_reserve_in_one_flight(
    conn: &mut AsyncPgConnection,
    call: &AiCall,
    wanted: &[Reservation],
) -> QueryResult<Option<usize>> {
    use super::admission_batch::{Admitting, Flown, in_one_flight};
    match in_one_flight(conn, &[Admitting { call, wanted }]).await? {
        Flown::Admitted => Ok(None),
        Flown::Refused(full) => Ok(Some(refused_index(wanted, full))),
        Flown::Unsure(e) => Err(e),
    }
}

/// The index in `wanted` of the reservation in budget `full`.
pub(crate) fn refused_index(wanted: &[Reservation], full: &str) -> usize {
    wanted
        .iter()
        .position(|r| r.budget_id == full)
        .unwrap_or_default()
}

/// PostgreSQL: [`reserve_statement`]'s checks and reservation, raising `cloudbase_budget_full`
/// where the budget has no room (instead of updating no row), for [`insert_and_reserve_in_one_flight`].
/// Also for a batch of calls' reservations in one budget, their sums (`db::admission_batch`).
pub(super) fn reserve_or_raise_statement(
    id: &str,
    amount: i64,
    tokens: i64,
    requests: i64,
) -> impl QueryFragment<Pg> + QueryId + Send + '_ {
    use diesel::sql_types::{BigInt, Text};
    fixed_shape!(
        diesel::sql_query(
            "UPDATE budgets SET reserved_micros = CASE \
             WHEN spent_micros + reserved_micros + $2 <= limit_micros \
             AND (limit_tokens IS NULL OR spent_tokens + reserved_tokens + $3 <= limit_tokens) \
             AND (limit_requests IS NULL OR spent_requests + reserved_requests + $4 <= limit_requests) \
             THEN reserved_micros + $2 ELSE cloudbase_budget_full(id) END, \
             reserved_tokens = reserved_tokens + $3, \
             reserved_requests = reserved_requests + $4 \
             WHERE id = $1",
        )
        .bind::<Text, _>(id)
        .bind::<BigInt, _>(amount)
        .bind::<BigInt, _>(tokens)
        .bind::<BigInt, _>(requests),
    )
}

/// The columns of a budget, named (not `*`: a column added by a later migration would change the
/// result of a statement prepared before it, and PostgreSQL refuses to run it then). Unqualified:
/// the statements that return them join nothing else with a column of these names.
macro_rules! budget_columns {
    () => {
        "id, scope, user_id, period, currency, limit_micros, limit_tokens, limit_requests, \
         spent_micros, reserved_micros, spent_tokens, reserved_tokens, spent_requests, \
         reserved_requests, period_start, period_end, created_at, updated_at, thresholds, \
         alerted_percent, api_key_id"
    };
}

/// Settles call `call_id`: releases every reservation it still holds and adds what it used to
/// those budgets (`micros` only where the budget's currency is `currency`; `tokens` and one
/// request everywhere). Returns the budgets as they now are. A reservation the sweeper already
/// released is not there, and its budget is left alone. Inside the caller's transaction.
///
/// On PostgreSQL its budgets' rows are first locked in id order ([`lock_budgets_statement`]), then
/// one statement releases the reservations and updates the budgets, both sent at once (one round
/// trip however many budgets apply). The update alone would take its rows' locks in the order of
/// its join (the budgets' physical order, which every update of a row changes), and two
/// transactions that each hold one of two budgets' rows and wait for the other's would deadlock.
/// On SQLite, which has no `DELETE` in a `WITH` and runs one writer at a time, an update from the
/// reservations and then their delete.
pub async fn settle_call(
    conn: &mut DbConn,
    call_id: &str,
    micros: i64,
    currency: &str,
    tokens: i64,
) -> QueryResult<Vec<Budget>> {
    use diesel::sql_types::{BigInt, Text};
    match conn {
        DbConn::Pg(c) => {
            let mut c: &AsyncPgConnection = c;
            // Sent in the order written (see `insert_and_reserve_in_one_flight`).
            let (locked, settled) = futures_util::join!(
                lock_budgets_statement(call_id).execute(&mut c),
                settle_statement_pg(call_id, currency, micros, tokens).load::<Budget>(&mut c)
            );
            locked?;
            settled
        }
        DbConn::Sqlite(obj, _) => {
            let c: &mut super::SqliteConn = obj;
            let settled = fixed_shape!(
                diesel::sql_query(concat!(
                    "UPDATE budgets AS b SET \
                     reserved_micros = b.reserved_micros - d.amount_micros, \
                     reserved_tokens = b.reserved_tokens - d.tokens, \
                     reserved_requests = b.reserved_requests - d.requests, \
                     spent_micros = b.spent_micros + CASE WHEN b.currency = ?2 THEN ?3 ELSE 0 END, \
                     spent_tokens = b.spent_tokens + ?4, \
                     spent_requests = b.spent_requests + 1 \
                     FROM (SELECT budget_id, amount_micros, tokens, requests \
                     FROM budget_reservations WHERE ai_call_id = ?1) AS d \
                     WHERE b.id = d.budget_id RETURNING ",
                    budget_columns!()
                ))
                .bind::<Text, _>(call_id)
                .bind::<Text, _>(currency)
                .bind::<BigInt, _>(micros)
                .bind::<BigInt, _>(tokens),
            )
            .load::<Budget>(c)
            .await?;
            diesel::delete(
                budget_reservations::table.filter(budget_reservations::ai_call_id.eq(call_id)),
            )
            .execute(c)
            .await?;
            Ok(settled)
        }
    }
}

/// PostgreSQL: locks the rows of the budgets in which call `call_id` holds reservations, **in
/// id order**, the order in which a call's admission updates them
/// ([`insert_and_reserve_in_one_flight`], its budgets from [`applicable`]). Every transaction
/// that holds more than one budget's row takes them in this order (a settlement takes them here
/// first), so no two of them ever wait for each other in a cycle. The `ORDER BY` comes before the
/// locks: each row is locked as the sorted rows are returned.
fn lock_budgets_statement(call_id: &str) -> impl QueryFragment<Pg> + QueryId + Send + '_ {
    budgets::table
        .filter(
            budgets::id.eq_any(
                budget_reservations::table
                    .filter(budget_reservations::ai_call_id.eq(call_id))
                    .select(budget_reservations::budget_id),
            ),
        )
        .select(budgets::id)
        .order(budgets::id.asc())
        .for_no_key_update()
}

/// [`settle_call`]'s one statement on PostgreSQL: the reservations' delete and the budgets'
/// updates.
fn settle_statement_pg<'a>(
    call_id: &'a str,
    currency: &'a str,
    micros: i64,
    tokens: i64,
) -> impl QueryFragment<Pg> + QueryId + Query<SqlType = diesel::sql_types::Untyped> + Send + 'a {
    use diesel::sql_types::{BigInt, Text};
    fixed_shape!(
        diesel::sql_query(concat!(
            "WITH d AS (DELETE FROM budget_reservations WHERE ai_call_id = $1 \
             RETURNING budget_id, amount_micros, tokens, requests) \
             UPDATE budgets AS b SET \
             reserved_micros = b.reserved_micros - d.amount_micros, \
             reserved_tokens = b.reserved_tokens - d.tokens, \
             reserved_requests = b.reserved_requests - d.requests, \
             spent_micros = b.spent_micros + CASE WHEN b.currency = $2 THEN $3 ELSE 0 END, \
             spent_tokens = b.spent_tokens + $4, \
             spent_requests = b.spent_requests + 1 \
             FROM d WHERE b.id = d.budget_id RETURNING ",
            budget_columns!()
        ))
        .bind::<Text, _>(call_id)
        .bind::<Text, _>(currency)
        .bind::<BigInt, _>(micros)
        .bind::<BigInt, _>(tokens),
    )
}

/// Reservations whose time is up.
pub async fn expired(
    conn: &mut DbConn,
    now: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<Reservation>> {
    db_run!(conn, |c| {
        budget_reservations::table
            .filter(budget_reservations::expires_at.le(now))
            .select(Reservation::as_select())
            .limit(limit)
            .load(c)
            .await
    })
}

/// [`settle`]'s update of the budget, returning it; prepared once per connection (diesel
/// prepares an `UPDATE` again on every run unless told its shape is fixed).
macro_rules! settle_statement {
    ($r:expr, $used:expr) => {{
        let (r, used): (&Reservation, (i64, i64, i64)) = ($r, $used);
        fixed_shape!(
            diesel::update(budgets::table.find(&r.budget_id))
                .set((
                    budgets::reserved_micros.eq(budgets::reserved_micros - r.amount_micros),
                    budgets::reserved_tokens.eq(budgets::reserved_tokens - r.tokens),
                    budgets::reserved_requests.eq(budgets::reserved_requests - r.requests),
                    budgets::spent_micros.eq(budgets::spent_micros + used.0),
                    budgets::spent_tokens.eq(budgets::spent_tokens + used.1),
                    budgets::spent_requests.eq(budgets::spent_requests + used.2),
                ))
                .returning(Budget::as_returning()),
        )
    }};
}

/// Releases a reservation and adds what was really used: `(micros, tokens, requests)`, and
/// returns the budget as it now stands (`None` if the reservation was already released).
/// Deleting the reservation row in the same step makes it happen once.
pub async fn settle(
    conn: &mut DbConn,
    r: &Reservation,
    used: (i64, i64, i64),
) -> QueryResult<Option<Budget>> {
    let gone = db_run!(conn, |c| {
        diesel::delete(budget_reservations::table.find((&r.ai_call_id, &r.budget_id)))
            .execute(c)
            .await
    })?;
    if gone == 0 {
        return Ok(None);
    }
    db_run!(conn, |c| {
        settle_statement!(r, used).get_result(c).await.optional()
    })
}

/// Records that `threshold` was raised this period, once: returns whether this call did it.
pub async fn mark_alerted(conn: &mut DbConn, id: &str, threshold: i64) -> QueryResult<bool> {
    db_run!(conn, |c| {
        fixed_shape!(
            diesel::update(
                budgets::table
                    .find(id)
                    .filter(budgets::alerted_percent.lt(threshold)),
            )
            .set(budgets::alerted_percent.eq(threshold)),
        )
        .execute(c)
        .await
        .map(|n| n == 1)
    })
}

/// The update that finishes call `$id` if it is still `PENDING`: a call finishes once, whoever
/// (its own close, the sweep of interrupted calls) gets there first.
macro_rules! finish_update {
    ($id:expr, $finish:expr) => {
        diesel::update(
            ai_calls::table
                .find($id)
                .filter(ai_calls::status.eq(CallStatus::Pending)),
        )
        .set($finish)
    };
}

/// [`finish_update!`] returning [`FINISHED_COLUMNS`] (PostgreSQL).
macro_rules! finish_statement {
    ($id:expr, $finish:expr) => {
        fixed_shape!(finish_update!($id, $finish).returning(FINISHED_COLUMNS))
    };
}

/// [`FINISHED_COLUMNS`]' columns, as its type and as its value.
macro_rules! finished_columns {
    () => {
        (
            ai_calls::id,
            ai_calls::user_id,
            ai_calls::conversation_id,
            ai_calls::api_key_id,
            ai_calls::provider,
            ai_calls::model,
            ai_calls::currency,
            ai_calls::prompt_tokens,
            ai_calls::cached_prompt_tokens,
            ai_calls::completion_tokens,
            ai_calls::cost_micros,
        )
    };
}

/// PostgreSQL: what the finish's `UPDATE … RETURNING` hands the rest of its statement (`f`):
/// the columns the rollups, the token counters and the settlement read. Not the record: the
/// client has it already (the `PENDING` record with the finish's columns set, as on SQLite,
/// `sqlite_finish`), and the statement answers only the row's `conversation_id`, the one column
/// something else may have changed meanwhile. Read back whole, a record cost PostgreSQL its
/// 27 columns' output (the attempts' `jsonb` printed) and the client their decoding, about 10 k
/// instructions a call (`bench/RESULTS.md`, "2026-12-05, midday").
pub(super) const FINISHED_COLUMNS: finished_columns!() = finished_columns!();

/// The statement that adds `$u`'s sums to the row of rollup `$table` keyed by the `$key`
/// columns (inserted when the day has none yet): the same shape for every call.
macro_rules! rollup_statement {
    ($u:expr, $table:ident, [$($key:ident),+]) => {{
        let u = $u;
        fixed_shape!(
            diesel::insert_into($table::table)
                .values((
                    $($table::$key.eq(u.$key),)+
                    $table::requests.eq(u.requests),
                    $table::prompt_tokens.eq(u.prompt_tokens),
                    $table::cached_prompt_tokens.eq(u.cached_prompt_tokens),
                    $table::completion_tokens.eq(u.completion_tokens),
                    $table::cost_micros.eq(u.cost_micros),
                ))
                .on_conflict(($($table::$key,)+))
                .do_update()
                .set((
                    $table::requests.eq($table::requests + excluded($table::requests)),
                    $table::prompt_tokens
                        .eq($table::prompt_tokens + excluded($table::prompt_tokens)),
                    $table::cached_prompt_tokens.eq(
                        $table::cached_prompt_tokens + excluded($table::cached_prompt_tokens),
                    ),
                    $table::completion_tokens
                        .eq($table::completion_tokens + excluded($table::completion_tokens)),
                    $table::cost_micros.eq($table::cost_micros + excluded($table::cost_micros)),
                )),
        )
    }};
}

/// Rollup rows per day and key on PostgreSQL (see [`shard`]).
pub const ROLLUP_SHARDS: u16 = 16;

/// The rollup row a finishing call adds itself to on PostgreSQL, among the day's
/// [`ROLLUP_SHARDS`] rows for its key. Every call of a day, a user and a model would otherwise
/// update the same rows, and each would wait for the row lock of the one before, held until that
/// call's commit is on disk: concurrent calls finished one at a time (`bench/RESULTS.md`). Calls
/// of this instance take the shards in turn, so up to 16 finish side by side; reports sum the
/// shards. SQLite writes one transaction at a time anyway, so there every call takes shard 0 and
/// the rollups stay one row per key.
pub fn shard() -> i16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % ROLLUP_SHARDS;
    i16::try_from(n).unwrap_or(0)
}

/// Where a finishing call's sums go besides its record: the daily rollups of `day`
/// (`YYYY-MM-DD` in the budgets' time zone), and its tokens to the per-minute counters
/// `token_counters` of the rate limits (the minute starting at `minute`).
#[derive(Debug, Clone, Copy)]
pub struct AddTo<'a> {
    /// The rollups' day.
    pub day: &'a str,
    /// The token counters (`tpm:…`) of the limits that applied at admission; may be empty.
    pub token_counters: &'a [String],
    /// The start of the minute the call finished in.
    pub minute: NaiveDateTime,
}

/// Finishes call `call` (still `PENDING`) as `finish` says and adds it where `add_to` says (the
/// rollup rows, the token counters); returns the finished row, or `None`, having added nothing
/// anywhere, if it was already finished (a call finishes once).
/// With `audit`, the mutation's audit row goes in with them (`services::audit::take_running`).
///
/// On PostgreSQL this is one statement ([`in_one::FinishInOne`]), atomic without a transaction
/// of its own. On SQLite the statements run one after another, in the caller's transaction.
pub async fn finish_and_add_to_daily(
    conn: &mut DbConn,
    call: &AiCall,
    finish: &Finish,
    add_to: &AddTo<'_>,
    audit: Option<&NewAuditRow<'_>>,
) -> QueryResult<Option<AiCall>> {
    let (id, day) = (call.id.as_str(), add_to.day);
    match conn {
        DbConn::Pg(obj) => Ok(finish_and_add_to_daily_pg(obj, id, finish, add_to, audit)
            .await?
            .map(|conversation_id| finished_record(call.clone(), conversation_id, finish.clone()))),
        DbConn::Sqlite(slot, _) => {
            let finishing = sqlite_finish::Finishing {
                call: call.clone(),
                day: day.to_owned(),
                finish: finish.clone(),
                token_counters: add_to.token_counters.to_vec(),
                minute: add_to.minute,
                audit: audit.map(super::models::OwnedAuditRow::from),
            };
            let (record, addition) = slot.spawn_blocking(move |c| finishing.run(c)).await?;
            if let Some(addition) = addition {
                match slot {
                    // Added to the rollups with the batch's commit (see `Rollups`).
                    super::SqliteSlot::Writer(turn) => turn.stage(addition),
                    super::SqliteSlot::Pooled(c) => {
                        let mut rollups = Rollups::default();
                        rollups.add(addition);
                        c.spawn_blocking(move |c| rollups.write(c)).await?;
                    }
                }
            }
            Ok(record)
        }
    }
}

pub(super) use sqlite_finish::{Addition, Rollups};

/// The record a finish leaves: `call` as its `PENDING` insert wrote it, with `finish`'s columns
/// set (what the finish's update writes), and `conversation_id` as the row has it now: nothing
/// but a finish changes a `PENDING` row, except that column, set to null if the conversation is
/// deleted meanwhile, which the finish reads back.
pub fn finished_record(call: AiCall, conversation_id: Option<String>, finish: Finish) -> AiCall {
    finish.applied_to(AiCall {
        conversation_id,
        ..call
    })
}

/// SQLite: a call's finish as diesel's own statements on the connection, in one piece of work
/// for the blocking wrapper (inline on the call path, `db::on_call_path`). Through the async
/// wrapper each statement would build its SQL text and copy its values first; here the statement
/// cache finds each by its static id ([`super::fixed`]), so that after the first call nothing is
/// built but the values' binding.
///
/// The update has no `RETURNING`: SQLite runs one as a trigger of the temporary schema that fills
/// a table of its own, opened, written, committed and dropped for every call, and the row read
/// back is decoded column by column (its JSON and timestamps parsed again). About a tenth of a
/// call's instructions (`bench/RESULTS.md`). The finished record is made by the client
/// ([`finished_record`]), with the `conversation_id` read back with the count of rows the update
/// changed.
mod sqlite_finish {
    use chrono::NaiveDateTime;
    use diesel::prelude::*;
    use diesel::sqlite::SqliteConnection;
    use diesel::upsert::excluded;

    use super::super::ai_calls::Finish;
    use super::super::fixed::{fixed_shape, run_on_sqlite};
    use super::super::models::{AiCall, DailyUsage, OwnedAuditRow};
    use super::super::schema::{
        ai_calls, audit_log, usage_daily, usage_daily_models, usage_daily_users,
    };
    use crate::domain::CallStatus;

    diesel::define_sql_function! {
        /// SQLite's `changes()`: the rows the connection's last `INSERT`, `UPDATE` or `DELETE`
        /// changed.
        fn changes() -> Integer;
    }

    /// What the finish writes, owned: the wrapper's work cannot borrow.
    pub(super) struct Finishing {
        /// The call's record as its `PENDING` insert wrote it.
        pub(super) call: AiCall,
        pub(super) day: String,
        pub(super) finish: Finish,
        pub(super) token_counters: Vec<String>,
        pub(super) minute: NaiveDateTime,
        pub(super) audit: Option<OwnedAuditRow>,
    }

    /// What one finished call adds to the daily rollups, owned.
    pub struct Addition {
        day: String,
        user_id: String,
        api_key_id: String,
        provider: String,
        model: String,
        currency: String,
        prompt_tokens: i64,
        cached_prompt_tokens: i64,
        completion_tokens: i64,
        cost_micros: i64,
    }

    /// The sums of some additions for one row of a rollup.
    #[derive(Default, Clone, Copy)]
    struct Sums {
        requests: i64,
        prompt_tokens: i64,
        cached_prompt_tokens: i64,
        completion_tokens: i64,
        cost_micros: i64,
    }

    impl Sums {
        fn add(&mut self, a: &Addition) {
            self.requests += 1;
            self.prompt_tokens += a.prompt_tokens;
            self.cached_prompt_tokens += a.cached_prompt_tokens;
            self.completion_tokens += a.completion_tokens;
            self.cost_micros += a.cost_micros;
        }
    }

    /// The rollups' additions of the calls that finished in one write batch
    /// (`super::super::writer`), written when the batch commits: each row of each rollup once,
    /// with the sums of the batch's calls that share its key. At 32 calls in flight a batch holds
    /// about fifteen writes, half of them finishes, and most of those add to the same rows (the
    /// day's row of a user and a model): written by each call, they were three upserts a call,
    /// about a third of its finish (`bench/RESULTS.md`, "2026-12-05, early morning"). The
    /// additions of a writer whose savepoint is rolled back are dropped with it; those of a
    /// batch that fails, with the batch. Commit and rollups are one transaction, so a reader
    /// never sees a call finished and not in the rollups, or the reverse.
    #[derive(Default)]
    pub struct Rollups(Vec<Addition>);

    impl Rollups {
        /// Whether there is nothing to write.
        pub fn is_empty(&self) -> bool {
            self.0.is_empty()
        }

        /// Adds one call's addition.
        pub fn add(&mut self, addition: Addition) {
            self.0.push(addition);
        }

        /// Adds another set's additions.
        pub fn append(&mut self, other: &mut Rollups) {
            self.0.append(&mut other.0);
        }

        /// Forgets every addition.
        pub fn clear(&mut self) {
            self.0.clear();
        }

        /// Writes the sums, inside the caller's transaction, in the order of the tables and of
        /// the keys; returns the rows written.
        pub fn write(self, c: &mut SqliteConnection) -> QueryResult<usize> {
            use std::collections::BTreeMap;
            type Key<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str, &'a str);
            let mut by_call: BTreeMap<Key<'_>, Sums> = BTreeMap::new();
            let mut by_user: BTreeMap<(&str, &str, &str), Sums> = BTreeMap::new();
            let mut by_model: BTreeMap<(&str, &str, &str, &str), Sums> = BTreeMap::new();
            for a in &self.0 {
                let (day, user, key) = (a.day.as_str(), a.user_id.as_str(), a.api_key_id.as_str());
                let (provider, model, currency) =
                    (a.provider.as_str(), a.model.as_str(), a.currency.as_str());
                by_call
                    .entry((day, user, key, provider, model, currency))
                    .or_default()
                    .add(a);
                by_user.entry((day, user, currency)).or_default().add(a);
                by_model
                    .entry((day, provider, model, currency))
                    .or_default()
                    .add(a);
            }
            fn usage<'a>(
                (day, user_id, api_key_id, provider, model, currency): Key<'a>,
                s: Sums,
            ) -> DailyUsage<'a> {
                DailyUsage {
                    day,
                    user_id,
                    api_key_id,
                    provider,
                    model,
                    currency,
                    requests: s.requests,
                    prompt_tokens: s.prompt_tokens,
                    cached_prompt_tokens: s.cached_prompt_tokens,
                    completion_tokens: s.completion_tokens,
                    cost_micros: s.cost_micros,
                    shard: 0, // one row per key on SQLite (see `shard`)
                }
            }
            for (key, sums) in &by_call {
                let u = &usage(*key, *sums);
                run_on_sqlite(
                    c,
                    rollup_statement!(
                        u,
                        usage_daily,
                        [day, user_id, api_key_id, provider, model, currency, shard]
                    ),
                )?;
            }
            for ((day, user, currency), sums) in &by_user {
                let u = &usage((day, user, "", "", "", currency), *sums);
                run_on_sqlite(
                    c,
                    rollup_statement!(u, usage_daily_users, [day, user_id, currency, shard]),
                )?;
            }
            for ((day, provider, model, currency), sums) in &by_model {
                let u = &usage((day, "", "", provider, model, currency), *sums);
                run_on_sqlite(
                    c,
                    rollup_statement!(
                        u,
                        usage_daily_models,
                        [day, provider, model, currency, shard]
                    ),
                )?;
            }
            Ok(by_call.len() + by_user.len() + by_model.len())
        }
    }

    impl Finishing {
        /// As `finish_and_add_to_daily`, inside the caller's transaction, but for the rollups:
        /// what the call adds to them is returned, to be written with its batch ([`Rollups`]).
        pub(super) fn run(
            self,
            c: &mut SqliteConnection,
        ) -> QueryResult<(Option<AiCall>, Option<Addition>)> {
            let (id, finish) = (self.call.id.as_str(), &self.finish);
            run_on_sqlite(c, fixed_shape!(finish_update!(id, finish)))?;
            let changed = fixed_shape!(
                ai_calls::table
                    .find(id)
                    .select((changes(), ai_calls::conversation_id))
            )
            .get_result::<(i32, Option<String>)>(c)
            .optional()?;
            let Some((1, conversation_id)) = changed else {
                return Ok((None, None));
            };
            let addition = Addition {
                day: self.day,
                user_id: self.call.user_id.clone(),
                api_key_id: self.call.api_key_id.clone().unwrap_or_default(),
                provider: finish.provider.clone(),
                model: finish.model.clone(),
                currency: finish.currency.clone().unwrap_or_default(),
                prompt_tokens: finish.prompt_tokens,
                cached_prompt_tokens: finish.cached_prompt_tokens,
                completion_tokens: finish.completion_tokens,
                cost_micros: finish.cost_micros,
            };
            let tokens = finish.prompt_tokens + finish.completion_tokens;
            if tokens > 0 {
                for counter in &self.token_counters {
                    // By value: run by reference, diesel would prepare the upsert every time.
                    run_on_sqlite(
                        c,
                        super::super::rate_limits::add_statement(counter, self.minute, tokens),
                    )?;
                }
            }
            if let Some(row) = &self.audit {
                run_on_sqlite(
                    c,
                    fixed_shape!(diesel::insert_into(audit_log::table).values(row)),
                )?;
            }
            let record = super::finished_record(self.call, conversation_id, self.finish);
            Ok((Some(record), Some(addition)))
        }
    }
}

/// PostgreSQL: a call's finish with its rollups and audit row (as [`finish_and_add_to_daily`])
/// and its settlement, **one statement** ([`in_one::Settle`]): the reservations released are
/// those of the row the finish updated, so a call already finished (by the sweep of expired
/// reservations, which may release a call's reservations one transaction at a time) settles
/// nothing.
///
/// The statement is a transaction sent in one flight ([`flight`]) with the wait for its commit
/// to reach the disk after it: `BEGIN`, [`flight::commit_without_waiting`], the statement,
/// `COMMIT`, [`flight::flushed`]. So a budget's row lock, taken by the settlement, is held for
/// the statement's run only, not for the flush of its commit, and the call is still recorded and
/// settled on disk before it is answered.
///
/// A call that holds reservations in several budgets (`reserved_in`, counted at admission)
/// settles each with an `UPDATE` of its own in the statement, in id order
/// ([`in_one::SettleEach`]), up to [`SETTLED_EACH_UP_TO`] budgets; PostgreSQL runs them after
/// the rollups. Beyond that, the statement finishes the call without its settlement, and the
/// transaction then locks its budgets' rows in id order ([`lock_budgets_statement`]) and
/// settles them ([`settle_statement_pg`]), as a conversation turn's settlement does
/// ([`settle_call`]). So every finish takes the call's row, then the rollups' rows, then the
/// budgets' rows in id order: two finishes never wait for each other in a cycle. (Taking the
/// budgets first, as this did before, deadlocked with a conversation turn that held a new
/// rollup row and waited for a budget: `bench/RESULTS.md`, "2026-12-05, night".)
///
/// In the same flight, after it: the tokens to the rate limits' counters, each a statement and
/// transaction of its own that does not wait for the disk either
/// ([`super::rate_limits::add_statement_pg`]; in the finish's statement, a user's counter would stay locked while the settlement waits for a
/// budget's row, and a user's calls would finish one after another: measured,
/// `bench/RESULTS.md`), and, when `watched` names budgets (those with alert thresholds), those
/// budgets as they now stand.
pub async fn finish_and_settle(
    conn: &mut AsyncPgConnection,
    call: &AiCall,
    finish: &Finish,
    add_to: &AddTo<'_>,
    audit: Option<&NewAuditRow<'_>>,
    watched: &[String],
    reserved_in: usize,
) -> QueryResult<FinishedAndSettled> {
    let tokens = finish.prompt_tokens + finish.completion_tokens;
    let counters = if tokens > 0 {
        add_to.token_counters
    } else {
        &[]
    };
    let in_statement = AddTo {
        token_counters: &[],
        ..*add_to
    };
    let several = reserved_in > SETTLED_EACH_UP_TO;
    flight::take_off(conn)?;
    let mut c: &AsyncPgConnection = conn;
    let begun = flight::begin().execute(&mut c);
    let unflushed = flight::commit_without_waiting().execute(&mut c);
    let (id, add_to) = (&call.id, &in_statement);
    let finished = match reserved_in {
        2 => finish_in_one(c, id, finish, add_to, audit, in_one::SettleEach::<2>),
        3 => finish_in_one(c, id, finish, add_to, audit, in_one::SettleEach::<3>),
        4 => finish_in_one(c, id, finish, add_to, audit, in_one::SettleEach::<4>),
        5 => finish_in_one(c, id, finish, add_to, audit, in_one::SettleEach::<5>),
        6 => finish_in_one(c, id, finish, add_to, audit, in_one::SettleEach::<6>),
        _ if several => finish_in_one(c, id, finish, add_to, audit, in_one::NoSettle),
        _ => finish_in_one(c, id, finish, add_to, audit, in_one::Settle),
    };
    // Past six budgets: after the statement (and its rollups), the budgets' rows in id order,
    // then their settlement, as a conversation turn's settlement does (`settle_call`).
    let locked_budgets =
        OptionFuture::from(several.then(|| lock_budgets_statement(&call.id).execute(&mut c)));
    let currency = finish.currency.as_deref().unwrap_or("");
    let settled = OptionFuture::from(several.then(|| {
        settle_statement_pg(&call.id, currency, finish.cost_micros, tokens).execute(&mut c)
    }));
    let committed = flight::commit().execute(&mut c);
    // The tokens: each counter's a statement of its own, not waited for on disk either (a crash
    // may lose a minute's count of them, never a record).
    let spent = futures_util::future::join_all(counters.iter().map(|counter| {
        super::rate_limits::add_statement_pg(counter, add_to.minute, tokens).load::<String>(&mut c)
    }));
    let flushed = flight::flushed().execute(&mut c);
    let read = async {
        if watched.is_empty() {
            return Ok(Vec::new());
        }
        budgets::table
            .filter(budgets::id.eq_any(watched))
            .select(Budget::as_select())
            .load::<Budget>(&mut c)
            .await
    };
    // Sent in the order written (see `insert_and_reserve_in_one_flight`).
    let ((begun, unflushed, finished, locked_budgets, settled, committed), spent, (flushed, read)) = futures_util::join!(
        async {
            futures_util::join!(
                begun,
                unflushed,
                finished,
                locked_budgets,
                settled,
                committed
            )
        },
        spent,
        async { futures_util::join!(flushed, read) },
    );
    flight::landed(conn, [&committed]);
    begun?;
    unflushed?;
    let record = finished.optional()?;
    locked_budgets.transpose()?;
    settled.transpose()?;
    committed?;
    // Finished once it is on disk.
    flushed?;
    let tokens_counted = spent.into_iter().try_for_each(|n| n.map(drop));
    Ok(FinishedAndSettled {
        record: record
            .map(|conversation_id| finished_record(call.clone(), conversation_id, finish.clone())),
        watched: read?,
        tokens_counted,
    })
}

/// The most budgets a call's finish settles one `UPDATE` each ([`in_one::SettleEach`]).
pub const SETTLED_EACH_UP_TO: usize = 6;

/// What [`finish_and_settle`] did.
#[derive(Debug)]
pub struct FinishedAndSettled {
    /// The finished record; `None` if the call was already finished (nothing was settled).
    pub record: Option<AiCall>,
    /// The watched budgets as they stand after the settlement.
    pub watched: Vec<Budget>,
    /// Whether the tokens were added to the rate limits' counters (a failure there loses no
    /// record, and counts a minute's tokens short). They are added even when the call was
    /// finished first by a sweep: they were used.
    pub tokens_counted: QueryResult<()>,
}

/// [`finish_and_add_to_daily`] on PostgreSQL, by the call's id: its one statement. Returns the
/// `conversation_id` of the row it finished (for [`finished_record`]), or `None`, having added
/// nothing anywhere, if the call was not `PENDING`.
pub async fn finish_and_add_to_daily_pg(
    c: &AsyncPgConnection,
    id: &str,
    finish: &Finish,
    add_to: &AddTo<'_>,
    audit: Option<&NewAuditRow<'_>>,
) -> QueryResult<Option<Option<String>>> {
    finish_in_one(c, id, finish, add_to, audit, in_one::NoSettle)
        .await
        .optional()
}

/// PostgreSQL: the one statement of a call's finish ([`in_one::FinishInOne`]), with or without
/// its settlement, sent when first polled; its rollups go to this instance's next [`shard`].
fn finish_in_one<'a, S>(
    mut c: &'a AsyncPgConnection,
    id: &'a str,
    finish: &'a Finish,
    add_to: &'a AddTo<'a>,
    audit: Option<&'a NewAuditRow<'a>>,
    settle: S,
) -> futures_util::future::BoxFuture<'a, QueryResult<Option<String>>>
where
    S: QueryFragment<Pg> + QueryId + Send + 'a,
{
    let (finish, shard) = (finish_statement!(id, finish), shard());
    // Each audit variant is a type of its own (one prepared statement each).
    match audit {
        Some(row) => in_one::FinishInOne {
            finish,
            add_to,
            shard,
            settle,
            audit: in_one::Audited(row),
        }
        .get_result::<Option<String>>(&mut c)
        .boxed(),
        None => in_one::FinishInOne {
            finish,
            add_to,
            shard,
            settle,
            audit: in_one::NoAudit,
        }
        .get_result::<Option<String>>(&mut c)
        .boxed(),
    }
}

/// PostgreSQL: a call's finish ([`finish_statement!`]), its three rollups, its tokens to the rate
/// limits' counters and the mutation's audit row as **one statement**: the update in a `WITH`,
/// and each insert taking its row from the update's result (`SELECT … FROM f`), so that a call
/// already finished (the update finds no row) adds nothing anywhere. One statement is atomic on its own: a call with no budget to
/// settle and no conversation turn needs no `BEGIN` and `COMMIT` of its own (two round trips
/// fewer), and the client builds and sends one statement instead of six.
///
/// SQLite allows no `INSERT` or `UPDATE` inside `WITH`; it runs the statements one by one.
pub(super) mod in_one {
    use diesel::pg::Pg;
    use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
    use diesel::result::QueryResult;
    use diesel::sql_types::{Array, Nullable, SmallInt, Text, Timestamp};

    use super::AddTo;
    use crate::db::models::NewAuditRow;

    /// `WITH f AS (<finish>)[, <settlement>], <rollups>, <token counters>[, <audit row>]
    /// SELECT * FROM f`.
    ///
    /// The main query reads the finish, so it runs first; PostgreSQL then runs the other
    /// `WITH` statements in the reverse of their order, the last first (tested). So the
    /// settlement, which locks its budgets' rows, comes right after the finish and runs last:
    /// those rows stay locked for the commit only, not while the rollups wait for theirs (at
    /// c=32 under one global budget that wait had about twice as many finishes queued on the
    /// budget's row as a separate `UPDATE` just before the `COMMIT`, `bench/RESULTS.md`).
    pub(super) struct FinishInOne<'a, U, S, A> {
        /// The finish: an `UPDATE … RETURNING` of the call's columns.
        pub(super) finish: U,
        /// The rollups' day and the token counters, and this call's shard of the rollups.
        pub(super) add_to: &'a AddTo<'a>,
        pub(super) shard: i16,
        /// [`NoSettle`] or [`Settle`].
        pub(super) settle: S,
        /// [`NoAudit`] or [`Audited`].
        pub(super) audit: A,
    }

    /// The statement without a settlement (a call under no budget, or settled apart).
    pub(super) struct NoSettle;

    /// The statement with the call's settlement: the reservations of the row the finish updated
    /// released, and what the call used added to their budgets (its cost only where the
    /// budget's currency is the price's; its tokens and one request everywhere).
    pub(super) struct Settle;

    /// [`Settle`] for a call that holds reservations in `N` budgets (2 or more): one `UPDATE` of
    /// one budget each, in the order of the budgets' ids, so that each takes its one row's lock
    /// in the order in which admission takes them (the order of [`super::applicable`]). One
    /// `UPDATE` of them all would take the locks in the order of its join: the budgets'
    /// physical order, which every update of a row changes; and two calls that each held one
    /// row and waited for the other's would deadlock. Like [`Settle`]'s, these run last.
    pub(super) struct SettleEach<const N: usize>;

    /// The statement without an audit row (`/v1`, the sweep of interrupted calls).
    pub(super) struct NoAudit;

    /// The statement with the mutation's audit row.
    pub(super) struct Audited<'a>(pub(super) &'a NewAuditRow<'a>);

    /// The three rollups, each as `(the insert up to its key columns, the key's values between
    /// the day and before the shard, the conflict target)`; the key columns are `day, …, shard`. A
    /// batch of finishes (`super::super::finish_batch`) sums the same rollups.
    pub(in crate::db) const ROLLUPS: [(&str, &str, &str); 3] = [
        (
            ", per_key AS (INSERT INTO usage_daily AS r \
             (day, user_id, api_key_id, provider, model, currency, shard, ",
            "f.user_id, COALESCE(f.api_key_id, ''), f.provider, f.model, COALESCE(f.currency, '')",
            "day, user_id, api_key_id, provider, model, currency, shard)",
        ),
        (
            ", per_user AS (INSERT INTO usage_daily_users AS r (day, user_id, currency, shard, ",
            "f.user_id, COALESCE(f.currency, '')",
            "day, user_id, currency, shard)",
        ),
        (
            ", per_model AS (INSERT INTO usage_daily_models AS r \
             (day, provider, model, currency, shard, ",
            "f.provider, f.model, COALESCE(f.currency, '')",
            "day, provider, model, currency, shard)",
        ),
    ];

    /// The columns every rollup inserts after its key.
    const SUM_COLUMNS: &str =
        "requests, prompt_tokens, cached_prompt_tokens, completion_tokens, cost_micros) SELECT ";

    /// A rollup's sums, taken from the finished row.
    const FROM_F: &str = ", 1, f.prompt_tokens, f.cached_prompt_tokens, f.completion_tokens, \
        f.cost_micros FROM f ON CONFLICT (";

    /// The sums a rollup row gains; the row's table is aliased `r`.
    pub(in crate::db) const SUMS: &str = " DO UPDATE SET requests = r.requests + excluded.requests, \
        prompt_tokens = r.prompt_tokens + excluded.prompt_tokens, \
        cached_prompt_tokens = r.cached_prompt_tokens + excluded.cached_prompt_tokens, \
        completion_tokens = r.completion_tokens + excluded.completion_tokens, \
        cost_micros = r.cost_micros + excluded.cost_micros)";

    impl<U, S, A> QueryFragment<Pg> for FinishInOne<'_, U, S, A>
    where
        U: QueryFragment<Pg> + QueryId,
        S: QueryFragment<Pg> + QueryId,
        A: QueryFragment<Pg> + QueryId,
    {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            out.push_sql("WITH f AS (");
            self.finish.walk_ast(out.reborrow())?;
            out.push_sql(")");
            // Right after the finish, so that it runs last (see the type's docs).
            self.settle.walk_ast(out.reborrow())?;
            for (insert, keys, conflict) in ROLLUPS {
                out.push_sql(insert);
                out.push_sql(SUM_COLUMNS);
                out.push_bind_param::<Text, _>(self.add_to.day)?;
                out.push_sql(", ");
                out.push_sql(keys);
                out.push_sql(", ");
                out.push_bind_param::<SmallInt, _>(&self.shard)?;
                out.push_sql(FROM_F);
                out.push_sql(conflict);
                out.push_sql(SUMS);
            }
            // The tokens, to each counter (none: no row; the statement keeps one shape), in the
            // order of their keys, as a batch of finishes writes them (`super::finish_batch`).
            out.push_sql(
                ", spent AS (INSERT INTO rate_counters AS r (key, window_start, count) SELECT k, ",
            );
            out.push_bind_param::<Timestamp, _>(&self.add_to.minute)?;
            out.push_sql(", f.prompt_tokens + f.completion_tokens FROM f, unnest(");
            out.push_bind_param::<Array<Text>, _>(self.add_to.token_counters)?;
            out.push_sql(
                ") AS k WHERE f.prompt_tokens + f.completion_tokens > 0 ORDER BY k \
                 ON CONFLICT (key, window_start) DO UPDATE SET count = r.count + excluded.count)",
            );
            self.audit.walk_ast(out.reborrow())?;
            out.push_sql(" SELECT f.conversation_id FROM f");
            Ok(())
        }

        fn to_sql(&self, out: &mut diesel::pg::PgQueryBuilder, backend: &Pg) -> QueryResult<()> {
            super::super::fixed::write_kept(self, out, backend)
        }

        fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> QueryResult<bool> {
            // One text per audit variant: the finish is a `FixedShape`, the rest is fixed here.
            Ok(true)
        }
    }

    impl QueryFragment<Pg> for NoSettle {
        fn walk_ast<'b>(&'b self, _out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            Ok(())
        }
    }

    /// The reservations' release, and the update of a budget's row, `SET` to `FROM`: the
    /// statement's settlement is these, with the budgets (`d`) and what the call used (`f`).
    const RELEASED: &str = ", released AS (DELETE FROM budget_reservations \
         WHERE ai_call_id IN (SELECT id FROM f) \
         RETURNING budget_id, amount_micros, tokens, requests)";
    const SETTLE_SET: &str = " AS (UPDATE budgets AS b SET \
         reserved_micros = b.reserved_micros - d.amount_micros, \
         reserved_tokens = b.reserved_tokens - d.tokens, \
         reserved_requests = b.reserved_requests - d.requests, \
         spent_micros = b.spent_micros \
         + CASE WHEN b.currency = COALESCE(f.currency, '') THEN f.cost_micros ELSE 0 END, \
         spent_tokens = b.spent_tokens + f.prompt_tokens + f.completion_tokens, \
         spent_requests = b.spent_requests + 1 FROM ";

    impl QueryFragment<Pg> for Settle {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            out.push_sql(RELEASED);
            out.push_sql(", settled");
            out.push_sql(SETTLE_SET);
            out.push_sql("released AS d, f WHERE b.id = d.budget_id)");
            Ok(())
        }
    }

    impl<const N: usize> QueryFragment<Pg> for SettleEach<N> {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            out.push_sql(RELEASED);
            // The last budget first: PostgreSQL runs them in the reverse of their order.
            for i in (0..N).rev() {
                out.push_sql(&format!(", settled_{i}"));
                out.push_sql(SETTLE_SET);
                out.push_sql(&format!(
                    "(SELECT * FROM released ORDER BY budget_id OFFSET {i} LIMIT 1) AS d, f \
                     WHERE b.id = d.budget_id)"
                ));
            }
            Ok(())
        }
    }

    impl QueryFragment<Pg> for NoAudit {
        fn walk_ast<'b>(&'b self, _out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            Ok(())
        }
    }

    impl QueryFragment<Pg> for Audited<'_> {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            // Every field named: a column added to the row fails to compile here until it is
            // written here too.
            let NewAuditRow {
                at,
                actor_id,
                actor_role,
                operation_name,
                field,
                arguments,
                outcome,
                client_ip,
                user_agent,
                request_id,
            } = self.0;
            out.push_sql(
                ", audited AS (INSERT INTO audit_log (at, actor_id, actor_role, operation_name, \
                 field, arguments, outcome, client_ip, user_agent, request_id) SELECT ",
            );
            out.push_bind_param::<Timestamp, _>(at)?;
            for value in [actor_id, actor_role, operation_name] {
                out.push_sql(", ");
                out.push_bind_param::<Nullable<Text>, _>(value)?;
            }
            for value in [field, arguments, outcome] {
                out.push_sql(", ");
                out.push_bind_param::<Text, _>(*value)?;
            }
            for value in [client_ip, user_agent] {
                out.push_sql(", ");
                out.push_bind_param::<Nullable<Text>, _>(value)?;
            }
            out.push_sql(", ");
            out.push_bind_param::<Text, _>(*request_id)?;
            out.push_sql(" FROM f)");
            Ok(())
        }
    }

    /// One prepared statement per variant: the text depends on the types of the finish, the
    /// settlement and the audit part, and each of them is in the id (statements with one id
    /// would share one prepared statement in diesel's cache).
    impl<U: QueryId, S: QueryId, A: QueryId> QueryId for FinishInOne<'_, U, S, A> {
        type QueryId = (FinishInOneId, U::QueryId, S::QueryId, A::QueryId);
        const HAS_STATIC_QUERY_ID: bool =
            U::HAS_STATIC_QUERY_ID && S::HAS_STATIC_QUERY_ID && A::HAS_STATIC_QUERY_ID;
    }

    /// [`FinishInOne`]'s id in the statement cache.
    pub(super) struct FinishInOneId;

    impl QueryId for NoSettle {
        type QueryId = NoSettle;
        const HAS_STATIC_QUERY_ID: bool = true;
    }

    impl QueryId for Settle {
        type QueryId = Settle;
        const HAS_STATIC_QUERY_ID: bool = true;
    }

    impl<const N: usize> QueryId for SettleEach<N> {
        type QueryId = SettleEach<N>;
        const HAS_STATIC_QUERY_ID: bool = true;
    }

    impl QueryId for NoAudit {
        type QueryId = NoAudit;
        const HAS_STATIC_QUERY_ID: bool = true;
    }

    impl QueryId for Audited<'_> {
        type QueryId = Audited<'static>;
        const HAS_STATIC_QUERY_ID: bool = true;
    }

    impl<U, S, A> Query for FinishInOne<'_, U, S, A> {
        type SqlType = Nullable<Text>;
    }
}

#[cfg(test)]
mod tests {
    use diesel::pg::Pg;
    use diesel::sqlite::Sqlite;

    use super::*;
    use crate::db::fixed::kept_prepared;

    #[test]
    fn a_calls_reservation_and_settlement_stay_prepared() {
        let reserve = reserve_statement("b", 1_000, 50);
        assert!(kept_prepared(&reserve, &Pg) && kept_prepared(&reserve, &Sqlite));
        let r = Reservation {
            ai_call_id: "c".into(),
            budget_id: "b".into(),
            amount_micros: 1_000,
            tokens: 50,
            requests: 1,
            expires_at: NaiveDateTime::default(),
        };
        // `RETURNING` is built for one backend at a time.
        assert!(kept_prepared(&settle_statement!(&r, (900, 40, 1)), &Pg));
        assert!(kept_prepared(&settle_statement!(&r, (900, 40, 1)), &Sqlite));
    }

    #[test]
    fn every_statement_of_a_flight_stays_prepared() {
        // A statement diesel prepares again on every run waits for its preparation's answer
        // before it is sent, and the flight behind it with it: two round trips instead of one.
        assert!(kept_prepared(&flight::begin(), &Pg));
        assert!(kept_prepared(
            &reserve_or_raise_statement("b", 1_000, 50, 1),
            &Pg
        ));
        assert!(kept_prepared(
            &settle_statement_pg("c", "CNY", 900, 40),
            &Pg
        ));
        assert!(kept_prepared(&flight::commit(), &Pg));
        assert!(kept_prepared(&flight::commit_without_waiting(), &Pg));
        assert!(kept_prepared(&flight::flushed(), &Pg));
        assert!(kept_prepared(&lock_budgets_statement("c"), &Pg));
    }
}
