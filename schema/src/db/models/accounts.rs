//! Accounts: users, their sessions and refresh tokens, and invite codes.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{invites, refresh_tokens, sessions, users};

/// A row of `users`.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users)]
pub struct User {
    /// UUIDv7.
    pub id: String,
    /// Lower-cased and trimmed.
    pub email: String,
    /// An argon2id PHC string.
    pub password_hash: String,
    /// Shown in the UI.
    pub display_name: String,
    /// An http(s) URL, if set.
    pub avatar_url: Option<String>,
    /// Free-form client settings (a JSON object).
    pub settings: serde_json::Value,
    /// `USER` or `ADMIN`.
    pub role: String,
    /// Set while the account is disabled.
    pub disabled_at: Option<NaiveDateTime>,
    /// UTC.
    pub created_at: NaiveDateTime,
    /// UTC.
    pub updated_at: NaiveDateTime,
    /// When two-step sign-in (TOTP) was turned on, while it is on.
    pub mfa_enabled_at: Option<NaiveDateTime>,
    /// When an admin required a new password, until it is changed.
    pub password_change_required_at: Option<NaiveDateTime>,
}

/// What the access check reads of a user with each session or API key.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct AccountState {
    /// `USER` or `ADMIN`.
    pub role: String,
    /// Set while the account is disabled.
    pub disabled_at: Option<NaiveDateTime>,
    /// Set while two-step sign-in is on.
    pub mfa_enabled_at: Option<NaiveDateTime>,
    /// Set while an admin requires a new password.
    pub password_change_required_at: Option<NaiveDateTime>,
}

/// An insert into `users`.
#[derive(Debug, Insertable)]
#[diesel(table_name = users, treat_none_as_default_value = false)]
pub struct NewUser<'a> {
    /// UUIDv7.
    pub id: &'a str,
    /// Already normalised.
    pub email: &'a str,
    /// An argon2id PHC string.
    pub password_hash: &'a str,
    /// Already validated.
    pub display_name: &'a str,
    /// An empty object for a new user.
    pub settings: &'a serde_json::Value,
    /// `USER` or `ADMIN`.
    pub role: &'a str,
    /// UTC.
    pub created_at: NaiveDateTime,
    /// UTC.
    pub updated_at: NaiveDateTime,
}

/// A row of `sessions`: one login, and the family of refresh tokens it rotates through.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = sessions)]
pub struct Session {
    /// UUIDv7; the `sid` claim of access tokens.
    pub id: String,
    /// The owner.
    pub user_id: String,
    /// UTC.
    pub created_at: NaiveDateTime,
    /// When the last refresh happened.
    pub last_refreshed_at: NaiveDateTime,
    /// After this the session cannot be refreshed.
    pub expires_at: NaiveDateTime,
    /// Set by logout, password change, disabling the user, or refresh-token reuse.
    pub revoked_at: Option<NaiveDateTime>,
    /// Why it was revoked.
    pub revoked_reason: Option<String>,
    /// The client's `User-Agent` at login.
    pub user_agent: Option<String>,
    /// The client's address at login.
    pub client_ip: Option<String>,
    /// When an access token of the session was last used (to the minute).
    pub last_used_at: Option<NaiveDateTime>,
    /// From where.
    pub last_used_ip: Option<String>,
}

/// An insert into `sessions`.
#[derive(Debug, Insertable)]
#[diesel(table_name = sessions, treat_none_as_default_value = false)]
pub struct NewSession<'a> {
    /// UUIDv7.
    pub id: &'a str,
    /// The owner.
    pub user_id: &'a str,
    /// UTC.
    pub created_at: NaiveDateTime,
    /// Same as `created_at` at first.
    pub last_refreshed_at: NaiveDateTime,
    /// UTC.
    pub expires_at: NaiveDateTime,
    /// Truncated to 512 characters.
    pub user_agent: Option<&'a str>,
    /// The client's address.
    pub client_ip: Option<&'a str>,
}

