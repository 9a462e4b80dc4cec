//! A user's sessions (one per sign-in: a browser, a phone, a script) as the user and admins see
//! them, and ending them: one, every one but the current, or (admins) all of a user's. An ended
//! session stops at once on every instance, on HTTP and on open WebSockets ([`change_access`]).

use diesel::OptionalExtension;

use super::{Viewer, change_access};
use crate::Error;
use crate::db::models::Session;
use crate::db::sessions;
use crate::services::{App, validate};

/// Sessions listed at most (the most recently started).
const SESSIONS_LISTED: i64 = 200;

/// The live sessions of the viewer, or (admins) of `user_id`, newest first.
pub async fn list_sessions(
    app: &App,
    viewer: &Viewer,
    user_id: Option<&str>,
) -> Result<Vec<Session>, Error> {
    let target = whose(viewer, user_id)?;
    let mut conn = app.db.get().await?;
    Ok(sessions::live_for_user(&mut conn, target, app.now(), SESSIONS_LISTED).await?)
}

/// The viewer's own id, or another user's for an admin.
fn whose<'a>(viewer: &'a Viewer, user_id: Option<&'a str>) -> Result<&'a str, Error> {
    match user_id {
        Some(u) if u != viewer.user_id => {
            viewer.require_admin()?;
            validate::id("userId", u)?;
            Ok(u)
        }
        _ => Ok(&viewer.user_id),
    }
}

/// Ends one session: the viewer's own, or (admins) anyone's. Ending an ended one changes nothing.
pub async fn revoke_session(app: &App, viewer: &Viewer, id: &str) -> Result<Session, Error> {
    validate::id("id", id)?;
    let mut conn = app.db.get().await?;
    let found = sessions::find(&mut conn, id).await.optional()?;
    drop(conn);
    // Another user's session is as unknown to a user as one that does not exist.
    let Some(session) = found.filter(|s| s.user_id == viewer.user_id || viewer.is_admin()) else {
        return Err(Error::NotFound("no such session"));
    };
    if session.revoked_at.is_some() {
        return Ok(session);
    }
    let reason = if session.user_id == viewer.user_id {
        "revoked_by_user"
    } else {
        "revoked_by_admin"
    };
    let now = app.now();
    let session = change_access(app, &session.user_id, async |tx| {
        sessions::revoke(tx, id, now, reason).await?;
        Ok(sessions::find(tx, id).await?)
    })
    .await?;
    tracing::info!(session.id = %id, user.id = %session.user_id, by = %viewer.user_id, "session revoked");
    Ok(session)
}

/// Ends every session of the viewer but the one making the request. Returns how many ended.
pub async fn revoke_other_sessions(app: &App, viewer: &Viewer) -> Result<i64, Error> {
    let now = app.now();
    let ended = change_access(app, &viewer.user_id, async |tx| {
        Ok(sessions::revoke_all_for_user(
            tx,
            &viewer.user_id,
            Some(&viewer.session_id),
            now,
            "revoked_by_user",
        )
        .await?)
    })
    .await?;
    tracing::info!(user.id = %viewer.user_id, ended, "other sessions revoked");
    Ok(i64::try_from(ended).unwrap_or(i64::MAX))
}

/// Ends every session of `user_id` (admins). Returns how many ended.
pub async fn revoke_user_sessions(app: &App, viewer: &Viewer, user_id: &str) -> Result<i64, Error> {
    viewer.require_admin()?;
    validate::id("userId", user_id)?;
    let now = app.now();
    let ended = change_access(app, user_id, async |tx| {
        Ok(sessions::revoke_all_for_user(tx, user_id, None, now, "revoked_by_admin").await?)
    })
    .await?;
    tracing::info!(user.id = %user_id, by = %viewer.user_id, ended, "a user's sessions revoked");
    Ok(i64::try_from(ended).unwrap_or(i64::MAX))
}
