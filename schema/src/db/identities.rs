//! Queries on `user_identities`: WeChat `openid`s (and `unionid`s) linked to users.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::user_identities;
use super::{DbConn, db_run};

/// The user `subject` of `provider` signs in, or failing that (when given) the user linked to the
/// same `union_id`.
pub async fn find_user(
    conn: &mut DbConn,
    provider: &str,
    subject: &str,
    union_id: Option<&str>,
) -> QueryResult<Option<String>> {
    let by_subject = db_run!(conn, |c| {
        user_identities::table
            .find((provider, subject))
            .select(user_identities::user_id)
            .get_result::<String>(c)
            .await
            .optional()
    })?;
    match (by_subject, union_id) {
        (Some(user), _) => Ok(Some(user)),
        (None, Some(union_id)) => db_run!(conn, |c| {
            user_identities::table
                .filter(user_identities::provider.eq(provider))
                .filter(user_identities::union_id.eq(union_id))
                .select(user_identities::user_id)
                .first::<String>(c)
                .await
                .optional()
        }),
        (None, None) => Ok(None),
    }
}

/// Links `subject` of `provider` to `user_id`; a unique violation means it (or another identity
/// of that provider for the user) is linked already.
pub async fn link(
    conn: &mut DbConn,
    provider: &str,
    subject: &str,
    user_id: &str,
    union_id: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<()> {
    db_run!(conn, |c| {
        diesel::insert_into(user_identities::table)
            .values((
                user_identities::provider.eq(provider),
                user_identities::subject.eq(subject),
                user_identities::user_id.eq(user_id),
                user_identities::union_id.eq(union_id),
                user_identities::created_at.eq(now),
                user_identities::last_used_at.eq(now),
            ))
            .execute(c)
            .await
            .map(drop)
    })
}

/// Notes a sign-in with `subject` (and learns its `union_id` when WeChat now gives one).
pub async fn used(
    conn: &mut DbConn,
    provider: &str,
    subject: &str,
    union_id: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    db_run!(conn, |c| {
        let target = user_identities::table.find((provider, subject));
        match union_id {
            Some(union_id) => {
                diesel::update(target)
                    .set((
                        user_identities::last_used_at.eq(now),
                        user_identities::union_id.eq(union_id),
                    ))
                    .execute(c)
                    .await
            }
            None => {
                diesel::update(target)
                    .set(user_identities::last_used_at.eq(now))
                    .execute(c)
                    .await
            }
        }
    })
}

/// Unlinks `user_id`'s identity of `provider`; returns how many rows went.
pub async fn unlink(conn: &mut DbConn, provider: &str, user_id: &str) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::delete(
            user_identities::table
                .filter(user_identities::provider.eq(provider))
                .filter(user_identities::user_id.eq(user_id)),
        )
        .execute(c)
        .await
    })
}

/// Whether `user_id` has an identity of `provider`.
pub async fn has(conn: &mut DbConn, provider: &str, user_id: &str) -> QueryResult<bool> {
    db_run!(conn, |c| {
        diesel::select(diesel::dsl::exists(
            user_identities::table
                .filter(user_identities::provider.eq(provider))
                .filter(user_identities::user_id.eq(user_id)),
        ))
        .get_result(c)
        .await
    })
}
