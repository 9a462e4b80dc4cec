//! The check every request with a bearer token goes through, and the one a long-lived socket
//! repeats.

use chrono::DateTime;

use super::{Auth, Role, Viewer};
use crate::Error;
use crate::db::sessions;
use crate::services::App;

/// Turns an `Authorization` header value into an [`Auth`]: the token must be a valid, unexpired
/// JWT, its session must be live, and its user enabled.
pub async fn authenticate(app: &App, authorization: Option<&str>) -> Result<Auth, Error> {
    let Some(header) = authorization.map(str::trim).filter(|h| !h.is_empty()) else {
        return Ok(Auth::Anonymous);
    };
    let token = match header.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => {
            return Ok(Auth::Rejected(
                "expected `Authorization: Bearer <token>`".into(),
            ));
        }
    };
    let claims = match app.tokens.verify_access(token) {
        Ok(c) => c,
        Err(e) => return Ok(Auth::Rejected(e.to_string())),
    };
    let cache = app.events.access();
    if let Some(role) = cache.get(&claims.sub, &claims.sid) {
        return Ok(Auth::User(Viewer {
            expires_at: DateTime::from_timestamp(claims.exp, 0),
            user_id: claims.sub,
            session_id: claims.sid,
            role,
        }));
    }
    let generation = cache.generation();
    let mut conn = app.db.get().await?;
    let Some((role, disabled_at, revoked_at)) =
        crate::db::on_call_path(sessions::access_state(&mut conn, &claims.sub, &claims.sid))
            .await?
    else {
        return Ok(Auth::Rejected("session not found".into()));
    };
    if revoked_at.is_some() {
        return Ok(Auth::Rejected("session has ended; log in again".into()));
    }
    if disabled_at.is_some() {
        return Ok(Auth::Rejected("this account is disabled".into()));
    }
    drop(conn);
    let role = Role::parse(&role)
        .ok_or_else(|| Error::Internal(format!("user {} has unknown role {role}", claims.sub)))?;
    cache.put(generation, &claims.sub, &claims.sid, role);
    Ok(Auth::User(Viewer {
        expires_at: DateTime::from_timestamp(claims.exp, 0),
        user_id: claims.sub,
        session_id: claims.sid,
        role,
    }))
}

/// Whether a credential checked again now still grants what it granted when a long-lived
/// connection was opened with it: the same user and session, still live, with the same role.
/// `Err` says why not.
pub fn still_valid(opened_as: &Viewer, now: &Auth) -> Result<(), String> {
    match now {
        Auth::Rejected(why) => Err(why.clone()),
        Auth::Anonymous => Err("credentials are missing".into()),
        Auth::User(v) if v.user_id != opened_as.user_id || v.session_id != opened_as.session_id => {
            Err("credentials changed".into())
        }
        Auth::User(v) if v.role != opened_as.role => Err("your role changed; connect again".into()),
        Auth::User(_) => Ok(()),
    }
}
