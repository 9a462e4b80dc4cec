//! Access tokens (JWTs signed with Ed25519 keys that rotate, short-lived), refresh tokens and
//! invite codes (random, stored only as SHA-256).
//!
//! The keys an instance signs and verifies with are a [`Keyring`] it reloads whenever they change
//! (`services::signing`): each token names its key (`kid`), the newest key whose time has come
//! signs, and the others verify until the tokens they signed have run out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use password_hash::rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;

const ISSUER: &str = "cloudbase-ai";

/// The `kid` of the HS256 secret from before signing keys rotated (tokens it signed carry no
/// `kid`).
pub const LEGACY_KID: &str = "hs256-legacy";

/// A key that signs, from a time on.
pub struct Signer {
    /// Its `kid`.
    pub kid: String,
    /// When it starts signing.
    pub signs_from: DateTime<Utc>,
    /// The private key (PKCS#8).
    pub key: EncodingKey,
}

/// A key that verifies, until a time (or without end).
pub struct Verifier {
    /// The public key (or, for the legacy key, the HMAC secret).
    pub key: DecodingKey,
    /// `EdDSA` or `HS256`.
    pub algorithm: Algorithm,
    /// When it stops verifying.
    pub until: Option<DateTime<Utc>>,
    /// The public key (32 bytes, base64url) for the JWKS; `None` for HS256.
    pub public_x: Option<String>,
}

/// The keys an instance holds: signers oldest first, verifiers by `kid`.
#[derive(Default)]
pub struct Keyring {
    /// Oldest generation first.
    pub signers: Vec<Signer>,
    /// By `kid`.
    pub verifiers: HashMap<String, Verifier>,
}

/// Signing keys and lifetimes, from config and the database.
pub struct TokenSettings {
    keys: RwLock<Arc<Keyring>>,
    legacy_secret: Option<Vec<u8>>,
    eddsa: Validation,
    hs256: Validation,
    /// Tokens whose signature was checked, with their claims and their key's end: an Ed25519
    /// check costs tens of microseconds and a client sends the same token for minutes. Emptied
    /// whenever the keys change.
    verified: Mutex<Verified>,
    /// How long an access token is valid (15 minutes by default).
    pub access_ttl: Duration,
    /// How long a refresh token, and an idle session, stay valid.
    pub refresh_ttl: Duration,
}

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// Verified tokens: their claims, and when their key stops verifying.
type Verified = HashMap<Box<str>, (Claims, Option<DateTime<Utc>>)>;

/// At most this many verified tokens are remembered (about 3 MB); past it they are all forgotten.
const VERIFIED_TOKENS: usize = 10_000;

/// Seconds of clock difference a token's expiry is allowed.
pub const LEEWAY_SECS: u64 = 5;

fn validation(algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[ISSUER]);
    validation.set_required_spec_claims(&["exp", "sub", "iss"]);
    validation.leeway = LEEWAY_SECS;
    validation
}

impl TokenSettings {
    /// Settings with no keys yet (start-up loads them from the database); `legacy_secret` is
    /// the HS256 secret of a deployment from before rotation, if one is configured.
    pub fn new(legacy_secret: Option<&[u8]>, access_ttl: Duration, refresh_ttl: Duration) -> Self {
        Self {
            keys: RwLock::new(Arc::new(Keyring::default())),
            legacy_secret: legacy_secret.map(<[u8]>::to_vec),
            eddsa: validation(Algorithm::EdDSA),
            hs256: validation(Algorithm::HS256),
            verified: Mutex::default(),
            access_ttl,
            refresh_ttl,
        }
    }

    /// Whether an HS256 secret from before rotation is configured.
    pub fn legacy_secret(&self) -> Option<&[u8]> {
        self.legacy_secret.as_deref()
    }

    /// The keys in force.
    pub fn keyring(&self) -> Arc<Keyring> {
        match self.keys.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Takes a freshly loaded keyring (and forgets every verified token).
    pub fn replace(&self, ring: Keyring) {
        let ring = Arc::new(ring);
        match self.keys.write() {
            Ok(mut g) => *g = ring,
            Err(poisoned) => *poisoned.into_inner() = ring,
        }
        self.verified_tokens().clear();
    }

    fn verified_tokens(&self) -> std::sync::MutexGuard<'_, Verified> {
        match self.verified.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Signs an access token for a session with the signer of `now`; returns it with its expiry.
    pub fn issue_access(
        &self,
        user_id: &str,
        session_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>), Error> {
        let ring = self.keyring();
        let signer = ring
            .signers
            .iter()
            .rev()
            .find(|s| s.signs_from <= now)
            .or_else(|| ring.signers.first())
            .ok_or_else(|| Error::Internal("no signing key is loaded".into()))?;
        let expires_at = now + self.access_ttl;
        let claims = Claims {
            sub: user_id.to_owned(),
            sid: session_id.to_owned(),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            iss: ISSUER.to_owned(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(signer.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &signer.key)
            .map_err(|e| Error::Internal(format!("signing access token: {e}")))?;
        Ok((token, expires_at))
    }

    /// Checks the key (`kid`), signature, issuer and expiry. Says nothing about revocation (see
    /// `auth::authenticate`).
    pub fn verify_access(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, Error> {
        let invalid = || Error::Unauthenticated("invalid access token".into());
        if let Some((claims, until)) = self.verified_tokens().get(token) {
            let expired = claims.exp + LEEWAY_SECS as i64 <= Utc::now().timestamp();
            if expired {
                return Err(Error::Unauthenticated("access token expired".into()));
            }
            if until.is_some_and(|u| u <= now) {
                return Err(invalid());
            }
            return Ok(claims.clone());
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        let ring = self.keyring();
        let kid = header.kid.as_deref().unwrap_or(LEGACY_KID);
        let verifier = ring.verifiers.get(kid).ok_or_else(invalid)?;
        if header.alg != verifier.algorithm || verifier.until.is_some_and(|u| u <= now) {
            return Err(invalid());
        }
        let validation = if verifier.algorithm == Algorithm::EdDSA {
            &self.eddsa
        } else {
            &self.hs256
        };
        let claims = jsonwebtoken::decode::<Claims>(token, &verifier.key, validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
                    Error::Unauthenticated("access token expired".into())
                }
                _ => invalid(),
            })?;
        let mut cache = self.verified_tokens();
        // Only keys of the ring checked above: a reload in between empties the cache after this.
        if Arc::ptr_eq(&ring, &self.keyring()) {
            if cache.len() >= VERIFIED_TOKENS {
                cache.clear();
            }
            cache.insert(token.into(), (claims.clone(), verifier.until));
        }
        Ok(claims)
    }

    /// The public keys that verify at `now`, as a JSON Web Key Set.
    pub fn jwks(&self, now: DateTime<Utc>) -> serde_json::Value {
        let ring = self.keyring();
        let mut keys: Vec<(&String, &Verifier)> = ring
            .verifiers
            .iter()
            .filter(|(_, v)| v.public_x.is_some() && v.until.is_none_or(|u| u > now))
            .collect();
        keys.sort_by(|a, b| a.0.cmp(b.0));
        serde_json::json!({
            "keys": keys.into_iter().map(|(kid, v)| serde_json::json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "alg": "EdDSA",
                "use": "sig",
                "kid": kid,
                "x": v.public_x,
            })).collect::<Vec<_>>()
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
    hex::encode(digest)
}

/// 256 random bits, URL-safe base64: for generated secrets.
pub fn random_secret() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}
