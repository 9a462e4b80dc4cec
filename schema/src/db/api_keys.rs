//! Queries on `api_keys`.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::models::{AccountState, ApiKey};
use super::schema::{api_keys, users};
use super::{DbConn, db_run};

/// What an admin or the owner may change on a key (`None`: unchanged; `Some(None)`: cleared).
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = api_keys)]
pub struct KeyChanges {
    /// A new name.
    pub name: Option<String>,
    /// `CHAT` or `FULL`.
    pub scope: Option<String>,
    /// The allowed models (JSON array), or every model.
    pub allowed_models: Option<Option<String>>,
    /// The key's request limit.
    pub requests_per_minute: Option<Option<i64>>,
    /// The key's token limit.
    pub tokens_per_minute: Option<Option<i64>>,
    /// When it stops working.
    pub expires_at: Option<Option<NaiveDateTime>>,
}

/// Inserts a key.
pub async fn insert(conn: &mut DbConn, key: &ApiKey) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::insert_into(api_keys::table)
            .values(key)
            .execute(c)
            .await
    })
}

/// One key.
pub async fn find(conn: &mut DbConn, id: &str) -> QueryResult<ApiKey> {
    db_run!(conn, |c| {
        api_keys::table
            .find(id)
            .select(ApiKey::as_select())
            .get_result(c)
            .await
    })
}

/// The key with this secret hash, with its owner's [`AccountState`].
pub async fn by_hash(
    conn: &mut DbConn,
    secret_hash: &str,
) -> QueryResult<Option<(ApiKey, AccountState)>> {
    db_run!(conn, |c| {
        api_keys::table
            .inner_join(users::table)
            .filter(api_keys::secret_hash.eq(secret_hash))
            .select((ApiKey::as_select(), AccountState::as_select()))
            .first(c)
            .await
            .optional()
    })
}

/// Keys newest first: one user's, or everyone's; at most `limit`.
pub async fn list(
    conn: &mut DbConn,
    user_id: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<ApiKey>> {
    db_run!(conn, |c| {
        let mut query = api_keys::table
            .select(ApiKey::as_select())
            .order(api_keys::id.desc())
            .limit(limit)
            .into_boxed();
        if let Some(user) = user_id {
            query = query.filter(api_keys::user_id.eq(user));
        }
        query.load(c).await
    })
}

/// Applies `changes` to a live (unrevoked) key; the updated row, or `None` when there is none.
pub async fn update(
    conn: &mut DbConn,
    id: &str,
    changes: &KeyChanges,
) -> QueryResult<Option<ApiKey>> {
    db_run!(conn, |c| {
        diesel::update(
            api_keys::table
                .find(id)
                .filter(api_keys::revoked_at.is_null()),
        )
        .set(changes)
        .returning(ApiKey::as_returning())
        .get_result(c)
        .await
        .optional()
    })
}

/// Revokes a key at `at`, unless it is already revoked by then. Whether it changed.
pub async fn revoke(conn: &mut DbConn, id: &str, at: NaiveDateTime) -> QueryResult<bool> {
    db_run!(conn, |c| {
        diesel::update(
            api_keys::table.find(id).filter(
                api_keys::revoked_at
                    .is_null()
                    .or(api_keys::revoked_at.gt(at)),
            ),
        )
        .set(api_keys::revoked_at.eq(at))
        .execute(c)
        .await
        .map(|n| n == 1)
    })
}

/// Records that a key authenticated a request at `at` from `ip`.
pub async fn touch(
    conn: &mut DbConn,
    id: &str,
    at: NaiveDateTime,
    ip: Option<&str>,
) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::update(api_keys::table.find(id))
            .set((api_keys::last_used_at.eq(at), api_keys::last_used_ip.eq(ip)))
            .execute(c)
            .await
    })
}
