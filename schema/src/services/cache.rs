//! The exact-match response cache: opt-in per provider instance, with a TTL, scoped per user.
//! The key is a SHA-256 of the user, provider, model, parameters and messages. It is in-process
//! and bounded; with several instances each keeps its own (a miss just calls the provider).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cloudbase_plugin_api::ChatRequest;
use sha2::{Digest, Sha256};

/// What a hit returns.
#[derive(Debug, Clone)]
pub struct CachedReply {
    /// The answer.
    pub content: String,
    /// Reasoning, if any.
    pub reasoning: Option<String>,
    /// Why generation stopped.
    pub finish_reason: Option<String>,
}

/// A bounded map from request fingerprint to reply.
pub struct ResponseCache {
    entries: Mutex<HashMap<[u8; 32], (Instant, CachedReply)>>,
    capacity: usize,
}

impl Default for ResponseCache {
    fn default() -> Self {
        Self::with_capacity(10_000)
    }
}

impl ResponseCache {
    /// A cache holding at most `capacity` replies.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The fingerprint of `request` to `provider` for `user_id`.
    pub fn key(user_id: &str, provider: &str, request: &ChatRequest) -> [u8; 32] {
        let mut normalized = request.clone();
        normalized.stream = false;
        let body = serde_json::to_vec(&normalized).unwrap_or_default();
        let mut hasher = Sha256::new();
        for part in [user_id.as_bytes(), b"\0", provider.as_bytes(), b"\0", &body] {
            hasher.update(part);
        }
        hasher.finalize().into()
    }

    /// The live reply for `key`, if any.
    pub fn get(&self, key: &[u8; 32]) -> Option<CachedReply> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(key) {
            Some((expires, reply)) if *expires > Instant::now() => Some(reply.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `reply` for `ttl`. When full, expired entries go first, then arbitrary ones.
    pub fn put(&self, key: [u8; 32], reply: CachedReply, ttl: Duration) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if entries.len() >= self.capacity {
            entries.retain(|_, (expires, _)| *expires > now);
        }
        while entries.len() >= self.capacity {
            let Some(victim) = entries.keys().next().copied() else {
                break;
            };
            entries.remove(&victim);
        }
        entries.insert(key, (now + ttl, reply));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudbase_plugin_api::{ChatMessage, ChatRole};

    fn request(text: &str) -> ChatRequest {
        ChatRequest {
            model: "m".into(),
            messages: vec![ChatMessage {
                role: ChatRole::User,
                content: text.into(),
            }],
            temperature: None,
            top_p: None,
            max_tokens: None,
            stop: vec![],
            stream: false,
        }
    }

    fn reply(text: &str) -> CachedReply {
        CachedReply {
            content: text.into(),
            reasoning: None,
            finish_reason: None,
        }
    }

    #[test]
    fn keys_separate_users_providers_and_requests_but_not_streaming() {
        let base = ResponseCache::key("u1", "p", &request("hi"));
        assert_ne!(base, ResponseCache::key("u2", "p", &request("hi")));
        assert_ne!(base, ResponseCache::key("u1", "q", &request("hi")));
        assert_ne!(base, ResponseCache::key("u1", "p", &request("hi!")));
        let mut streamed = request("hi");
        streamed.stream = true;
        assert_eq!(base, ResponseCache::key("u1", "p", &streamed));
    }

    #[test]
    fn entries_expire_and_the_cache_stays_bounded() {
        let cache = ResponseCache::with_capacity(2);
        let k = |s: &str| ResponseCache::key("u", "p", &request(s));
        cache.put(k("a"), reply("A"), Duration::from_secs(60));
        cache.put(k("gone"), reply("G"), Duration::ZERO);
        assert_eq!(cache.get(&k("a")).map(|r| r.content), Some("A".into()));
        assert!(cache.get(&k("gone")).is_none(), "expired");
        cache.put(k("b"), reply("B"), Duration::from_secs(60));
        cache.put(k("c"), reply("C"), Duration::from_secs(60));
        let live = ["a", "b", "c"]
            .iter()
            .filter(|s| cache.get(&k(s)).is_some())
            .count();
        assert_eq!(live, 2, "never more than the capacity");
        assert!(cache.get(&k("c")).is_some(), "the newest entry is kept");
    }
}
