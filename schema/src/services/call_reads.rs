//! What every AI call reads and an admin rarely changes, without a database read on every call:
//! a user's rate-limit overrides, a model's price history, and the budgets that apply to a user
//! (and API key family).
//!
//! Each is dropped the moment it may have changed: the change publishes `LimitsChanged`,
//! `PricesChanged` or `BudgetsChanged`, and the event bus forgets the entries before the event
//! goes anywhere else, on this instance before the mutation returns, on the others when the event
//! arrives (`LISTEN`/`NOTIFY`, usually within a millisecond; a call admitted on another instance
//! in that moment runs under the settings of a moment before, as if it had started first). When
//! the LISTEN connection is re-established, everything is forgotten (events may have been missed
//! meanwhile), and every entry is read again after [`TTL`] whatever happens, which bounds what an
//! edit made outside the server can leave.

use std::sync::Arc;
use std::time::Duration;

use super::memo::Memo;
use crate::db::models::{Budget, Price};

/// How long an entry is trusted at most.
pub const TTL: Duration = Duration::from_secs(10);

/// A user's overrides `(requests, tokens)` per minute, if any.
pub type Overrides = Option<(Option<i64>, Option<i64>)>;

/// The memos, kept by the event bus.
pub struct CallReads {
    /// By user id.
    pub(crate) limits: Memo<String, Overrides>,
    /// By `(provider, model)`: the price history, newest start first.
    pub(crate) prices: Memo<(String, String), Arc<Vec<Price>>>,
    /// By `(user id, API key family or "")`.
    pub(crate) budgets: Memo<(String, String), Arc<Vec<Budget>>>,
}

impl CallReads {
    /// Memos keeping entries for `ttl` (`Duration::ZERO`: off).
    pub fn new(ttl: Duration) -> Self {
        Self {
            limits: Memo::new(ttl),
            prices: Memo::new(ttl),
            budgets: Memo::new(ttl),
        }
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.limits.clear();
        self.prices.clear();
        self.budgets.clear();
    }
}

impl Default for CallReads {
    fn default() -> Self {
        Self::new(TTL)
    }
}

/// Reads through `memo`: the kept value of `key`, or `read` (kept unless an invalidation raced it).
pub(crate) async fn through<K, V, E>(
    memo: &Memo<K, V>,
    key: K,
    read: impl AsyncFnOnce() -> Result<V, E>,
) -> Result<V, E>
where
    K: Eq + std::hash::Hash,
    V: Clone,
{
    if let Some(hit) = memo.get(&key) {
        return Ok(hit);
    }
    let generation = memo.generation();
    let value = read().await?;
    memo.put(generation, key, value.clone());
    Ok(value)
}
