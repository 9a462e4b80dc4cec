//! Access tokens (HS256 JWTs, short-lived), refresh tokens and invite codes (random, stored only
//! as SHA-256).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use password_hash::rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;

const ISSUER: &str = "cloudbase-ai";

/// Signing key and lifetimes, from config.
pub struct TokenSettings {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// How long an access token is valid (15 minutes by default).
    pub access_ttl: Duration,
    /// How long a refresh token, and an idle session, stay valid.
    pub refresh_ttl: Duration,
}

/// The claims of an access token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The session id; revoking the session kills the token at once.
    pub sid: String,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Expires at (seconds since the epoch).
    pub exp: i64,
    /// Always `cloudbase-ai`.
    pub iss: String,
}

impl TokenSettings {
    /// Settings for an HMAC secret of at least 32 bytes.
    pub fn new(secret: &[u8], access_ttl: Duration, refresh_ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl,
            refresh_ttl,
        }
    }

    /// Signs an access token for a session; returns it with its expiry.
    pub fn issue_access(
        &self,
        user_id: &str,
        session_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>), Error> {
        let expires_at = now + self.access_ttl;
        let claims = Claims {
            sub: user_id.to_owned(),
            sid: session_id.to_owned(),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            iss: ISSUER.to_owned(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::Internal(format!("signing access token: {e}")))?;
        Ok((token, expires_at))
    }

    /// Checks signature, issuer and expiry. Says nothing about revocation (see `auth::authenticate`).
    pub fn verify_access(&self, token: &str) -> Result<Claims, Error> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    Error::Unauthenticated("access token expired".into())
                }
                _ => Error::Unauthenticated("invalid access token".into()),
            })
    }
}

/// `N` random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

/// `prefix` and `N` random bytes, URL-safe; with the SHA-256 that is stored instead.
fn new_stored_secret<const N: usize>(prefix: &str) -> (String, String) {
    let secret = format!("{prefix}{}", URL_SAFE_NO_PAD.encode(random_bytes::<N>()));
    let hash = sha256_hex(&secret);
    (secret, hash)
}

/// A fresh refresh token (256 random bits, URL-safe) and the hash that is stored.
pub fn new_refresh_token() -> (String, String) {
    new_stored_secret::<32>("cbr_")
}

/// The stored form of a refresh token.
pub fn hash_refresh_token(token: &str) -> String {
    sha256_hex(token)
}

/// A fresh invite code (128 random bits, URL-safe) and the hash that is stored.
pub fn new_invite_code() -> (String, String) {
    new_stored_secret::<16>("cbi_")
}

/// The stored form of an invite code (surrounding spaces from a paste do not count).
pub fn hash_invite_code(code: &str) -> String {
    sha256_hex(code.trim())
}

/// A fresh API key (`cb-` and 256 random bits, URL-safe) and the hash that is stored.
pub fn new_api_key() -> (String, String) {
    new_stored_secret::<32>("cb-")
}

/// The stored form of an API key.
pub fn hash_api_key(key: &str) -> String {
    sha256_hex(key)
}

/// A fresh two-step sign-in challenge (256 random bits, URL-safe) and the hash that is stored.
pub fn new_mfa_challenge() -> (String, String) {
    new_stored_secret::<32>("cbm_")
}

/// A fresh password reset token (256 random bits, URL-safe) and the hash that is stored.
pub fn new_reset_token() -> (String, String) {
    new_stored_secret::<32>("cbp_")
}

/// The stored form of a one-time secret a client presents back: a two-step sign-in challenge, a
/// recovery code (normalised first), a password reset token. Surrounding spaces do not count.
pub fn hash_presented(text: &str) -> String {
    sha256_hex(text.trim())
}

fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// 256 random bits, URL-safe base64: for generated secrets such as the dev JWT key.
pub fn random_secret() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}
