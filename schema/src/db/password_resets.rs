//! Queries on `password_resets`: reset links sent by email, stored as the SHA-256 of their token.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::password_resets;
use super::{DbConn, db_run};

/// Stores a reset token (its hash) for `user_id`.
pub async fn insert(
    conn: &mut DbConn,
    id: &str,
    user_id: &str,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
    requested_ip: Option<&str>,
) -> QueryResult<()> {
    db_run!(conn, |c| {
        diesel::insert_into(password_resets::table)
            .values((
                password_resets::id.eq(id),
                password_resets::user_id.eq(user_id),
                password_resets::created_at.eq(now),
                password_resets::expires_at.eq(expires_at),
                password_resets::requested_ip.eq(requested_ip),
            ))
            .execute(c)
            .await
            .map(drop)
    })
}

/// Uses up a live token (unused, unexpired) and returns its user; `None` when there is none, so
/// of two requests with one token only one gets it.
pub async fn consume(
    conn: &mut DbConn,
    id: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<String>> {
    db_run!(conn, |c| {
        diesel::update(password_resets::table.find(id))
            .filter(password_resets::used_at.is_null())
            .filter(password_resets::expires_at.gt(now))
            .set(password_resets::used_at.eq(now))
            .returning(password_resets::user_id)
            .get_result(c)
            .await
            .optional()
    })
}

/// The user of a live token, without using it.
pub async fn live(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> QueryResult<Option<String>> {
    db_run!(conn, |c| {
        password_resets::table
            .find(id)
            .filter(password_resets::used_at.is_null())
            .filter(password_resets::expires_at.gt(now))
            .select(password_resets::user_id)
            .get_result(c)
            .await
            .optional()
    })
}

/// Ends every other live token of `user_id` (a reset used one; the rest must not outlive it).
pub async fn end_all(conn: &mut DbConn, user_id: &str, now: NaiveDateTime) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::update(password_resets::table)
            .filter(password_resets::user_id.eq(user_id))
            .filter(password_resets::used_at.is_null())
            .set(password_resets::used_at.eq(now))
            .execute(c)
            .await
    })
}

/// Deletes tokens that expired before `before`, at most `limit`; returns how many.
pub async fn prune(conn: &mut DbConn, before: NaiveDateTime, limit: i64) -> QueryResult<usize> {
    db_run!(conn, |c| {
        let ids: Vec<String> = password_resets::table
            .filter(password_resets::expires_at.lt(before))
            .select(password_resets::id)
            .limit(limit)
            .load(c)
            .await?;
        diesel::delete(password_resets::table.filter(password_resets::id.eq_any(&ids)))
            .execute(c)
            .await
    })
}
