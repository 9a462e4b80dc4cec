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
//! On one instance (SQLite) that makes the cache exact. Across instances (PostgreSQL) an event
//! takes a moment to arrive, and a cache is exact only with a [`Horizon`]: an instance trusts
//! its entries only while it knows it has heard every change committed up to [`HORIZON`] ago,
//! and a change returns only [`HORIZON`] after its commit. See [`Horizon`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::api_keys::KeyGrant;
use super::auth::Standing;
use super::memo::Memo;

#[derive(Clone)]
struct Cached {
    user_id: String,
    standing: Standing,
    /// For an API key (the entry is keyed by its hash): what it grants.
    key: Option<Arc<KeyGrant>>,
}

/// An API key's entry: its owner, the owner's standing, and what it grants.
pub type KeyEntry = (String, Standing, Arc<KeyGrant>);

/// Live sessions (by id) and API keys (by hash) seen within the last `ttl`.
pub struct AccessCache {
    memo: Memo<String, Cached>,
    /// With other instances: when this one may trust what it keeps.
    horizon: Option<Arc<Horizon>>,
}

impl AccessCache {
    /// A cache keeping entries for `ttl`, for the only instance; `Duration::ZERO` turns it off.
    pub fn new(ttl: Duration) -> Self {
        Self {
            memo: Memo::new(ttl),
            horizon: None,
        }
    }

    /// The same cache for one instance of several: it answers only while `horizon` says every
    /// change committed long enough ago has been heard.
    pub fn across_instances(mut self, horizon: Arc<Horizon>) -> Self {
        self.horizon = Some(horizon);
        self
    }

    /// Whether it keeps anything.
    pub fn enabled(&self) -> bool {
        self.memo.enabled()
    }

    /// Whether what it keeps may be used now.
    fn trusted(&self) -> bool {
        self.enabled() && self.horizon.as_ref().is_none_or(|h| h.trusted())
    }

    /// The standing of `user_id` if `session_id` was seen live within the ttl.
    pub fn get(&self, user_id: &str, session_id: &str) -> Option<Standing> {
        if !self.trusted() {
            return None;
        }
        self.memo.read(session_id, |hit| {
            (hit.key.is_none() && hit.user_id == user_id).then_some(hit.standing)
        })
    }

    /// The API key whose secret hashes to `hash`, if it was seen live within the ttl. (Its
    /// expiry and revocation time are in the grant, checked by the caller on every use.)
    pub fn get_key(&self, hash: &str) -> Option<KeyEntry> {
        if !self.trusted() {
            return None;
        }
        self.memo.read(&key_entry(hash), |hit| {
            Some((
                hit.user_id.clone(),
                hit.standing,
                Arc::clone(hit.key.as_ref()?),
            ))
        })
    }

    /// The count of invalidations so far: read it before reading the database, and pass it to
    /// [`AccessCache::put`].
    pub fn generation(&self) -> u64 {
        self.memo.generation()
    }

    /// Keeps what the database said about a live session, unless an invalidation happened since
    /// `generation` was read (the read may predate it).
    pub fn put(&self, generation: u64, user_id: &str, session_id: &str, standing: Standing) {
        self.insert(generation, session_id.to_owned(), user_id, standing, None);
    }

    /// Keeps what the database said about a live API key, as [`AccessCache::put`] does.
    pub fn put_key(
        &self,
        generation: u64,
        hash: &str,
        user_id: &str,
        standing: Standing,
        grant: Arc<KeyGrant>,
    ) {
        self.insert(generation, key_entry(hash), user_id, standing, Some(grant));
    }

    fn insert(
        &self,
        generation: u64,
        entry: String,
        user_id: &str,
        standing: Standing,
        key: Option<Arc<KeyGrant>>,
    ) {
        let cached = Cached {
            user_id: user_id.to_owned(),
            standing,
            key,
        };
        self.memo.put(generation, entry, cached);
    }

    /// Drops every entry of `user_id`.
    pub fn forget_user(&self, user_id: &str) {
        self.memo.forget_where(|_, e| e.user_id == user_id);
    }

    /// Drops everything (events may have been missed).
    pub fn clear(&self) {
        self.memo.clear();
    }
}

/// Where an API key's entry is kept: apart from session ids (UUIDs), by its secret's hash.
fn key_entry(hash: &str) -> String {
    format!("key:{hash}")
}

/// How long after its commit a change of access returns; an instance trusts its cache only
/// while it has heard back a heartbeat it sent less than this long ago.
pub const HORIZON: Duration = Duration::from_millis(500);
/// How often an instance whose cache is in use sends a heartbeat.
pub const BEAT_EVERY: Duration = Duration::from_millis(100);
/// How long after its cache was last consulted an instance goes on beating (then it is quiet
/// until the next request).
const BEAT_WHILE_USED: Duration = Duration::from_secs(10);
/// Heartbeats sent and not yet heard back, kept at most.
const BEATS_PENDING: usize = 256;

/// When one instance of several may trust its access cache.
///
/// Changes reach the other instances by PostgreSQL's `NOTIFY`, and PostgreSQL delivers a
/// listener the notifications of different transactions in the order the transactions
/// committed. So an instance sends heartbeats on the channel the changes travel on, noting when
/// it sent each ([`Horizon::beat`]); when the heartbeat sent at `s` comes back
/// ([`Horizon::heard`]), every change committed before `s` has been heard, and its entries
/// forgotten. The instance then trusts its cache until `s + HORIZON`.
///
/// A change of access is told to the others inside the transaction that makes it, and returns
/// [`HORIZON`] after its commit `c`. A request that starts after that, at `t ≥ c + HORIZON`,
/// finds the cache trusted only if a heartbeat sent after `t − HORIZON ≥ c` has come back, that
/// is after the change was heard. When heartbeats stop coming back (the listener is down, the
/// database is slow), trust runs out within [`HORIZON`] and every request reads the database,
/// as with no cache. Only durations measured on one machine's monotonic clock are compared; no
/// two instances' clocks are.
pub struct Horizon {
    base: Instant,
    /// Nanoseconds after `base` until which the cache may be trusted.
    until: AtomicU64,
    /// Nanoseconds after `base` when the cache was last consulted.
    used: AtomicU64,
    /// Heartbeats sent and not heard back yet: number, when sent.
    sent: Mutex<VecDeque<(u64, Instant)>>,
    next: AtomicU64,
    wake: tokio::sync::Notify,
}