/// An insert into `refresh_tokens`. Only the SHA-256 of the token is stored.
#[derive(Debug, Insertable)]
#[diesel(table_name = refresh_tokens, treat_none_as_default_value = false)]
pub struct NewRefreshToken<'a> {
    /// UUIDv7.
    pub id: &'a str,
    /// The family.
    pub session_id: &'a str,
    /// Hex SHA-256 of the token.
    pub token_hash: &'a str,
    /// UTC.
    pub created_at: NaiveDateTime,
    /// UTC.
    pub expires_at: NaiveDateTime,
}

/// A row of `invites`: a single-use code that lets someone register in `invite` mode. Only the
/// code's SHA-256 is stored.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = invites, treat_none_as_default_value = false)]
pub struct Invite {
    /// UUIDv7.
    pub id: String,
    /// Hex SHA-256 of the code.
    pub code_hash: String,
    /// Free text from the admin (whom it is for).
    pub note: Option<String>,
    /// The admin who created it.
    pub created_by: Option<String>,
    /// UTC.
    pub created_at: NaiveDateTime,
    /// After this it no longer works; `None` never expires.
    pub expires_at: Option<NaiveDateTime>,
    /// The account registered with it.
    pub used_by: Option<String>,
    /// When it was used (it works once).
    pub used_at: Option<NaiveDateTime>,
    /// When an admin revoked it.
    pub revoked_at: Option<NaiveDateTime>,
}

/// A row of `api_keys`: a long-lived credential of one user. Only the secret's SHA-256 is kept.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, Identifiable)]
#[diesel(table_name = crate::db::schema::api_keys, treat_none_as_default_value = false)]
pub struct ApiKey {
    /// UUIDv7.
    pub id: String,
    /// The owner.
    pub user_id: String,
    /// What the owner calls it.
    pub name: String,
    /// The start of the secret (`cb-` and 8 characters), to recognise it by.
    pub prefix: String,
    /// SHA-256 of the whole secret, hex.
    pub secret_hash: String,
    /// `CHAT` or `FULL`.
    pub scope: String,
    /// A JSON array of `provider/model` names; `None` allows every model.
    pub allowed_models: Option<String>,
    /// The key's own request limit.
    pub requests_per_minute: Option<i64>,
    /// The key's own token limit.
    pub tokens_per_minute: Option<i64>,
    /// UTC.
    pub created_at: NaiveDateTime,
    /// After this the key is refused.
    pub expires_at: Option<NaiveDateTime>,
    /// Set once revoked (refused from then on).
    pub revoked_at: Option<NaiveDateTime>,
    /// When it last authenticated a request (kept to the minute).
    pub last_used_at: Option<NaiveDateTime>,
    /// From which address.
    pub last_used_ip: Option<String>,
    /// The first key of its rotation chain (its own id unless made by a rotation); the key's
    /// own budget and rate limits belong to the family, so a rotation keeps them.
    pub family_id: String,
}

/// A row of `signing_keys`: a key that signs access tokens from `signs_from`, and verifies them
/// until `verifies_until` (`None`: while it is, or will be, the signer).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = crate::db::schema::signing_keys)]
pub struct SigningKeyRow {
    /// The `kid` tokens name it by.
    pub kid: String,
    /// Its place in the order of rotations (the legacy HS256 key is 0).
    pub generation: i64,
    /// `EdDSA`, or `HS256` for the secret from before rotation existed.
    pub algorithm: String,
    /// The private half (PKCS#8), sealed with the master key; `None` for `HS256`.
    pub private_key: Option<String>,
    /// The public half (32 bytes, base64url), published in the JWKS; `None` for `HS256`.
    pub public_key: Option<String>,
    /// UTC.
    pub created_at: NaiveDateTime,
    /// When it becomes the signer (UTC).
    pub signs_from: NaiveDateTime,
    /// When it stops verifying (UTC).
    pub verifies_until: Option<NaiveDateTime>,
}
