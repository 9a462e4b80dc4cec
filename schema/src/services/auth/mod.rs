//! Sessions and credentials: register, login, refresh-token rotation, logout, password change,
//! and [`authenticate`], which every request with a bearer token goes through.
//!
//! A session is one login. Its refresh tokens rotate: each is single-use, and presenting a used one
//! again (a stolen copy, or a replay) revokes the whole session. Access tokens carry the session id,
//! and `authenticate` checks the session and the user on every request, so logout, a password
//! change or disabling a user takes effect at once (through [`super::access_cache`], which every
//! such change empties for the user before it returns).
//!
//! - [`sessions`]: register, login, refresh-token rotation, logout, password change.
//! - [`check`]: [`authenticate`], [`change_access`], and whether a long-lived socket's viewer is
//!   still valid.
//! - [`devices`]: a user's sessions, listed and ended one by one or all but the current one.
//! - [`mfa`]: two-step sign-in with TOTP.
//! - [`uses`]: when a session or API key was last used.

mod check;
mod devices;
pub mod mfa;
mod sessions;
mod uses;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::Error;
use crate::db::models::User;
use crate::services::api_keys::{KeyGrant, KeyScope};

pub use check::{authenticate, change_access, still_valid};
pub use devices::{list_sessions, revoke_other_sessions, revoke_session, revoke_user_sessions};
pub use mfa::{MfaSettings, SignIn};
pub use sessions::{change_password, login, logout, refresh, register};
pub use uses::Uses;

/// A user's role.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An ordinary user: sees only their own data.
    User,
    /// Manages users, prices, budgets, plugins; sees everything.
    Admin,
}

impl Role {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "USER",
            Role::Admin => "ADMIN",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "USER" => Some(Role::User),
            "ADMIN" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// The user.
    pub user_id: String,
    /// The session behind the access token (for an API key: the key's id).
    pub session_id: String,
    /// The role as stored now (not as it was when the token was signed).
    pub role: Role,
    /// When the access token (or API key) expires; long-lived subscriptions end then.
    pub expires_at: Option<DateTime<Utc>>,
    /// The API key the request came with, and what it grants (`None`: a session's token).
    pub key: Option<Arc<KeyGrant>>,
    /// An admin without two-step sign-in while `[auth] require_mfa_for_admins` is on: may only
    /// enrol ([`Auth::enrolling_viewer`]); everything else is `MFA_REQUIRED`.
    pub mfa_due: bool,
}

impl Viewer {
    /// The API key's id, when the request came with one.
    pub fn key_id(&self) -> Option<&str> {
        self.key.as_deref().map(|k| k.id.as_str())
    }

    /// `FORBIDDEN` for an API key of scope `CHAT`, which may chat and list models only.
    pub fn require_full_access(&self) -> Result<&Self, Error> {
        match self.key.as_deref() {
            Some(key) if key.scope == KeyScope::Chat => Err(Error::Forbidden(
                "this API key has scope CHAT: it may call chat, chatStream and models only".into(),
            )),
            _ => Ok(self),
        }
    }

    /// `MFA_REQUIRED` while the viewer must enrol in two-step sign-in first ([`Viewer::mfa_due`]).
    pub fn require_mfa_standing(&self) -> Result<&Self, Error> {
        if self.mfa_due {
            return Err(mfa_due());
        }
        Ok(self)
    }

    /// Whether the viewer is an admin.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// `FORBIDDEN` unless the viewer is an admin.
    pub fn require_admin(&self) -> Result<&Self, Error> {
        if self.is_admin() {
            Ok(self)
        } else {
            Err(Error::Forbidden("this needs the ADMIN role".into()))
        }
    }

    /// `FORBIDDEN` unless the viewer is `user_id` or an admin.
    pub fn require_self_or_admin(&self, user_id: &str) -> Result<&Self, Error> {
        if self.is_admin() || self.user_id == user_id {
            Ok(self)
        } else {
            Err(Error::Forbidden(
                "you can only access your own account".into(),
            ))
        }
    }
}

/// Who is asking, as decided once per request.
#[derive(Debug, Clone)]
pub enum Auth {
    /// No credentials were sent.
    Anonymous,
    /// Credentials were sent and rejected; the message says why.
    Rejected(String),
    /// A valid, live session.
    User(Viewer),
}

impl Auth {
    /// The viewer, or `UNAUTHENTICATED`; `MFA_REQUIRED` while the viewer must enrol in two-step
    /// sign-in first.
    pub fn viewer(&self) -> Result<&Viewer, Error> {
        self.enrolling_viewer()?.require_mfa_standing()
    }

    /// The viewer even while it must enrol in two-step sign-in first: for enrolling, reading
    /// one's own account and signing out.
    pub fn enrolling_viewer(&self) -> Result<&Viewer, Error> {
        match self {
            Auth::User(v) => Ok(v),
            Auth::Anonymous => Err(Error::unauthenticated()),
            Auth::Rejected(why) => Err(Error::Unauthenticated(why.clone())),
        }
    }
}

/// What an admin without two-step sign-in gets under `[auth] require_mfa_for_admins`.
pub fn mfa_due() -> Error {
    Error::MfaRequired(
        "admins must turn on two-step sign-in first: startMfaEnrolment, then confirmMfaEnrolment"
            .into(),
    )
}

/// What the access check knows of an account besides its sessions: kept with each cached
/// session or key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// The role.
    pub role: Role,
    /// Whether two-step sign-in is on.
    pub mfa: bool,
}

/// Facts about the HTTP request, for sessions, logs and the audit trail.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    /// Also sent back in `x-request-id`.
    pub request_id: String,
    /// The client's address: the peer, or behind `[http] trusted_proxies` the
    /// `X-Forwarded-For` entry the outermost trusted proxy wrote.
    pub client_ip: Option<String>,
    /// The `User-Agent` header, truncated.
    pub user_agent: Option<String>,
}

/// What login, register and refresh return.
#[derive(Debug)]
pub struct AuthTokens {
    /// A JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// When the access token expires.
    pub access_token_expires_at: DateTime<Utc>,
    /// Single-use; trade it for new tokens with `refreshSession`.
    pub refresh_token: String,
    /// When the refresh token expires.
    pub refresh_token_expires_at: DateTime<Utc>,
    /// The signed-in user.
    pub user: User,
}
