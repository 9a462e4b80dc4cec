//! Accounts as data: creating users, profiles, and the admin's user management.

use super::auth::{Role, Viewer, change_access};
use super::{App, validate};
use crate::Error;
use crate::db::models::{NewUser, User};
use crate::db::users::ProfileChanges;
use crate::db::{DbConn, sessions, users as queries};
use crate::error::is_unique_violation;

/// A new account's fields, validated and normalised, and the password's hash.
#[derive(Debug)]
pub struct NewAccount {
    /// Normalised email.
    pub email: String,
    /// Trimmed display name.
    pub display_name: String,
    /// An argon2id PHC string.
    pub password_hash: String,
}

/// Checks a new account's fields: the email's shape (normalised), the password's length and
/// strength (judged against the email and name too), the display name. Returns the normalised
/// email and name.
pub fn check_new(
    email: &str,
    password: &str,
    display_name: &str,
) -> Result<(String, String), Error> {
    let email = validate::email("input.email", email)?;
    let display_name = validate::display_name("input.displayName", display_name)?;
    validate::password("input.password", password, &[&email, &display_name])?;
    Ok((email, display_name))
}

/// Inserts a checked account with `role`; an email already taken is a `CONFLICT`.
pub async fn insert(
    conn: &mut DbConn,
    account: &NewAccount,
    role: Role,
    now: chrono::NaiveDateTime,
) -> Result<User, Error> {
    let id = uuid::Uuid::now_v7().to_string();
    let settings = serde_json::json!({});
    let new = NewUser {
        id: &id,
        email: &account.email,
        password_hash: &account.password_hash,
        display_name: &account.display_name,
        settings: &settings,
        role: role.as_str(),
        created_at: now,
        updated_at: now,
    };
    queries::insert(conn, &new).await.map_err(|e| {
        if is_unique_violation(&e) {
            Error::Conflict("an account with this email already exists".into())
        } else {
            e.into()
        }
    })
}

/// Creates a user after validating every field. Used by the CLI and the bootstrap admin;
/// `register` goes through [`super::registration`], which adds its own checks.
pub async fn create(
    app: &App,
    email: &str,
    password: &str,
    display_name: &str,
    role: Role,
) -> Result<User, Error> {
    let (email, display_name) = check_new(email, password, display_name)?;
    let account = NewAccount {
        email,
        display_name,
        password_hash: app.passwords.hash(password).await?,
    };
    let mut conn = app.db.get().await?;
    insert(&mut conn, &account, role, app.now()).await
}

/// An account an admin makes for someone, whatever the registration mode (closed included), with
/// the role the admin chooses. The same checks as registration, except the invite and the
/// per-address limit; no starting budget (the admin sets budgets).
pub async fn create_by_admin(
    app: &App,
    viewer: &Viewer,
    email: &str,
    password: &str,
    display_name: &str,
    role: Role,
) -> Result<User, Error> {
    viewer.require_admin()?;
    let user = create(app, email, password, display_name, role).await?;
    tracing::info!(
        target: "cloudbase::event::user",
        role = role.as_str(), user.id = %user.id, admin.id = %viewer.user_id, "user created by an admin"
    );
    Ok(user)
}

