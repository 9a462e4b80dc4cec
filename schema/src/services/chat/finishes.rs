//! PostgreSQL: the finishes of concurrent calls written together.
//!
//! A call with no budget to settle and no conversation turn to append finishes with one
//! statement ([`crate::db::budgets::finish_and_add_to_daily`]) and one durable commit. Calls that
//! finish at the same moment each paid for their own commit and updated the same rollup rows one
//! after another. Here they queue instead: one task takes every finish queued (up to
//! [`MAX_BATCH`]), writes them as one statement on one pooled connection
//! ([`crate::db::finish_batch`]) and hands each caller its record; the finishes queued while it
//! writes form the next batch. Alone, a call is a batch of one, and waits for nobody.
//!
//! The caller holds no connection while it waits (DESIGN §9: never two at once, and a waiting
//! caller holds none). A call the batch did not finish (the batch failed, or the call was not
//! `PENDING`) comes back to its caller, which finishes it on its own as before. A caller that
//! stops waiting (its client went away) does not stop its finish: the record is written all the
//! same.
//!
//! SQLite needs none of this: its writers already share commits (`db::writer`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use chrono::NaiveDateTime;
use tokio::sync::{mpsc, oneshot};

use crate::Error;
use crate::db::finish_batch::{self, FinishBatch, Finishing};
use crate::db::models::AiCall;
use crate::db::{DbConn, DbPool, ai_calls, budgets};
use crate::services::audit;

/// At most this many finishes share a statement.
pub const MAX_BATCH: usize = 64;

/// How many finishes may wait for the writer; a caller beyond them waits to queue.
const QUEUE: usize = 1024;

/// The queue of finishes and its writer (started at the first finish).
pub struct Finishes {
    db: DbPool,
    queue: OnceLock<mpsc::Sender<Job>>,
    counts: Arc<Counts>,
}

/// What the writer did since start.
#[derive(Default)]
struct Counts {
    batches: AtomicU64,
    finished: AtomicU64,
}

/// What the writer did since start (for metrics): the statements it sent, and the calls they
/// finished (more than one a statement when calls finished together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinishStats {
    /// Batches written (statements that finished at least one call).
    pub batches: u64,
    /// Calls those batches finished.
    pub finished: u64,
}

/// A call's finish as it waits in the queue: what a single finish takes, owned.
pub struct Queued {
    /// The call.
    pub id: String,
    /// How it ended.
    pub finish: ai_calls::Finish,
    /// Its rollups' day.
    pub day: String,
    /// The start of the minute it finished in.
    pub minute: NaiveDateTime,
    /// The token counters its tokens go to.
    pub token_counters: Vec<String>,
    /// The mutation's audit entry, written with it.
    pub audit: Option<audit::Stored>,
}

struct Job {
    call: Queued,
    reply: oneshot::Sender<Result<AiCall, Queued>>,
}

impl Finishes {
    /// The queue for `db`'s finishes (used on PostgreSQL only).
    pub fn new(db: DbPool) -> Self {
        Self {
            db,
            queue: OnceLock::new(),
            counts: Arc::default(),
        }
    }

    /// What the writer did since start.
    pub fn stats(&self) -> FinishStats {
        FinishStats {
            batches: self.counts.batches.load(Ordering::Relaxed),
            finished: self.counts.finished.load(Ordering::Relaxed),
        }
    }

    /// Whether finishes are written together here (PostgreSQL).
    pub fn batched(&self) -> bool {
        matches!(self.db, DbPool::Pg(_))
    }

    /// Writes `call`'s finish with those queued beside it; returns the finished record, or the
    /// call itself when the batch did not finish it (see the module's documentation), or `None`
    /// if the writer stopped with the call in hand (it panicked): that call's `PENDING` row is
    /// then finished by the sweep of interrupted calls, as a crashed server's would be.
    pub async fn finish(&self, call: Queued) -> Result<AiCall, Option<Queued>> {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(write_batches(self.db.clone(), rx, self.counts.clone()));
            tx
        });
        let (reply, replied) = oneshot::channel();
        if let Err(mpsc::error::SendError(job)) = queue.send(Job { call, reply }).await {
            return Err(Some(job.call));
        }
        match replied.await {
            Ok(outcome) => outcome.map_err(Some),
            Err(_) => Err(None),
        }
    }
}

/// The writer: a batch at a time, of everything queued.
async fn write_batches(db: DbPool, mut queue: mpsc::Receiver<Job>, counts: Arc<Counts>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let mut finished: HashMap<String, AiCall> = match write(&db, &jobs).await {
            Ok(records) => {
                if !records.is_empty() {
                    counts.batches.fetch_add(1, Ordering::Relaxed);
                    counts
                        .finished
                        .fetch_add(records.len() as u64, Ordering::Relaxed);
                }
                records.into_iter().map(|r| (r.id.clone(), r)).collect()
            }
            Err(e) => {
                tracing::warn!(calls = jobs.len(), error = %e, "writing a batch of finishes failed; each call finishes on its own");
                HashMap::new()
            }
        };
        for Job { call, reply } in jobs.drain(..) {
            let _ = reply.send(finished.remove(&call.id).ok_or(call));
        }
    }
}

async fn write(db: &DbPool, jobs: &[Job]) -> Result<Vec<AiCall>, Error> {
    let mut conn = db.get().await?;
    let DbConn::Pg(c) = &mut conn else {
        return Ok(Vec::new());
    };
    let mut batch = FinishBatch::new(budgets::shard());
    for Job { call, .. } in jobs {
        batch.push(Finishing {
            id: &call.id,
            finish: &call.finish,
            day: &call.day,
            minute: call.minute,
            token_counters: &call.token_counters,
            audit: call.audit.as_ref().map(audit::Stored::row),
        });
    }
    Ok(finish_batch::finish(c, &batch).await?)
}
