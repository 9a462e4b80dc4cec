//! Invite codes for `invite` registration mode: admins create, list and revoke them.
//!
//! A code is 128 random bits, shown once when it is created; only its SHA-256 is stored. It works
//! for one registration, until its optional expiry, unless revoked. Creating and revoking are
//! mutations, so the audit trail records who did it (the code itself is never an argument).

use chrono::{DateTime, Utc};

use super::{App, Viewer, tokens, validate};
use crate::Error;
use crate::db::invites as queries;
use crate::db::models::Invite;

/// Longest note on an invite, in characters.
pub const NOTE_MAX: usize = 200;
/// Furthest an expiry may lie ahead.
pub const EXPIRY_MAX_DAYS: i64 = 366;

/// Where an invite stands.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteState {
    /// It can be used.
    Active,
    /// Someone registered with it.
    Used,
    /// An admin revoked it.
    Revoked,
    /// Its time ran out.
    Expired,
}

/// Where `invite` stands at `now`.
pub fn state(invite: &Invite, now: DateTime<Utc>) -> InviteState {
    if invite.used_at.is_some() {
        InviteState::Used
    } else if invite.revoked_at.is_some() {
        InviteState::Revoked
    } else if invite.expires_at.is_some_and(|at| at <= now.naive_utc()) {
        InviteState::Expired
    } else {
        InviteState::Active
    }
}

/// Creates an invite (admin only). Returns the code, which is never shown again, and the row.
pub async fn create(
    app: &App,
    viewer: &Viewer,
    note: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<(String, Invite), Error> {
    viewer.require_admin()?;
    let now = app.clock.now();
    if let Some(at) = expires_at
        && (at <= now || at > now + chrono::Duration::days(EXPIRY_MAX_DAYS))
    {
        return Err(Error::bad_input(
            "input.expiresAt",
            format!("expiresAt must be in the future, at most {EXPIRY_MAX_DAYS} days ahead"),
        ));
    }
    let note = note.map(str::trim).filter(|n| !n.is_empty());
    if let Some(note) = note
        && (note.chars().count() > NOTE_MAX || note.chars().any(char::is_control))
    {
        return Err(Error::bad_input(
            "input.note",
            format!("note must be at most {NOTE_MAX} characters with no control characters"),
        ));
    }
    let (code, code_hash) = tokens::new_invite_code();
    let invite = Invite {
        id: uuid::Uuid::now_v7().to_string(),
        code_hash,
        note: note.map(str::to_owned),
        created_by: Some(viewer.user_id.clone()),
        created_at: now.naive_utc(),
        expires_at: expires_at.map(|at| crate::clock::truncate_micros(at).naive_utc()),
        used_by: None,
        used_at: None,
        revoked_at: None,
    };
    let mut conn = app.db.get().await?;
    queries::insert(&mut conn, &invite).await?;
    tracing::info!(invite.id = %invite.id, admin.id = %viewer.user_id, "invite created");
    Ok((code, invite))
}

/// One page of invites.
pub struct InvitePage {
    /// The invites on this page, newest first.
    pub invites: Vec<Invite>,
    /// Whether more follow.
    pub has_next_page: bool,
}

/// Lists invites (admin only), newest first, `first` at a time after the cursor `after` (an
/// invite id); only those that can still be used when `active_only`.
pub async fn list(
    app: &App,
    viewer: &Viewer,
    first: Option<i32>,
    after: Option<&str>,
    active_only: bool,
) -> Result<InvitePage, Error> {
    viewer.require_admin()?;
    let limit = validate::page_size(first)?;
    if let Some(after) = after {
        validate::id("after", after)?;
    }
    let usable_at = active_only.then(|| app.now());
    let mut conn = app.db.get().await?;
    let mut invites = queries::page(&mut conn, usable_at, after, limit + 1).await?;
    let has_next_page = invites.len() as i64 > limit;
    invites.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(InvitePage {
        invites,
        has_next_page,
    })
}

/// Revokes an invite that has not been used (admin only). Revoking a revoked one changes nothing;
/// a used one is a `CONFLICT`.
pub async fn revoke(app: &App, viewer: &Viewer, id: &str) -> Result<Invite, Error> {
    viewer.require_admin()?;
    validate::id("id", id)?;
    let mut conn = app.db.get().await?;
    queries::revoke(&mut conn, id, app.now()).await?;
    let invite = queries::find(&mut conn, id).await.map_err(|e| match e {
        diesel::result::Error::NotFound => Error::NotFound("invite"),
        other => other.into(),
    })?;
    if invite.used_at.is_some() {
        return Err(Error::Conflict(
            "this invite was already used; disable the account instead".into(),
        ));
    }
    tracing::info!(invite.id = %id, admin.id = %viewer.user_id, "invite revoked");
    Ok(invite)
}