/// Creates the first admin from config when the database has no users at all. Returns whether it
/// did. Safe when several instances start together: the loser of the race finds the admin made.
pub async fn ensure_bootstrap_admin(app: &App, email: &str, password: &str) -> Result<bool, Error> {
    let mut conn = app.db.get().await?;
    if queries::any_exists(&mut conn).await? {
        return Ok(false);
    }
    drop(conn);
    match create(app, email, password, "Administrator", Role::Admin).await {
        Ok(user) => {
            tracing::info!(user.id = %user.id, "bootstrap admin created");
            Ok(true)
        }
        // Another instance starting at the same time created it first.
        Err(Error::Conflict(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// One user, visible to that user and to admins.
pub async fn get(app: &App, viewer: &Viewer, id: &str) -> Result<User, Error> {
    viewer.require_self_or_admin(id)?;
    validate::id("id", id)?;
    let mut conn = app.db.get().await?;
    queries::find(&mut conn, id).await.map_err(not_found)
}

/// `NOT_FOUND` for a user id that names nobody.
pub(crate) fn not_found(e: diesel::result::Error) -> Error {
    match e {
        diesel::result::Error::NotFound => Error::NotFound("user"),
        other => other.into(),
    }
}

/// Profile fields to change; `None` leaves a field alone.
#[derive(Debug, Default)]
pub struct ProfileUpdate {
    /// New display name.
    pub display_name: Option<String>,
    /// `Some(None)` clears the avatar.
    pub avatar_url: Option<Option<String>>,
    /// Replaces the settings object.
    pub settings: Option<serde_json::Value>,
}

/// Updates the viewer's own profile.
pub async fn update_profile(
    app: &App,
    viewer: &Viewer,
    update: ProfileUpdate,
) -> Result<User, Error> {
    let display_name = update
        .display_name
        .map(|n| validate::display_name("input.displayName", &n))
        .transpose()?;
    let avatar_url = match update.avatar_url {
        Some(Some(url)) => Some(Some(validate::url("input.avatarUrl", &url)?)),
        Some(None) => Some(None),
        None => None,
    };
    if let Some(settings) = &update.settings {
        validate::settings("input.settings", settings)?;
    }
    let changes = ProfileChanges {
        display_name: display_name.as_deref(),
        avatar_url: avatar_url.as_ref().map(|u| u.as_deref()),
        settings: update.settings.as_ref(),
        updated_at: Some(app.now()),
    };
    let mut conn = app.db.get().await?;
    conn.write(async |c| {
        queries::update_profile(c, &viewer.user_id, &changes)
            .await
            .map_err(not_found)
    })
    .await
}

/// One page of users for an admin, newest first.
pub struct UserPage {
    /// The users on this page.
    pub users: Vec<User>,
    /// Whether more follow.
    pub has_next_page: bool,
}

/// Lists users (admin only), newest first, `first` at a time after the cursor `after` (a user id),
/// matching `search` in email or display name, case-insensitively.
pub async fn list(
    app: &App,
    viewer: &Viewer,
    first: Option<i32>,
    after: Option<&str>,
    search: Option<&str>,
) -> Result<UserPage, Error> {
    viewer.require_admin()?;
    let limit = validate::page_size(first)?;
    if let Some(after) = after {
        validate::id("after", after)?;
    }
    let pattern = search
        .map(|s| validate::like_pattern("search", s))
        .transpose()?
        .flatten();
    let mut conn = app.db.get().await?;
    let mut users = queries::page(&mut conn, pattern.as_deref(), after, limit + 1).await?;
    let has_next_page = users.len() as i64 > limit;
    users.truncate(limit as usize);
    Ok(UserPage {
        users,
        has_next_page,
    })
}

fn not_self(viewer: &Viewer, user_id: &str, what: &str) -> Result<(), Error> {
    if viewer.user_id == user_id {
        return Err(Error::bad_input(
            "userId",
            format!("admins cannot {what} their own account; ask another admin"),
        ));
    }
    Ok(())
}

/// Changes a user's role (admin only; not on oneself, so the last admin cannot lock everyone out).
pub async fn set_role(
    app: &App,
    viewer: &Viewer,
    user_id: &str,
    role: Role,
) -> Result<User, Error> {
    viewer.require_admin()?;
    validate::id("userId", user_id)?;
    not_self(viewer, user_id, "change the role of")?;
    let user = change_access(app, user_id, async |tx| {
        queries::set_role(tx, user_id, role.as_str(), app.now())
            .await
            .map_err(not_found)
    })
    .await?;
    tracing::info!(user.id = %user_id, role = role.as_str(), admin.id = %viewer.user_id, "user role changed");
    Ok(user)
}

/// Disables or re-enables a user (admin only). Disabling revokes every session, so the user's
/// tokens stop working at once.
pub async fn set_disabled(
    app: &App,
    viewer: &Viewer,
    user_id: &str,
    disabled: bool,
) -> Result<User, Error> {
    viewer.require_admin()?;
    validate::id("userId", user_id)?;
    not_self(viewer, user_id, "disable or enable")?;
    let now = app.now();
    let user = change_access(app, user_id, async |tx| {
        let user = queries::find(tx, user_id).await.map_err(not_found)?;
        if disabled {
            let at = user.disabled_at.unwrap_or(now);
            queries::set_disabled(tx, user_id, Some(at), now).await?;
            sessions::revoke_all_for_user(tx, user_id, None, now, "user_disabled").await?;
        } else {
            queries::set_disabled(tx, user_id, None, now).await?;
        }
        Ok(queries::find(tx, user_id).await?)
    })
    .await?;
    tracing::info!(user.id = %user_id, disabled, admin.id = %viewer.user_id, "user access changed");
    Ok(user)
}
