//! PostgreSQL: the writes of concurrent calls gathered into one statement.
//!
//! A call on PostgreSQL writes its record twice: the `PENDING` insert before the provider is
//! asked ([`super::pendings`]) and the finish after ([`super::finishes`]). Calls that do either
//! at the same moment each paid for their own statement (and, for a finish, its own commit).
//! Here they queue instead: one task per kind of write takes every item queued (up to
//! [`MAX_BATCH`]), writes them as one statement on one pooled connection and hands each caller
//! its outcome; the items queued while it writes form the next batch. Alone, a call is a batch of
//! one, waits for nobody, and is written by its own single statement, which costs the database
//! less than the batch's statement does for one.
//!
//! The caller holds no connection while it waits (DESIGN §9: never two at once, and a waiting
//! caller holds none). An item the batch did not write (the batch failed, or the statement left
//! it out) comes back to its caller, which writes it on its own as before. A caller that stops
//! waiting (its client went away) does not stop its write: the batch is written all the same.
//!
//! SQLite needs none of this: its writers already share commits (`db::writer`).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use diesel::QueryResult;
use diesel_async::AsyncPgConnection;
use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot};

use crate::Error;
use crate::db::{DbConn, DbPool};

/// At most this many items share a statement.
pub const MAX_BATCH: usize = 64;

/// How many items may wait for the writer; a caller beyond them waits to queue.
const QUEUE: usize = 1024;

/// One kind of write that calls make together.
pub trait Batch: 'static {
    /// What a caller queues.
    type Item: Send + Sync + 'static;
    /// What the write gives back for an item it wrote.
    type Out: Send + 'static;
    /// What is written, for the log.
    const WHAT: &'static str;
    /// The item's key (its call's id): unique among the items of a batch.
    fn key(item: &Self::Item) -> &str;
    /// Writes `items` as one statement; returns the outcome of each item written, by key. An
    /// item missing from it was written nowhere.
    fn write(
        conn: &mut AsyncPgConnection,
        items: &[&Self::Item],
    ) -> impl Future<Output = QueryResult<Vec<(String, Self::Out)>>> + Send;
    /// Writes one item alone, by a single call's own statement: for a batch of one, cheaper on
    /// the database than the batch's (`bench/RESULTS.md`, "2026-12-04"). `None`: not written.
    fn write_one(
        conn: &mut AsyncPgConnection,
        item: &Self::Item,
    ) -> impl Future<Output = QueryResult<Option<Self::Out>>> + Send;
}

/// The queue of one kind of write and its writer (started at the first item).
pub struct Queue<B: Batch> {
    db: DbPool,
    queue: OnceLock<mpsc::Sender<Job<B>>>,
    counts: Arc<Counts>,
}

/// What the writer did since start.
#[derive(Default)]
struct Counts {
    batches: AtomicU64,
    written: AtomicU64,
}

/// What a queue's writer did since start (for metrics): the statements it sent, and the items
/// they wrote (more than one a statement when calls wrote together).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchStats {
    /// Batches written (statements that wrote at least one item).
    pub batches: u64,
    /// Items those batches wrote.
    pub written: u64,
}

/// What a caller gets back: its item with its outcome, or the item unwritten.
pub type Outcome<B> = Result<(<B as Batch>::Item, <B as Batch>::Out), <B as Batch>::Item>;

struct Job<B: Batch> {
    item: B::Item,
    reply: oneshot::Sender<Outcome<B>>,
}

impl<B: Batch> Queue<B> {
    /// The queue for `db`'s writes (used on PostgreSQL only).
    pub fn new(db: DbPool) -> Self {
        Self {
            db,
            queue: OnceLock::new(),
            counts: Arc::default(),
        }
    }

    /// What the writer did since start.
    pub fn stats(&self) -> BatchStats {
        BatchStats {
            batches: self.counts.batches.load(Ordering::Relaxed),
            written: self.counts.written.load(Ordering::Relaxed),
        }
    }

    /// Whether writes are gathered here (PostgreSQL).
    pub fn batched(&self) -> bool {
        matches!(self.db, DbPool::Pg(_))
    }

    /// Writes `item` with those queued beside it; returns it with its outcome, or the item itself
    /// when the batch did not write it (see the module's documentation), or `None` if the
    /// writer is gone with the item in hand (the runtime is shutting down).
    pub async fn write(&self, item: B::Item) -> Result<(B::Item, B::Out), Option<B::Item>> {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(write_batches::<B>(self.db.clone(), rx, self.counts.clone()));
            tx
        });
        let (reply, replied) = oneshot::channel();
        if let Err(mpsc::error::SendError(job)) = queue.send(Job { item, reply }).await {
            return Err(Some(job.item));
        }
        match replied.await {
            Ok(outcome) => outcome.map_err(Some),
            Err(_) => Err(None),
        }
    }
}

/// The writer: a batch at a time, of everything queued. A write that fails, or panics, gives
/// every item back to its caller.
async fn write_batches<B: Batch>(
    db: DbPool,
    mut queue: mpsc::Receiver<Job<B>>,
    counts: Arc<Counts>,
) {
    let mut jobs: Vec<Job<B>> = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let items: Vec<&B::Item> = jobs.iter().map(|j| &j.item).collect();
        let written = AssertUnwindSafe(write::<B>(&db, &items))
            .catch_unwind()
            .await;
        drop(items);
        let mut written: HashMap<String, B::Out> = match written {
            Ok(Ok(written)) => {
                if !written.is_empty() {
                    counts.batches.fetch_add(1, Ordering::Relaxed);
                    counts
                        .written
                        .fetch_add(written.len() as u64, Ordering::Relaxed);
                }
                written.into_iter().collect()
            }
            Ok(Err(e)) => {
                tracing::warn!(calls = jobs.len(), error = %e, what = B::WHAT, "writing a batch failed; each call writes its own");
                HashMap::new()
            }
            Err(_) => {
                tracing::error!(
                    calls = jobs.len(),
                    what = B::WHAT,
                    "writing a batch panicked; each call writes its own"
                );
                HashMap::new()
            }
        };
        for Job { item, reply } in jobs.drain(..) {
            let _ = reply.send(match written.remove(B::key(&item)) {
                Some(out) => Ok((item, out)),
                None => Err(item),
            });
        }
    }
}

async fn write<B: Batch>(db: &DbPool, items: &[&B::Item]) -> Result<Vec<(String, B::Out)>, Error> {
    let mut conn = db.get().await?;
    let DbConn::Pg(c) = &mut conn else {
        return Ok(Vec::new());
    };
    Ok(match items {
        [item] => B::write_one(c, item)
            .await?
            .map(|out| (B::key(item).to_owned(), out))
            .into_iter()
            .collect(),
        _ => B::write(c, items).await?,
    })
}
