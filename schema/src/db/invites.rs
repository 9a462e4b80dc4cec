//! Queries on `invites`.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::models::Invite;
use super::schema::invites;
use super::{DbConn, db_run};

/// Unused, not revoked, and not expired at `now`: the one definition of a usable invite.
#[diesel::dsl::auto_type]
fn usable_now(now: NaiveDateTime) -> _ {
    invites::used_at
        .is_null()
        .and(invites::revoked_at.is_null())
        .and(
            invites::expires_at
                .is_null()
                .or(invites::expires_at.gt(now)),
        )
}

/// Inserts an invite.
pub async fn insert(conn: &mut DbConn, invite: &Invite) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::insert_into(invites::table)
            .values(invite)
            .execute(c)
            .await
    })
}

/// One invite by id.
pub async fn find(conn: &mut DbConn, id: &str) -> QueryResult<Invite> {
    db_run!(conn, |c| {
        invites::table
            .find(id)
            .select(Invite::as_select())
            .get_result(c)
            .await
    })
}

/// Whether the code with this hash can be used now: unused, not revoked, not expired.
pub async fn usable(conn: &mut DbConn, code_hash: &str, now: NaiveDateTime) -> QueryResult<bool> {
    db_run!(conn, |c| {
        diesel::select(diesel::dsl::exists(
            invites::table
                .filter(invites::code_hash.eq(code_hash))
                .filter(usable_now(now)),
        ))
        .get_result(c)
        .await
    })
}

/// Uses the code with this hash for `user_id` if it is still usable. One conditional statement,
/// so of two registrations with one code exactly one claims it. Returns whether this one did.
pub async fn claim(
    conn: &mut DbConn,
    code_hash: &str,
    user_id: &str,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let claimed = db_run!(conn, |c| {
        diesel::update(
            invites::table
                .filter(invites::code_hash.eq(code_hash))
                .filter(usable_now(now)),
        )
        .set((invites::used_at.eq(now), invites::used_by.eq(user_id)))
        .execute(c)
        .await
    })?;
    Ok(claimed == 1)
}

/// A page of invites, newest first, before the id `before_id`; only those still usable at `now`
/// when `usable_at` is set. Returns up to `limit` rows.
pub async fn page(
    conn: &mut DbConn,
    usable_at: Option<NaiveDateTime>,
    before_id: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<Invite>> {
    db_run!(conn, |c| {
        let mut query = invites::table
            .select(Invite::as_select())
            .order(invites::id.desc())
            .limit(limit)
            .into_boxed();
        if let Some(now) = usable_at {
            query = query.filter(usable_now(now));
        }
        if let Some(before) = before_id {
            query = query.filter(invites::id.lt(before));
        }
        query.load(c).await
    })
}

/// Revokes an unused invite (a revoked one stays revoked at its first time). Returns how many
/// rows changed: 0 when it is unknown or already used.
pub async fn revoke(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::update(
            invites::table
                .find(id)
                .filter(invites::used_at.is_null())
                .filter(invites::revoked_at.is_null()),
        )
        .set(invites::revoked_at.eq(now))
        .execute(c)
        .await
    })
}