impl Default for Horizon {
    fn default() -> Self {
        Self {
            base: Instant::now(),
            until: AtomicU64::new(0),
            used: AtomicU64::new(0),
            sent: Mutex::new(VecDeque::new()),
            next: AtomicU64::new(0),
            wake: tokio::sync::Notify::new(),
        }
    }
}

impl Horizon {
    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Whether the cache may be trusted now. Also notes the use, and wakes the heartbeats when
    /// trust has run out.
    pub fn trusted(&self) -> bool {
        let now = self.nanos(Instant::now());
        self.used.store(now, Ordering::Relaxed);
        let trusted = now < self.until.load(Ordering::Acquire);
        if !trusted {
            self.wake.notify_one();
            metrics::counter!("cloudbase_access_cache_untrusted_total").increment(1);
        }
        trusted
    }

    /// Whether the cache was consulted lately, and heartbeats are worth sending.
    pub fn in_use(&self) -> bool {
        let used = self.used.load(Ordering::Relaxed);
        let idle = self.nanos(Instant::now()).saturating_sub(used);
        u128::from(idle) < BEAT_WHILE_USED.as_nanos()
    }

    /// Until the cache is consulted, or `at_most` has passed.
    pub async fn wanted(&self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, self.wake.notified()).await;
    }

    /// Notes a heartbeat about to be sent, and returns its number.
    pub fn beat(&self) -> u64 {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        if sent.len() >= BEATS_PENDING {
            sent.pop_front();
        }
        sent.push_back((n, Instant::now()));
        n
    }

    /// This instance's heartbeat `n` came back: every change committed before it was sent has
    /// been heard.
    pub fn heard(&self, n: u64) {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        let mut at = None;
        while let Some(&(m, s)) = sent.front()
            && m <= n
        {
            sent.pop_front();
            if m == n {
                at = Some(s);
            }
        }
        if let Some(s) = at {
            self.until
                .fetch_max(self.nanos(s + HORIZON), Ordering::AcqRel);
        }
    }

    /// Trusts nothing until a heartbeat sent from now on comes back: the listener connection was
    /// (re)established, and what was sent meanwhile may be lost.
    pub fn reset(&self) {
        let mut sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
        sent.clear();
        self.until.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::Role;

    const USER: Standing = Standing {
        role: Role::User,
        mfa: false,
        password_due: false,
    };

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_kept() {
        let cache = AccessCache::new(Duration::from_secs(60));
        let before = cache.generation();
        cache.forget_user("u1");
        cache.put(before, "u1", "s1", USER);
        assert_eq!(cache.get("u1", "s1"), None);
        cache.put(cache.generation(), "u1", "s1", USER);
        assert_eq!(cache.get("u1", "s1"), Some(USER));
        assert_eq!(cache.get("u2", "s1"), None, "another user's token");
        cache.forget_user("u2");
        assert_eq!(cache.get("u1", "s1"), Some(USER), "others' changes keep it");
        cache.forget_user("u1");
        assert_eq!(cache.get("u1", "s1"), None);
    }

    #[test]
    fn off_keeps_nothing() {
        let cache = AccessCache::new(Duration::ZERO);
        cache.put(
            cache.generation(),
            "u1",
            "s1",
            Standing {
                role: Role::Admin,
                mfa: true,
                password_due: false,
            },
        );
        assert_eq!(cache.get("u1", "s1"), None);
    }

    #[test]
    fn trust_lasts_a_horizon_from_when_the_heartbeat_heard_was_sent() {
        let h = Horizon::default();
        assert!(!h.trusted(), "nothing heard yet");
        let first = h.beat();
        let second = h.beat();
        h.heard(second);
        assert!(h.trusted());
        h.heard(first);
        assert!(h.trusted(), "an older heartbeat heard late changes nothing");
        let until = h.until.load(Ordering::Acquire);
        assert!(
            u128::from(until) <= h.base.elapsed().as_nanos() + HORIZON.as_nanos(),
            "counted from when it was sent"
        );
    }

    #[test]
    fn a_heartbeat_sent_before_a_reset_gives_no_trust() {
        let h = Horizon::default();
        let before = h.beat();
        h.reset();
        h.heard(before);
        assert!(!h.trusted());
        let after = h.beat();
        h.heard(after);
        assert!(h.trusted());
        h.reset();
        assert!(!h.trusted(), "a reset ends trust at once");
    }

    #[test]
    fn a_cache_across_instances_answers_only_while_trusted() {
        let h = Arc::new(Horizon::default());
        let cache = AccessCache::new(Duration::from_secs(60)).across_instances(Arc::clone(&h));
        cache.put(cache.generation(), "u1", "s1", USER);
        assert_eq!(cache.get("u1", "s1"), None, "no heartbeat heard");
        h.heard(h.beat());
        assert_eq!(cache.get("u1", "s1"), Some(USER));
        assert!(h.in_use());
        h.reset();
        assert_eq!(cache.get("u1", "s1"), None);
    }
}
