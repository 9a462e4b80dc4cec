//! Overload refused fast: at most a configured number of AI calls in flight per instance.
//!
//! Past the limit, a new call gets `UNAVAILABLE` with `retryAfterMs` at once (HTTP 503 with
//! `Retry-After` on the HTTP doors) instead of queueing for a database connection until the
//! pool's acquire timeout. The limit is per instance: behind a load balancer, the client retries
//! on another. The slot is held until the call's record is finished (for a stream, until the
//! stream ends or is dropped).
//!
//! At shutdown the door closes ([`Admission::close`]): new calls are refused the same way, the
//! calls in flight drain, and those still running at the deadline are known by their record
//! ([`Admission::calls`]), to be recorded as interrupted.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::Error;

/// How long a refused caller is told to wait.
pub const RETRY_AFTER_MS: i64 = 1000;

/// The slots for calls in flight.
#[derive(Debug, Clone)]
pub struct Admission {
    slots: Arc<Semaphore>,
    limit: usize,
    closed: Arc<AtomicBool>,
    /// Set when shutdown cuts off the calls still running: a call dropped from then on was
    /// dropped by the server, not by its client.
    cut_off: Arc<AtomicBool>,
    /// The records of the calls in flight that have one yet.
    records: Arc<Mutex<HashSet<String>>>,
}

/// One call's slot; released when dropped.
#[derive(Debug)]
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
    records: Arc<Mutex<HashSet<String>>>,
    record: Option<String>,
}

impl Admitted {
    /// The call now has a record (`PENDING`): it is known by it until the slot is released.
    pub fn track(&mut self, call_id: &str) {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(call_id.to_owned());
        self.record = Some(call_id.to_owned());
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(id) = self.record.take() {
            self.records
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&id);
        }
    }
}

impl Admission {
    /// At most `limit` calls at once (at least 1).
    pub fn new(limit: usize) -> Self {
        let limit = limit.max(1);
        Self {
            slots: Arc::new(Semaphore::new(limit)),
            limit,
            closed: Arc::default(),
            cut_off: Arc::default(),
            records: Arc::default(),
        }
    }

    /// A slot, or `UNAVAILABLE` at once when every slot is taken or the instance is shutting
    /// down.
    pub fn admit(&self) -> Result<Admitted, Error> {
        if self.is_closed() {
            return Err(Error::Overloaded {
                message: "this instance is shutting down; try again (another instance answers)"
                    .into(),
                retry_after_ms: RETRY_AFTER_MS,
            });
        }
        Arc::clone(&self.slots)
            .try_acquire_owned()
            .map(|permit| Admitted {
                _permit: permit,
                records: Arc::clone(&self.records),
                record: None,
            })
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

    /// Refuses every new call from now on (shutdown).
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Whether [`Admission::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Shutdown is cutting off the calls still running (they are recorded as interrupted).
    pub fn cut_off(&self) {
        self.cut_off.store(true, Ordering::SeqCst);
    }

    /// Whether [`Admission::cut_off`] was called.
    pub fn is_cut_off(&self) -> bool {
        self.cut_off.load(Ordering::SeqCst)
    }

    /// The records of the calls in flight now.
    pub fn calls(&self) -> Vec<String> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// Waits until no call is in flight, or `deadline` passes; returns whether they all ended.
    pub async fn drained(&self, deadline: std::time::Duration) -> bool {
        let all = u32::try_from(self.limit).unwrap_or(u32::MAX);
        tokio::time::timeout(deadline, self.slots.acquire_many(all))
            .await
            .is_ok_and(|permits| permits.is_ok())
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

    #[test]
    fn knows_its_calls_by_record_until_they_end_and_refuses_all_once_closed() {
        let admission = Admission::new(4);
        let mut a = admission.admit().expect("open");
        a.track("call-a");
        let _b = admission.admit().expect("open, no record yet");
        assert_eq!(admission.calls(), vec!["call-a".to_owned()]);
        drop(a);
        assert!(admission.calls().is_empty());
        admission.close();
        let refused = admission.admit().expect_err("closed");
        assert_eq!(refused.code(), crate::error::Code::Unavailable);
        assert!(refused.to_string().contains("shutting down"), "{refused}");
    }
}
