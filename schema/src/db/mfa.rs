//! Queries on two-step sign-in: `mfa_secrets`, `mfa_recovery_codes`, `mfa_challenges`, and
//! `users.mfa_enabled_at`. TOTP secrets are sealed here, on their way in and out.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::{mfa_challenges, mfa_recovery_codes, mfa_secrets, users};
use super::{DbConn, db_run};
use crate::services::sealing::{self, Column, Sealer};

/// A user's TOTP secret (base32, opened) and the last time step a code was accepted for.
pub async fn secret(
    conn: &mut DbConn,
    sealer: &Sealer,
    user_id: &str,
) -> QueryResult<Option<(String, Option<i64>)>> {
    let row: Option<(String, Option<i64>)> = db_run!(conn, |c| {
        mfa_secrets::table
            .find(user_id)
            .select((mfa_secrets::secret, mfa_secrets::last_step))
            .get_result(c)
            .await
            .optional()
    })?;
    row.map(|(secret, step)| {
        sealer
            .open(Column::MfaSecret, user_id, secret)
            .map(|s| (s, step))
            .map_err(sealing::db_error)
    })
    .transpose()
}

/// Stores a new secret for `user_id`, replacing any earlier one (two statements: run it in a
/// transaction).
pub async fn put_secret(
    conn: &mut DbConn,
    sealer: &Sealer,
    user_id: &str,
    secret: &str,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let secret = sealer.seal(Column::MfaSecret, user_id, secret);
    db_run!(conn, |c| {
        diesel::delete(mfa_secrets::table.find(user_id))
            .execute(c)
            .await?;
        diesel::insert_into(mfa_secrets::table)
            .values((
                mfa_secrets::user_id.eq(user_id),
                mfa_secrets::secret.eq(&secret),
                mfa_secrets::created_at.eq(now),
            ))
            .execute(c)
            .await
            .map(drop)
    })
}

/// Records that a code of time step `step` was accepted, unless one of that step or a later one
/// already was: `false` means the code is a replay.
pub async fn accept_step(conn: &mut DbConn, user_id: &str, step: i64) -> QueryResult<bool> {
    db_run!(conn, |c| {
        diesel::update(mfa_secrets::table.find(user_id))
            .filter(
                mfa_secrets::last_step
                    .is_null()
                    .or(mfa_secrets::last_step.lt(step)),
            )
            .set(mfa_secrets::last_step.eq(step))
            .execute(c)
            .await
            .map(|n| n == 1)
    })
}

/// Turns two-step sign-in on for `user_id`; `false` if it already was.
pub async fn enable(conn: &mut DbConn, user_id: &str, now: NaiveDateTime) -> QueryResult<bool> {
    db_run!(conn, |c| {
        diesel::update(users::table.find(user_id))
            .filter(users::mfa_enabled_at.is_null())
            .set((users::mfa_enabled_at.eq(now), users::updated_at.eq(now)))
            .execute(c)
            .await
            .map(|n| n == 1)
    })
}

/// Turns two-step sign-in off for `user_id` and forgets its secret, recovery codes and open
/// challenges; `false` if it was not on (a pending enrolment is forgotten all the same).
pub async fn disable(conn: &mut DbConn, user_id: &str, now: NaiveDateTime) -> QueryResult<bool> {
    db_run!(conn, |c| {
        diesel::delete(mfa_secrets::table.find(user_id))
            .execute(c)
            .await?;
        diesel::delete(mfa_recovery_codes::table.filter(mfa_recovery_codes::user_id.eq(user_id)))
            .execute(c)
            .await?;
        diesel::delete(mfa_challenges::table.filter(mfa_challenges::user_id.eq(user_id)))
            .execute(c)
            .await?;
        diesel::update(users::table.find(user_id))
            .filter(users::mfa_enabled_at.is_not_null())
            .set((
                users::mfa_enabled_at.eq(None::<NaiveDateTime>),
                users::updated_at.eq(now),
            ))
            .execute(c)
            .await
            .map(|n| n == 1)
    })
}

/// Replaces `user_id`'s recovery codes with `hashes`.
pub async fn replace_recovery_codes(
    conn: &mut DbConn,
    user_id: &str,
    hashes: &[String],
    now: NaiveDateTime,
) -> QueryResult<()> {
    db_run!(conn, |c| {
        diesel::delete(mfa_recovery_codes::table.filter(mfa_recovery_codes::user_id.eq(user_id)))
            .execute(c)
            .await?;
        for hash in hashes {
            diesel::insert_into(mfa_recovery_codes::table)
                .values((
                    mfa_recovery_codes::id.eq(uuid::Uuid::now_v7().to_string()),
                    mfa_recovery_codes::user_id.eq(user_id),
                    mfa_recovery_codes::code_hash.eq(hash),
                    mfa_recovery_codes::created_at.eq(now),
                ))
                .execute(c)
                .await?;
        }
        Ok(())
    })
}

