//! Queries on `users`.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;

use super::models::{NewUser, User};
use super::schema::users;
use super::{DbConn, db_run};

diesel::define_sql_function! {
    /// SQL `lower()`, the same on both backends.
    fn lower(x: Text) -> Text;
}

/// Inserts a user.
pub async fn insert(conn: &mut DbConn, new: &NewUser<'_>) -> QueryResult<User> {
    db_run!(conn, |c| {
        diesel::insert_into(users::table)
            .values(new)
            .returning(User::as_returning())
            .get_result(c)
            .await
    })
}

/// One user by id.
pub async fn find(conn: &mut DbConn, id: &str) -> QueryResult<User> {
    db_run!(conn, |c| {
        users::table
            .find(id)
            .select(User::as_select())
            .get_result(c)
            .await
    })
}

/// One user by normalised email.
pub async fn find_by_email(conn: &mut DbConn, email: &str) -> QueryResult<Option<User>> {
    db_run!(conn, |c| {
        users::table
            .filter(users::email.eq(email))
            .select(User::as_select())
            .get_result(c)
            .await
            .optional()
    })
}

/// Whether any user exists (for the bootstrap admin).
pub async fn any_exists(conn: &mut DbConn) -> QueryResult<bool> {
    db_run!(conn, |c| {
        diesel::select(diesel::dsl::exists(users::table.select(users::id)))
            .get_result(c)
            .await
    })
}

/// A page of users, newest first, optionally matching `search` (a LIKE pattern, already escaped
/// with `\` and lower-cased) on email or display name. Returns up to `limit` rows.
pub async fn page(
    conn: &mut DbConn,
    search: Option<&str>,
    before_id: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<User>> {
    db_run!(conn, |c| {
        let mut query = users::table
            .select(User::as_select())
            .order(users::id.desc())
            .limit(limit)
            .into_boxed();
        if let Some(pattern) = search {
            query = query.filter(
                users::email
                    .like(pattern)
                    .escape('\\')
                    .or(lower(users::display_name).like(pattern).escape('\\')),
            );
        }
        if let Some(before) = before_id {
            query = query.filter(users::id.lt(before));
        }
        query.load(c).await
    })
}

/// The profile fields a user may change. `None` leaves a field as it is.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct ProfileChanges<'a> {
    /// New display name.
    pub display_name: Option<&'a str>,
    /// `Some(None)` clears the avatar.
    pub avatar_url: Option<Option<&'a str>>,
    /// New settings object.
    pub settings: Option<&'a serde_json::Value>,
    /// Always set.
    pub updated_at: Option<NaiveDateTime>,
}

/// Applies profile changes and returns the updated row.
pub async fn update_profile(
    conn: &mut DbConn,
    id: &str,
    changes: &ProfileChanges<'_>,
) -> QueryResult<User> {
    db_run!(conn, |c| {
        diesel::update(users::table.find(id))
            .set(changes)
            .returning(User::as_returning())
            .get_result(c)
            .await
    })
}

/// Sets the password hash; a new password settles an admin's requirement of one.
pub async fn set_password_hash(
    conn: &mut DbConn,
    id: &str,
    hash: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::update(users::table.find(id))
            .set((
                users::password_hash.eq(hash),
                users::password_change_required_at.eq(None::<NaiveDateTime>),
                users::updated_at.eq(now),
            ))
            .execute(c)
            .await
    })
}

/// Requires a new password of the user (an admin's doing); `NotFound` for no such user.
pub async fn require_password_change(
    conn: &mut DbConn,
    id: &str,
    now: NaiveDateTime,
) -> QueryResult<User> {
    db_run!(conn, |c| {
        diesel::update(users::table.find(id))
            .set((
                users::password_change_required_at.eq(now),
                users::updated_at.eq(now),
            ))
            .returning(User::as_returning())
            .get_result(c)
            .await
    })
}

/// Sets the role and returns the updated row.
pub async fn set_role(
    conn: &mut DbConn,
    id: &str,
    role: &str,
    now: NaiveDateTime,
) -> QueryResult<User> {
    db_run!(conn, |c| {
        diesel::update(users::table.find(id))
            .set((users::role.eq(role), users::updated_at.eq(now)))
            .returning(User::as_returning())
            .get_result(c)
            .await
    })
}

/// Sets or clears `disabled_at`; returns how many rows changed.
pub async fn set_disabled(
    conn: &mut DbConn,
    id: &str,
    disabled_at: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::update(users::table.find(id))
            .set((
                users::disabled_at.eq(disabled_at),
                users::updated_at.eq(now),
            ))
            .execute(c)
            .await
    })
}
