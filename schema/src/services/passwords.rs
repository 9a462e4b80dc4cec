//! argon2id password hashing, run on the blocking pool so it never stalls the async threads.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use password_hash::rand_core::OsRng;

use crate::Error;

/// The hasher, plus a dummy hash verified when an email is unknown, so a failed login takes the same
/// time whether or not the account exists.
#[derive(Default)]
pub struct Passwords {
    dummy: OnceLock<String>,
}

fn hasher() -> Argon2<'static> {
    // OWASP's argon2id baseline: 19 MiB, 2 passes, 1 lane (the crate's defaults, made explicit).
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

fn hash_blocking(password: &str) -> Result<String, Error> {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
}

fn verify_blocking(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            hasher()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("password task failed: {e}")))
}

impl Passwords {
    /// Hashes a new password into a PHC string.
    pub async fn hash(&self, password: &str) -> Result<String, Error> {
        let password = password.to_owned();
        blocking(move || hash_blocking(&password)).await?
    }

    /// Whether `password` matches `hash`.
    pub async fn verify(&self, password: &str, hash: &str) -> Result<bool, Error> {
        let (password, hash) = (password.to_owned(), hash.to_owned());
        blocking(move || verify_blocking(&password, &hash)).await
    }

    /// Spends the time of one verification and returns `false`.
    pub async fn verify_dummy(&self, password: &str) -> Result<bool, Error> {
        let dummy = match self.dummy.get() {
            Some(d) => d.clone(),
            None => {
                let fresh = blocking(|| hash_blocking("cloudbase-dummy-password")).await??;
                self.dummy.get_or_init(|| fresh).clone()
            }
        };
        self.verify(password, &dummy).await.map(|_| false)
    }
}