/// Uses up the unused recovery code of `user_id` whose hash is `hash`; `false` if there is none.
pub async fn use_recovery_code(
    conn: &mut DbConn,
    user_id: &str,
    hash: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    db_run!(conn, |c| {
        diesel::update(mfa_recovery_codes::table)
            .filter(mfa_recovery_codes::user_id.eq(user_id))
            .filter(mfa_recovery_codes::code_hash.eq(hash))
            .filter(mfa_recovery_codes::used_at.is_null())
            .set(mfa_recovery_codes::used_at.eq(now))
            .execute(c)
            .await
            .map(|n| n >= 1)
    })
}

/// How many of `user_id`'s recovery codes are unused.
pub async fn recovery_codes_left(conn: &mut DbConn, user_id: &str) -> QueryResult<i64> {
    db_run!(conn, |c| {
        mfa_recovery_codes::table
            .filter(mfa_recovery_codes::user_id.eq(user_id))
            .filter(mfa_recovery_codes::used_at.is_null())
            .count()
            .get_result(c)
            .await
    })
}

/// Opens a login challenge for `user_id`, keyed by the hash of what the client holds.
pub async fn open_challenge(
    conn: &mut DbConn,
    id: &str,
    user_id: &str,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> QueryResult<()> {
    db_run!(conn, |c| {
        diesel::insert_into(mfa_challenges::table)
            .values((
                mfa_challenges::id.eq(id),
                mfa_challenges::user_id.eq(user_id),
                mfa_challenges::created_at.eq(now),
                mfa_challenges::expires_at.eq(expires_at),
            ))
            .execute(c)
            .await
            .map(drop)
    })
}

/// The user of a live challenge (unused, unexpired, fewer than `max_failures` attempts).
pub async fn live_challenge(
    conn: &mut DbConn,
    id: &str,
    now: NaiveDateTime,
    max_failures: i32,
) -> QueryResult<Option<String>> {
    db_run!(conn, |c| {
        mfa_challenges::table
            .find(id)
            .filter(mfa_challenges::used_at.is_null())
            .filter(mfa_challenges::expires_at.gt(now))
            .filter(mfa_challenges::failures.lt(max_failures))
            .select(mfa_challenges::user_id)
            .get_result(c)
            .await
            .optional()
    })
}

/// Counts one attempt at a live challenge (unused, unexpired, fewer than `max_failures`
/// attempts not taken back) as a failure *before* its code is checked, so parallel guesses cannot
/// all pass the limit, and returns its user; `None` when the challenge is not live.
pub async fn take_attempt(
    conn: &mut DbConn,
    id: &str,
    now: NaiveDateTime,
    max_failures: i32,
) -> QueryResult<Option<String>> {
    db_run!(conn, |c| {
        diesel::update(mfa_challenges::table.find(id))
            .filter(mfa_challenges::used_at.is_null())
            .filter(mfa_challenges::expires_at.gt(now))
            .filter(mfa_challenges::failures.lt(max_failures))
            .set(mfa_challenges::failures.eq(mfa_challenges::failures + 1))
            .returning(mfa_challenges::user_id)
            .get_result(c)
            .await
            .optional()
    })
}

/// Closes a challenge whose code was right, taking its attempt back; `false` if another attempt
/// closed it first.
pub async fn close_challenge(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> QueryResult<bool> {
    db_run!(conn, |c| {
        diesel::update(mfa_challenges::table.find(id))
            .filter(mfa_challenges::used_at.is_null())
            .set((
                mfa_challenges::used_at.eq(now),
                mfa_challenges::failures.eq(mfa_challenges::failures - 1),
            ))
            .execute(c)
            .await
            .map(|n| n == 1)
    })
}

/// Ends `user_id`'s open challenges (its password changed: a challenge the old one earned must
/// not outlive it).
pub async fn end_challenges(conn: &mut DbConn, user_id: &str) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::delete(mfa_challenges::table.filter(mfa_challenges::user_id.eq(user_id)))
            .execute(c)
            .await
    })
}

/// Deletes challenges that expired before `before`, at most `limit`; returns how many.
pub async fn prune_challenges(
    conn: &mut DbConn,
    before: NaiveDateTime,
    limit: i64,
) -> QueryResult<usize> {
    db_run!(conn, |c| {
        let ids: Vec<String> = mfa_challenges::table
            .filter(mfa_challenges::expires_at.lt(before))
            .select(mfa_challenges::id)
            .limit(limit)
            .load(c)
            .await?;
        diesel::delete(mfa_challenges::table.filter(mfa_challenges::id.eq_any(&ids)))
            .execute(c)
            .await
    })
}
