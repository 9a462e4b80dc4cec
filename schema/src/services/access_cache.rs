//! The session check of [`super::auth::authenticate`] without a database read on every request:
//! the live sessions seen lately, with their user's role, and likewise the API keys seen lately
//! (by the hash of their secret), with what they grant.
//!
//! An entry goes the moment its user's access may have changed: the event bus calls
//! [`AccessCache::forget_user`] for every `AccessChanged` (logout, a revoked or reused session, a
//! password change, a disabled user, a new role), from this instance before the mutation
//! returns, and from other instances when their event arrives. A read that raced such a change
//! cannot put a stale entry back: the cache counts invalidations, and an entry read before one
//! is dropped (see [`AccessCache::put`]).
//!
//! On one instance (SQLite) that makes the cache exact. Across instances an event takes a moment
//! to arrive, so a session ended on one instance would still pass on another for that moment:
//! PostgreSQL deployments leave the cache off unless `[auth] session_cache_secs` turns it on
//! (docs/security.md).

use std::sync::Arc;
use std::time::Duration;

use super::Role;
use super::api_keys::KeyGrant;
use super::memo::Memo;

#[derive(Clone)]
struct Cached {
    user_id: String,
    role: Role,
    /// For an API key (the entry is keyed by its hash): what it grants.
    key: Option<Arc<KeyGrant>>,
}

/// An API key's entry: its owner, the owner's role, and what it grants.
pub type KeyEntry = (String, Role, Arc<KeyGrant>);

/// Live sessions (by id) and API keys (by hash) seen within the last `ttl`.
pub struct AccessCache(Memo<String, Cached>);

impl AccessCache {
    /// A cache keeping entries for `ttl`; `Duration::ZERO` turns it off.
    pub fn new(ttl: Duration) -> Self {
        Self(Memo::new(ttl))
    }

    /// Whether it keeps anything.
    pub fn enabled(&self) -> bool {
        self.0.enabled()
    }

    /// The role of `user_id` if `session_id` was seen live within the ttl.
    pub fn get(&self, user_id: &str, session_id: &str) -> Option<Role> {
        self.0.read(session_id, |hit| {
            (hit.key.is_none() && hit.user_id == user_id).then_some(hit.role)
        })
    }

    /// The API key whose secret hashes to `hash`, if it was seen live within the ttl. (Its
    /// expiry and revocation time are in the grant, checked by the caller on every use.)
    pub fn get_key(&self, hash: &str) -> Option<KeyEntry> {
        self.0.read(&key_entry(hash), |hit| {
            Some((hit.user_id.clone(), hit.role, Arc::clone(hit.key.as_ref()?)))
        })
    }

    /// The count of invalidations so far: read it before reading the database, and pass it to
    /// [`AccessCache::put`].
    pub fn generation(&self) -> u64 {
        self.0.generation()
    }

    /// Keeps what the database said about a live session, unless an invalidation happened since
    /// `generation` was read (the read may predate it).
    pub fn put(&self, generation: u64, user_id: &str, session_id: &str, role: Role) {
        self.insert(generation, session_id.to_owned(), user_id, role, None);
    }

    /// Keeps what the database said about a live API key, as [`AccessCache::put`] does.
    pub fn put_key(
        &self,
        generation: u64,
        hash: &str,
        user_id: &str,
        role: Role,
        grant: Arc<KeyGrant>,
    ) {
        self.insert(generation, key_entry(hash), user_id, role, Some(grant));
    }

    fn insert(
        &self,
        generation: u64,
        entry: String,
        user_id: &str,
        role: Role,
        key: Option<Arc<KeyGrant>>,
    ) {
        let cached = Cached {
            user_id: user_id.to_owned(),
            role,
            key,
        };
        self.0.put(generation, entry, cached);
    }

    /// Drops every entry of `user_id`.
    pub fn forget_user(&self, user_id: &str) {
        self.0.forget_where(|_, e| e.user_id == user_id);
    }

    /// Drops everything (events may have been missed).
    pub fn clear(&self) {
        self.0.clear();
    }
}

/// Where an API key's entry is kept: apart from session ids (UUIDs), by its secret's hash.
fn key_entry(hash: &str) -> String {
    format!("key:{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_kept() {
        let cache = AccessCache::new(Duration::from_secs(60));
        let before = cache.generation();
        cache.forget_user("u1");
        cache.put(before, "u1", "s1", Role::User);
        assert_eq!(cache.get("u1", "s1"), None);
        cache.put(cache.generation(), "u1", "s1", Role::User);
        assert_eq!(cache.get("u1", "s1"), Some(Role::User));
        assert_eq!(cache.get("u2", "s1"), None, "another user's token");
        cache.forget_user("u2");
        assert_eq!(
            cache.get("u1", "s1"),
            Some(Role::User),
            "others' changes keep it"
        );
        cache.forget_user("u1");
        assert_eq!(cache.get("u1", "s1"), None);
    }

    #[test]
    fn off_keeps_nothing() {
        let cache = AccessCache::new(Duration::ZERO);
        cache.put(cache.generation(), "u1", "s1", Role::Admin);
        assert_eq!(cache.get("u1", "s1"), None);
    }
}
