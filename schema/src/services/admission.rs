//! Overload refused fast: at most a configured number of AI calls in flight per instance.
//!
//! Past the limit, a new call gets `UNAVAILABLE` with `retryAfterMs` at once (HTTP 503 with
//! `Retry-After` on the HTTP doors) instead of queueing for a database connection until the
//! pool's acquire timeout. The limit is per instance: behind a load balancer, the client retries
//! on another. The slot is held until the call's record is finished (for a stream, until the
//! stream ends or is dropped).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::Error;

/// How long a refused caller is told to wait.
pub const RETRY_AFTER_MS: i64 = 1000;

/// The slots for calls in flight.
#[derive(Debug, Clone)]
pub struct Admission {
    slots: Arc<Semaphore>,
    limit: usize,
}

/// One call's slot; released when dropped.
#[derive(Debug)]
pub struct Admitted(#[expect(dead_code, reason = "held for its Drop")] OwnedSemaphorePermit);

impl Admission {
    /// At most `limit` calls at once (at least 1).
    pub fn new(limit: usize) -> Self {
        let limit = limit.max(1);
        Self {
            slots: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }

    /// A slot, or `UNAVAILABLE` at once when every slot is taken.
    pub fn admit(&self) -> Result<Admitted, Error> {
        Arc::clone(&self.slots)
            .try_acquire_owned()
            .map(Admitted)
            .map_err(|_| Error::Overloaded {
                message: format!(
                    "this instance is at its limit of {} AI calls in flight; try again shortly",
                    self.limit
                ),
                retry_after_ms: RETRY_AFTER_MS,
            })
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.limit - self.slots.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_and_frees_a_slot_on_drop() {
        let admission = Admission::new(2);
        let a = admission.admit().expect("first");
        let _b = admission.admit().expect("second");
        let refused = admission.admit().expect_err("third is over the limit");
        assert_eq!(refused.code(), crate::error::Code::Unavailable);
        assert_eq!(admission.in_flight(), 2);
        drop(a);
        assert!(admission.admit().is_ok());
    }
}
