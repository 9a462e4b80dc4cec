//! A read-through memo kept true by the event bus: what the database said, for a while, dropped
//! the moment an event says it may have changed.
//!
//! A read that raced such a change cannot put a stale answer back: the memo counts
//! invalidations, the caller reads the count before it reads the database, and an answer read
//! before the latest invalidation is dropped (see [`Memo::put`]).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Entries kept at most; past that, expired ones go, then all.
const MAX_ENTRIES: usize = 100_000;

/// Values by key, each trusted for `ttl` after it was read.
pub struct Memo<K, V> {
    ttl: Duration,
    generation: AtomicU64,
    entries: Mutex<HashMap<K, (V, Instant)>>,
}

impl<K: Eq + Hash, V: Clone> Memo<K, V> {
    /// A memo keeping entries for `ttl`; `Duration::ZERO` turns it off.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            generation: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Whether it keeps anything.
    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    /// What `look` makes of the value kept for `key`, if it was read within the ttl (without
    /// copying the value).
    pub fn read<Q, R>(&self, key: &Q, look: impl FnOnce(&V) -> Option<R>) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.enabled() {
            return None;
        }
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (value, at) = entries.get(key)?;
        if at.elapsed() < self.ttl {
            look(value)
        } else {
            None
        }
    }

    /// The value kept for `key`, if it was read within the ttl.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.read(key, |v| Some(v.clone()))
    }

    /// The count of invalidations so far: read it before reading the database, and pass it to
    /// [`Memo::put`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Keeps what the database said, unless an invalidation happened since `generation` was
    /// read (the read may predate it).
    pub fn put(&self, generation: u64, key: K, value: V) {
        if !self.enabled() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        // Under the lock: invalidations bump the count while holding it.
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            entries.retain(|_, (_, at)| at.elapsed() < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key, (value, Instant::now()));
    }

    /// Drops every entry `stale` picks.
    pub fn forget_where(&self, mut stale: impl FnMut(&K, &V) -> bool) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.retain(|k, (v, _)| !stale(k, v));
    }

    /// Drops everything.
    pub fn clear(&self) {
        self.forget_where(|_, _| true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_kept() {
        let memo = Memo::<String, u32>::new(Duration::from_secs(60));
        let before = memo.generation();
        memo.forget_where(|k, _| k == "a");
        memo.put(before, "a".into(), 1);
        assert_eq!(memo.get("a"), None);
        memo.put(memo.generation(), "a".into(), 1);
        memo.put(memo.generation(), "b".into(), 2);
        assert_eq!(memo.get("a"), Some(1));
        memo.forget_where(|k, _| k == "b");
        assert_eq!(memo.get("a"), Some(1), "others' changes keep it");
        assert_eq!(memo.get("b"), None);
        memo.clear();
        assert_eq!(memo.get("a"), None);
    }

    #[test]
    fn off_keeps_nothing_and_entries_expire() {
        let off = Memo::<String, u32>::new(Duration::ZERO);
        off.put(off.generation(), "a".into(), 1);
        assert_eq!(off.get("a"), None);
        let short = Memo::<String, u32>::new(Duration::from_millis(20));
        short.put(short.generation(), "a".into(), 1);
        assert_eq!(short.get("a"), Some(1));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(short.get("a"), None);
    }
}
