//! Queries on `sessions` and `refresh_tokens`.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::models::{AccountState, NewRefreshToken, NewSession, Session};
use super::schema::{refresh_tokens, sessions, users};
use super::{DbConn, db_run};

/// Whether the account with this (normalised) email started a session from `client_ip` at or
/// after `since`: the address has signed in to it before (the login throttle trusts it).
pub async fn address_known(
    conn: &mut DbConn,
    email: &str,
    client_ip: &str,
    since: NaiveDateTime,
) -> QueryResult<bool> {
    db_run!(conn, |c| {
        diesel::select(diesel::dsl::exists(
            sessions::table
                .inner_join(users::table)
                .filter(users::email.eq(email))
                .filter(sessions::client_ip.eq(client_ip))
                .filter(sessions::created_at.ge(since))
                .select(sessions::id),
        ))
        .get_result(c)
        .await
    })
}

/// Inserts a session.
pub async fn insert(conn: &mut DbConn, new: &NewSession<'_>) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::insert_into(sessions::table)
            .values(new)
            .execute(c)
            .await
    })
}

/// Inserts a refresh token.
pub async fn insert_refresh_token(
    conn: &mut DbConn,
    new: &NewRefreshToken<'_>,
) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::insert_into(refresh_tokens::table)
            .values(new)
            .execute(c)
            .await
    })
}

/// Marks an unused, unexpired refresh token as used, atomically, and returns its session id.
/// `None` means the token is unknown, expired, or was already used (see [`refresh_token_state`]).
pub async fn consume_refresh_token(
    conn: &mut DbConn,
    token_hash: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<String>> {
    db_run!(conn, |c| {
        diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::token_hash.eq(token_hash))
                .filter(refresh_tokens::used_at.is_null())
                .filter(refresh_tokens::expires_at.gt(now)),
        )
        .set(refresh_tokens::used_at.eq(now))
        .returning(refresh_tokens::session_id)
        .get_result(c)
        .await
        .optional()
    })
}

/// `(session id, used at, expires at)` of a refresh token, whatever its state.
pub async fn refresh_token_state(
    conn: &mut DbConn,
    token_hash: &str,
) -> QueryResult<Option<(String, Option<NaiveDateTime>, NaiveDateTime)>> {
    db_run!(conn, |c| {
        refresh_tokens::table
            .filter(refresh_tokens::token_hash.eq(token_hash))
            .select((
                refresh_tokens::session_id,
                refresh_tokens::used_at,
                refresh_tokens::expires_at,
            ))
            .get_result(c)
            .await
            .optional()
    })
}

/// One session by id.
pub async fn find(conn: &mut DbConn, id: &str) -> QueryResult<Session> {
    db_run!(conn, |c| {
        sessions::table
            .find(id)
            .select(Session::as_select())
            .get_result(c)
            .await
    })
}

/// Records a refresh and extends the session.
pub async fn touch(
    conn: &mut DbConn,
    id: &str,
    now: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::update(sessions::table.find(id))
            .set((
                sessions::last_refreshed_at.eq(now),
                sessions::expires_at.eq(expires_at),
            ))
            .execute(c)
            .await
    })
}

/// Revokes one session if it is still live. Returns how many rows changed (0 or 1).
pub async fn revoke(
    conn: &mut DbConn,
    id: &str,
    now: NaiveDateTime,
    reason: &str,
) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::update(
            sessions::table
                .find(id)
                .filter(sessions::revoked_at.is_null()),
        )
        .set((
            sessions::revoked_at.eq(now),
            sessions::revoked_reason.eq(reason),
        ))
        .execute(c)
        .await
    })
}

/// Revokes every live session of a user, except `keep` if given.
pub async fn revoke_all_for_user(
    conn: &mut DbConn,
    user_id: &str,
    keep: Option<&str>,
    now: NaiveDateTime,
    reason: &str,
) -> QueryResult<usize> {
    db_run!(conn, |c| {
        let mut query = diesel::update(sessions::table)
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked_at.is_null())
            .into_boxed();
        if let Some(keep) = keep {
            query = query.filter(sessions::id.ne(keep));
        }
        query
            .set((
                sessions::revoked_at.eq(now),
                sessions::revoked_reason.eq(reason),
            ))
            .execute(c)
            .await
    })
}

/// What every authenticated request checks: the user's [`AccountState`] and when the session
/// behind the token was revoked. `None` if either row is gone.
pub async fn access_state(
    conn: &mut DbConn,
    user_id: &str,
    session_id: &str,
) -> QueryResult<Option<(AccountState, Option<NaiveDateTime>)>> {
    db_run!(conn, |c| {
        sessions::table
            .inner_join(users::table)
            .filter(sessions::id.eq(session_id))
            .filter(users::id.eq(user_id))
            .select((AccountState::as_select(), sessions::revoked_at))
            .get_result(c)
            .await
            .optional()
    })
}

/// A user's live sessions (not revoked, not past `now`), the most recently started first, at
/// most `limit`.
pub async fn live_for_user(
    conn: &mut DbConn,
    user_id: &str,
    now: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<Session>> {
    db_run!(conn, |c| {
        sessions::table
            .filter(sessions::user_id.eq(user_id))
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(now))
            .order((sessions::created_at.desc(), sessions::id.desc()))
            .limit(limit)
            .select(Session::as_select())
            .load(c)
            .await
    })
}

/// Records that an access token of the session was used at `at`, from `ip`.
pub async fn note_use(
    conn: &mut DbConn,
    id: &str,
    at: NaiveDateTime,
    ip: Option<&str>,
) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::update(sessions::table.find(id))
            .set((sessions::last_used_at.eq(at), sessions::last_used_ip.eq(ip)))
            .execute(c)
            .await
    })
}
