//! Queries on `rate_counters` and `user_limits`.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::{rate_counters, user_limits};
use super::{DbConn, db_run};

/// Adds `amount` to the counter `key` of the window starting at `window` if it stays within
/// `limit`. Returns whether it did. Each step is one conditional statement, so concurrent
/// callers on any number of instances never push a counter past its limit.
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
    for _ in 0..2 {
        let bumped = db_run!(conn, |c| {
            diesel::update(
                rate_counters::table
                    .find((key, window))
                    .filter((rate_counters::count + amount).le(limit)),
            )
            .set(rate_counters::count.eq(rate_counters::count + amount))
            .execute(c)
            .await
        })?;
        if bumped == 1 {
            return Ok(true);
        }
        let created = db_run!(conn, |c| {
            diesel::insert_into(rate_counters::table)
                .values((
                    rate_counters::key.eq(key),
                    rate_counters::window_start.eq(window),
                    rate_counters::count.eq(amount),
                ))
                .on_conflict((rate_counters::key, rate_counters::window_start))
                .do_nothing()
                .execute(c)
                .await
        })?;
        if created == 1 {
            return Ok(true);
        }
        // The row exists: either it is full, or another caller created it between our two
        // statements; the second round tells which.
    }
    Ok(false)
}

/// Adds `amount` to a counter without a limit (usage already spent, failed logins).
pub async fn add(
    conn: &mut DbConn,
    key: &str,
    window: NaiveDateTime,
    amount: i64,
) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::insert_into(rate_counters::table)
            .values((
                rate_counters::key.eq(key),
                rate_counters::window_start.eq(window),
                rate_counters::count.eq(amount),
            ))
            .on_conflict((rate_counters::key, rate_counters::window_start))
            .do_update()
            .set(rate_counters::count.eq(rate_counters::count + amount))
            .execute(c)
            .await
    })
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
