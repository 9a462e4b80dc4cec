//! Queries on `rate_counters` and `user_limits`.
//!
//! `rate_counters` holds two kinds of rows. Fixed windows: one row per key and window start,
//! counting (requests and tokens per minute). Event logs: one row per key and event time (the
//! count is more than 1 only when events share a microsecond), summed over any sliding window
//! (failed logins, registrations).

use chrono::NaiveDateTime;
use diesel::dsl::{max, min, sql};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{Query, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::sqlite::Sqlite;
use diesel_async::RunQueryDsl;

use super::fixed::fixed_shape;
use super::schema::{rate_counters, user_limits};
use super::{DbConn, db_run};

/// The events logged under a key since some time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Recent {
    /// How many.
    pub count: i64,
    /// The oldest one's time.
    pub oldest: Option<NaiveDateTime>,
    /// The newest one's time.
    pub newest: Option<NaiveDateTime>,
}

/// The events logged under `key` after `since`.
pub async fn recent(conn: &mut DbConn, key: &str, since: NaiveDateTime) -> QueryResult<Recent> {
    let (count, oldest, newest) = db_run!(conn, |c| {
        rate_counters::table
            .filter(rate_counters::key.eq(key))
            .filter(rate_counters::window_start.gt(since))
            .select((
                sql::<Nullable<BigInt>>("CAST(SUM(count) AS BIGINT)"),
                min(rate_counters::window_start),
                max(rate_counters::window_start),
            ))
            .get_result::<(Option<i64>, Option<NaiveDateTime>, Option<NaiveDateTime>)>(c)
            .await
    })?;
    Ok(Recent {
        count: count.unwrap_or_default(),
        oldest,
        newest,
    })
}

/// Takes back one event logged under `key` at `at` (a login that turned out to succeed).
pub async fn unlog(conn: &mut DbConn, key: &str, at: NaiveDateTime) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::update(rate_counters::table.find((key, at)))
            .set(rate_counters::count.eq(rate_counters::count - 1))
            .execute(c)
            .await?;
        diesel::delete(
            rate_counters::table
                .find((key, at))
                .filter(rate_counters::count.le(0)),
        )
        .execute(c)
        .await
    })
}

/// Forgets every event logged under `key`.
pub async fn forget(conn: &mut DbConn, key: &str) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::delete(rate_counters::table.filter(rate_counters::key.eq(key)))
            .execute(c)
            .await
    })
}

/// Inside a transaction: waits until no other transaction holds `key`, and holds it until this
/// one ends, so a check of a key's events and the logging of a new one happen as one step on any
/// number of instances. PostgreSQL takes a transaction-level advisory lock on a hash of the key;
/// SQLite needs nothing, as its write transactions (`BEGIN IMMEDIATE`) already run one at a time.
/// Callers take several keys in one fixed order, so two transactions never wait on each other.
pub async fn lock(conn: &mut DbConn, key: &str) -> QueryResult<()> {
    match conn {
        DbConn::Pg(c) => {
            lock_statement(key).execute(&mut **c).await?;
        }
        DbConn::Sqlite(..) => {}
    }
    Ok(())
}

/// `pg_advisory_xact_lock` on `key`'s id, prepared once per connection.
pub(super) fn lock_statement(key: &str) -> impl QueryFragment<Pg> + QueryId + Send {
    fixed_shape!(
        diesel::sql_query("SELECT pg_advisory_xact_lock($1)").bind::<BigInt, _>(lock_id(key)),
    )
}

