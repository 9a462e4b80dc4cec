//! The check every request with a bearer token goes through, and the one a long-lived socket
//! repeats.

use std::sync::Arc;

use chrono::DateTime;

use super::uses::{Credential, note_use};
use super::{Auth, Due, Role, Standing, Viewer};
use crate::Error;
use crate::db::models::AccountState;
use crate::db::{DbConn, api_keys, sessions};
use crate::events::Event;
use crate::services::App;
use crate::services::api_keys::KeyGrant;
use crate::services::tokens;

/// Turns an `Authorization` header value into an [`Auth`]: the token must be a valid, unexpired
/// JWT whose session is live, or a live API key (`cb-…`); and its user enabled. `client_ip`, when
/// given, is noted as the session's or key's last use (a socket's periodic re-check gives none).
pub async fn authenticate(
    app: &App,
    authorization: Option<&str>,
    client_ip: Option<&str>,
) -> Result<Auth, Error> {
    let auth = check(app, authorization).await?;
    if let (Auth::User(v), Some(ip)) = (&auth, client_ip) {
        let used = match v.key_id() {
            Some(id) => Credential::Key(id),
            None => Credential::Session(&v.session_id),
        };
        note_use(app, used, Some(ip));
    }
    Ok(auth)
}

async fn check(app: &App, authorization: Option<&str>) -> Result<Auth, Error> {
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
    if token.starts_with("cb-") {
        return authenticate_key(app, token).await;
    }
    let claims = match app.tokens.verify_access(token, app.clock.now()) {
        Ok(c) => c,
        Err(e) => return Ok(Auth::Rejected(e.to_string())),
    };
    let cache = app.events.access();
    if let Some(standing) = cache.get(&claims.sub, &claims.sid) {
        return Ok(Auth::User(Viewer {
            expires_at: DateTime::from_timestamp(claims.exp, 0),
            user_id: claims.sub,
            session_id: claims.sid,
            role: standing.role,
            key: None,
            due: due(app, standing),
        }));
    }
    let generation = cache.generation();
    let mut conn = app.db.get().await?;
    let Some((account, revoked_at)) =
        crate::db::on_call_path(sessions::access_state(&mut conn, &claims.sub, &claims.sid))
            .await?
    else {
        return Ok(Auth::Rejected("session not found".into()));
    };
    if revoked_at.is_some() {
        return Ok(Auth::Rejected("session has ended; log in again".into()));
    }
    if account.disabled_at.is_some() {
        return Ok(Auth::Rejected("this account is disabled".into()));
    }
    drop(conn);
    let standing = standing(&claims.sub, &account)?;
    cache.put(generation, &claims.sub, &claims.sid, standing);
    Ok(Auth::User(Viewer {
        expires_at: DateTime::from_timestamp(claims.exp, 0),
        user_id: claims.sub,
        session_id: claims.sid,
        role: standing.role,
        key: None,
        due: due(app, standing),
    }))
}

fn standing(user_id: &str, account: &AccountState) -> Result<Standing, Error> {
    let role = Role::parse(&account.role).ok_or_else(|| {
        Error::Internal(format!("user {user_id} has unknown role {}", account.role))
    })?;
    Ok(Standing {
        role,
        mfa: account.mfa_enabled_at.is_some(),
        password_due: account.password_change_required_at.is_some(),
    })
}

/// What the account must do before anything else, if anything.
fn due(app: &App, standing: Standing) -> Option<Due> {
    if standing.password_due {
        Some(Due::PasswordChange)
    } else if app.account.mfa_required_for_admins && standing.role == Role::Admin && !standing.mfa {
        Some(Due::MfaEnrolment)
    } else {
        None
    }
}

/// The check of an API key: a known secret, not revoked or expired, of an enabled user.
async fn authenticate_key(app: &App, secret: &str) -> Result<Auth, Error> {
    let hash = tokens::hash_api_key(secret);
    let cache = app.events.access();
    let now = app.now();
    let (user_id, standing, grant) = match cache.get_key(&hash) {
        Some(hit) => hit,
        None => {
            let generation = cache.generation();
            let mut conn = app.db.get().await?;
            let found = crate::db::on_call_path(api_keys::by_hash(&mut conn, &hash)).await?;
            drop(conn);
            let Some((key, account)) = found else {
                return Ok(Auth::Rejected("invalid API key".into()));
            };
            if account.disabled_at.is_some() {
                return Ok(Auth::Rejected("this account is disabled".into()));
            }
            let standing = standing(&key.user_id, &account)?;
            let grant = Arc::new(KeyGrant::of(&key)?);
            cache.put_key(
                generation,
                &hash,
                &key.user_id,
                standing,
                Arc::clone(&grant),
            );
            (key.user_id, standing, grant)
        }
    };
    if let Some(why) = grant.refusal(now) {
        return Ok(Auth::Rejected(why.into()));
    }
    // A socket opened with the key ends when the key does.
    let ends = match (grant.expires_at, grant.revoked_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok(Auth::User(Viewer {
        user_id,
        session_id: grant.id.clone(),
        role: standing.role,
        expires_at: ends.map(|t| t.and_utc()),
        key: Some(grant),
        due: due(app, standing),
    }))
}

/// Makes a change to `user_id`'s access (ends sessions or keys, changes the role, disables the
/// account) in one transaction that also tells every other instance, and returns once no
/// instance can accept what the change ended: at once on one instance, after the access
/// caches' horizon on several (see [`crate::services::access_cache::Horizon`]). Holds its pooled
/// connection for the transaction only.
pub async fn change_access<T>(
    app: &App,
    user_id: &str,
    body: impl AsyncFnOnce(&mut DbConn) -> Result<T, Error>,
) -> Result<T, Error> {
    let event = Event::AccessChanged {
        user_id: user_id.to_owned(),
    };
    let mut conn = app.db.get().await?;
    let out = conn
        .transaction(async |tx| {
            let out = body(tx).await?;
            app.events.tell_others_in(tx, &event).await?;
            Ok(out)
        })
        .await?;
    drop(conn);
    app.events.told(event).await;
    Ok(out)
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
        Auth::User(v) if v.due.is_some() && v.due != opened_as.due => Err(
            "this account owes a step first (a new password, or two-step sign-in); connect again"
                .into(),
        ),
        Auth::User(_) => Ok(()),
    }
}
