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
//! - [`reset`]: a password reset link by email, and an admin's requirement of a new password.
//! - [`wechat`]: WeChat mini-program sign-in, linking and unlinking.
//! - [`uses`]: when a session or API key was last used.

mod check;
mod devices;
pub mod mfa;
pub mod reset;
mod sessions;
mod uses;
pub mod wechat;

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::Error;
use crate::db::models::User;
use crate::services::api_keys::{KeyGrant, KeyScope};

pub use check::{authenticate, change_access, still_valid};
pub use devices::{list_sessions, revoke_other_sessions, revoke_session, revoke_user_sessions};
pub use mfa::SignIn;
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

/// `[auth]` settings of accounts: two-step sign-in and password reset by email.
#[derive(Debug, Clone)]
pub struct AccountSettings {
    /// The issuer authenticator apps show.
    pub mfa_issuer: String,
    /// Whether admins must have two-step sign-in on before they may do anything but enrol.
    pub mfa_required_for_admins: bool,
    /// The notifier instance (an `email` one) that sends password reset links; `None`: no reset
    /// by email.
    pub reset_channel: Option<String>,
    /// The reset link, with `{token}` where the token goes.
    pub reset_url: String,
}

impl Default for AccountSettings {
    fn default() -> Self {
        Self {
            mfa_issuer: "CloudBase AI".into(),
            mfa_required_for_admins: false,
            reset_channel: None,
            reset_url: "http://127.0.0.1:8080/console#/reset-password?token={token}".into(),
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
    /// What the account must do before anything else, if anything: only that step, reading its
    /// own account and signing out are open to it ([`Auth::limited_viewer`]).
    pub due: Option<Due>,
}

/// A step an account owes before it may do anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// An admin without two-step sign-in while `[auth] require_mfa_for_admins` is on: enrol.
    MfaEnrolment,
    /// An admin required a new password (`requirePasswordChange`): change it.
    PasswordChange,
}

impl Due {
    /// The error everything else gets meanwhile.
    pub fn error(self) -> Error {
        match self {
            Due::MfaEnrolment => Error::MfaRequired(
                "admins must turn on two-step sign-in first: startMfaEnrolment, then \
                 confirmMfaEnrolment"
                    .into(),
            ),
            Due::PasswordChange => Error::PasswordChangeRequired(
                "an administrator requires a new password for this account: changePassword first"
                    .into(),
            ),
        }
    }
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

    /// `MFA_REQUIRED` or `PASSWORD_CHANGE_REQUIRED` while the account owes that step first
    /// ([`Viewer::due`]).
    pub fn require_nothing_due(&self) -> Result<&Self, Error> {
        match self.due {
            Some(due) => Err(due.error()),
            None => Ok(self),
        }
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
    /// The viewer, or `UNAUTHENTICATED`; `MFA_REQUIRED` or `PASSWORD_CHANGE_REQUIRED` while the
    /// account owes that step first.
    pub fn viewer(&self) -> Result<&Viewer, Error> {
        self.limited_viewer()?.require_nothing_due()
    }

    /// The viewer even while its account owes a step ([`Due`]): for taking that step (enrolling
    /// in two-step sign-in, changing the password), reading one's own account and signing out.
    pub fn limited_viewer(&self) -> Result<&Viewer, Error> {
        match self {
            Auth::User(v) => Ok(v),
            Auth::Anonymous => Err(Error::unauthenticated()),
            Auth::Rejected(why) => Err(Error::Unauthenticated(why.clone())),
        }
    }
}

/// What the access check knows of an account besides its sessions: kept with each cached
/// session or key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// The role.
    pub role: Role,
    /// Whether two-step sign-in is on.
    pub mfa: bool,
    /// Whether an admin required a new password.
    pub password_due: bool,
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