/// A stable 64-bit id for `key` (the first 8 bytes of its SHA-256), the same on every instance.
fn lock_id(key: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("rate-counter:{key}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// Adds `amount` to the counter `key` of the window starting at `window` if it stays within
/// `limit`. Returns whether it did. Each step is one conditional statement, so concurrent
/// callers on any number of instances never push a counter past its limit. On PostgreSQL each
/// step is a transaction of its own: not for use inside another.
pub async fn take(
    conn: &mut DbConn,
    key: &str,
    window: NaiveDateTime,
    amount: i64,
    limit: i64,
) -> QueryResult<bool> {
    if amount > limit {
        return Ok(false);
    }
    // On PostgreSQL each step is one statement that commits without waiting for the disk
    // (`flight::without_waiting`): a counter is one row for all of a user's calls, which would
    // otherwise wait for each other's flushes. A crash of the database may forget the last
    // moment's requests.
    for _ in 0..2 {
        let bumped = match conn {
            DbConn::Pg(c) => {
                super::flight::without_waiting(c, bump_statement_pg(key, window, amount, limit))
                    .await?
            }
            DbConn::Sqlite(c, _) => {
                bump_statement(key, window, amount, limit)
                    .execute(&mut **c)
                    .await?
            }
        };
        if bumped == 1 {
            return Ok(true);
        }
        let created = match conn {
            DbConn::Pg(c) => {
                super::flight::without_waiting(c, create_statement_pg(key, window, amount)).await?
            }
            DbConn::Sqlite(c, _) => {
                fixed_shape!(create_statement(key, window, amount))
                    .execute(&mut **c)
                    .await?
            }
        };
        if created == 1 {
            return Ok(true);
        }
        // The row exists: either it is full, or another caller created it between our two
        // statements; the second round tells which.
    }
    Ok(false)
}

/// The values of a counter's row, as [`counter_row`] writes them.
type CounterRow<'a> = (
    diesel::dsl::Eq<rate_counters::key, &'a str>,
    diesel::dsl::Eq<rate_counters::window_start, NaiveDateTime>,
    diesel::dsl::Eq<rate_counters::count, i64>,
);

/// A counter's row: `key`'s window starting at `window`, counting `amount`.
fn counter_row(key: &str, window: NaiveDateTime, amount: i64) -> CounterRow<'_> {
    (
        rate_counters::key.eq(key),
        rate_counters::window_start.eq(window),
        rate_counters::count.eq(amount),
    )
}

/// The step of [`take`] that creates a window's counter with `amount`, unless it exists.
fn create_statement(
    key: &str,
    window: NaiveDateTime,
    amount: i64,
) -> impl diesel::query_builder::QueryFragment<Sqlite>
+ diesel::query_builder::QueryFragment<Pg>
+ QueryId
+ Send
+ '_ {
    diesel::insert_into(rate_counters::table)
        .values(counter_row(key, window, amount))
        .on_conflict((rate_counters::key, rate_counters::window_start))
        .do_nothing()
}

/// Adds `amount` to a counter without a limit (usage already spent), or logs an event at `window`.
pub async fn add(
    conn: &mut DbConn,
    key: &str,
    window: NaiveDateTime,
    amount: i64,
) -> QueryResult<usize> {
    db_run!(conn, |c| add_statement(key, window, amount)
        .execute(c)
        .await)
}

/// The step of [`take`] that adds to an existing counter within its limit, prepared once per
/// connection (diesel prepares an `UPDATE` again on every run unless told its shape is fixed).
pub(super) fn bump_statement<'a>(
    key: &'a str,
    window: NaiveDateTime,
    amount: i64,
    limit: i64,
) -> impl QueryFragment<Pg> + QueryFragment<Sqlite> + QueryId + Send + 'a {
    fixed_shape!(
        diesel::update(
            rate_counters::table
                .find((key, window))
                .filter((rate_counters::count + amount).le(limit)),
        )
        .set(rate_counters::count.eq(rate_counters::count + amount)),
    )
}

/// [`bump_statement`] on PostgreSQL, as a transaction of its own that does not wait for the disk
/// ([`super::flight::without_waiting`]).
pub(super) fn bump_statement_pg<'a>(
    key: &'a str,
    window: NaiveDateTime,
    amount: i64,
    limit: i64,
) -> impl Query<SqlType = Text> + QueryFragment<Pg> + QueryId + Send + 'a {
    fixed_shape!(
        diesel::update(
            rate_counters::table
                .find((key, window))
                .filter((rate_counters::count + amount).le(limit)),
        )
        .set(rate_counters::count.eq(rate_counters::count + amount))
        .returning(sql::<Text>(super::flight::ASYNC_COMMIT)),
    )
}

/// [`take`]'s creating step on PostgreSQL, as [`bump_statement_pg`].
pub(super) fn create_statement_pg(
    key: &str,
    window: NaiveDateTime,
    amount: i64,
) -> impl Query<SqlType = Text> + QueryFragment<Pg> + QueryId + Send + '_ {
    fixed_shape!(
        diesel::insert_into(rate_counters::table)
            .values(counter_row(key, window, amount))
            .on_conflict((rate_counters::key, rate_counters::window_start))
            .do_nothing()
            .returning(sql::<Text>(super::flight::ASYNC_COMMIT)),
    )
}

/// [`add_statement`] on PostgreSQL, as [`bump_statement_pg`]: a finished call's tokens, sent on
/// their own after its finish (`db::budgets::finish_and_settle`).
pub(crate) fn add_statement_pg(
    key: &str,
    window: NaiveDateTime,
    amount: i64,
) -> impl Query<SqlType = Text> + QueryFragment<Pg> + QueryId + Send + '_ {
    fixed_shape!(
        diesel::insert_into(rate_counters::table)
            .values(counter_row(key, window, amount))
            .on_conflict((rate_counters::key, rate_counters::window_start))
            .do_update()
            .set(rate_counters::count.eq(rate_counters::count + amount))
            .returning(sql::<Text>(super::flight::ASYNC_COMMIT)),
    )
}

/// [`add`]'s upsert, prepared once per connection (as [`bump_statement`]).
pub(crate) fn add_statement(
    key: &str,
    window: NaiveDateTime,
    amount: i64,
) -> impl QueryFragment<Pg> + QueryFragment<Sqlite> + QueryId + Send + '_ {
    fixed_shape!(
        diesel::insert_into(rate_counters::table)
            .values(counter_row(key, window, amount))
            .on_conflict((rate_counters::key, rate_counters::window_start))
            .do_update()
            .set(rate_counters::count.eq(rate_counters::count + amount)),
    )
}

/// The counter's value (0 if absent).
pub async fn peek(conn: &mut DbConn, key: &str, window: NaiveDateTime) -> QueryResult<i64> {
    db_run!(conn, |c| {
        rate_counters::table
            .find((key, window))
            .select(rate_counters::count)
            .get_result(c)
            .await
            .optional()
            .map(Option::unwrap_or_default)
    })
}

/// Forgets a counter (a successful login clears the account's failures).
pub async fn clear(conn: &mut DbConn, key: &str, window: NaiveDateTime) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::delete(rate_counters::table.find((key, window)))
            .execute(c)
            .await
    })
}

/// Deletes counters of windows that started before `before`.
pub async fn prune(conn: &mut DbConn, before: NaiveDateTime) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::delete(rate_counters::table.filter(rate_counters::window_start.lt(before)))
            .execute(c)
            .await
    })
}

/// A user's overrides: `(requests per minute, tokens per minute)`.
pub async fn overrides(
    conn: &mut DbConn,
    user_id: &str,
) -> QueryResult<Option<(Option<i64>, Option<i64>)>> {
    db_run!(conn, |c| {
        user_limits::table
            .find(user_id)
            .select((
                user_limits::requests_per_minute,
                user_limits::tokens_per_minute,
            ))
            .get_result(c)
            .await
            .optional()
    })
}

/// Sets a user's overrides (`None` falls back to the default).
pub async fn set_overrides(
    conn: &mut DbConn,
    user_id: &str,
    rpm: Option<i64>,
    tpm: Option<i64>,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::insert_into(user_limits::table)
            .values((
                user_limits::user_id.eq(user_id),
                user_limits::requests_per_minute.eq(rpm),
                user_limits::tokens_per_minute.eq(tpm),
                user_limits::updated_at.eq(now),
            ))
            .on_conflict(user_limits::user_id)
            .do_update()
            .set((
                user_limits::requests_per_minute.eq(rpm),
                user_limits::tokens_per_minute.eq(tpm),
                user_limits::updated_at.eq(now),
            ))
            .execute(c)
            .await
    })
}
