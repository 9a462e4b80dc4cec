//! PostgreSQL: the writes of concurrent calls gathered into one statement.
//!
//! A call on PostgreSQL writes its record twice: the `PENDING` insert before the provider is
//! asked ([`super::pendings`], or with its reservations under budgets: [`super::admissions`])
//! and the finish after ([`super::finishes`]). Calls that do either
//! at the same moment each paid for their own statement (and, for a finish, its own commit).
//! Here they queue instead: one task per kind of write takes every item queued (up to
//! [`MAX_BATCH`]), writes them as one statement on one pooled connection and hands each caller
//! its outcome; the items queued while it writes form the next batch. Alone, a call is a batch of
//! one, waits for nobody, and is written by its own single statement, which costs the database
//! less than the batch's statement does for one.
//!
//! The caller holds no connection while it waits (DESIGN §9: never two at once, and a waiting
//! caller holds none). An item the batch did not write (its statement failed or panicked, or
//! left it out) comes back to its caller, which writes it on its own as before; when the writer
//! finds no connection at all, its callers fail at once with that error (they would not find
//! one either, and an overloaded pool must refuse fast, not be asked again by every caller). A
//! caller that stops waiting (its client went away) does not stop its write: the batch is
//! written all the same, and the call's `PENDING` row, if it is left so, is finished by the sweep
//! of interrupted calls.
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
    /// Whether `out` says its item was written (counted in [`BatchStats::written`]); an item
    /// answered without being written (a refusal) is not.
    fn written(_out: &Self::Out) -> bool {
        true
    }
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
pub type Outcome<B> =
    Result<(<B as Batch>::Item, <B as Batch>::Out), Unwritten<<B as Batch>::Item>>;

/// An item the queue did not write, as its caller gets it back.
pub enum Unwritten<I> {
    /// The batch's statement failed, or left the item out: the caller writes it alone.
    Alone(I),
    /// The writer found no connection for the batch (the pool is exhausted, or the database
    /// unreachable): the caller fails at once, as it would have failed to get one itself, rather
    /// than wait for the pool a second time.
    Failed(I, Error),
    /// The writer is gone with the item in hand (the runtime is shutting down).
    Gone,
}

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

    /// Writes `item` with those queued beside it; returns it with its outcome, or says why it
    /// was not written ([`Unwritten`]).
    pub async fn write(&self, item: B::Item) -> Outcome<B> {
        let queue = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            tokio::spawn(write_batches::<B>(self.db.clone(), rx, self.counts.clone()));
            tx
        });
        let (reply, replied) = oneshot::channel();
        if let Err(mpsc::error::SendError(job)) = queue.send(Job { item, reply }).await {
            return Err(Unwritten::Alone(job.item));
        }
        replied.await.unwrap_or(Err(Unwritten::Gone))
    }
}

/// The writer: a batch at a time, of everything queued. A statement that fails, or panics,
/// gives every item back to be written alone; a batch with no connection fails its callers.
async fn write_batches<B: Batch>(
    db: DbPool,
    mut queue: mpsc::Receiver<Job<B>>,
    counts: Arc<Counts>,
) {
    let mut jobs: Vec<Job<B>> = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        let mut conn = match db.get().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(calls = jobs.len(), error = %e, what = B::WHAT, "no connection for a batch");
                let message = match e {
                    Error::Unavailable(message) => message,
                    other => other.to_string(),
                };
                for Job { item, reply } in jobs.drain(..) {
                    let _ = reply.send(Err(Unwritten::Failed(
                        item,
                        Error::Unavailable(message.clone()),
                    )));
                }
                continue;
            }
        };
        let items: Vec<&B::Item> = jobs.iter().map(|j| &j.item).collect();
        let written = AssertUnwindSafe(write::<B>(&mut conn, &items))
            .catch_unwind()
            .await;
        drop((items, conn));
        let mut written: HashMap<String, B::Out> = match written {
            Ok(Ok(written)) => {
                let n = written.iter().filter(|(_, out)| B::written(out)).count();
                if n > 0 {
                    counts.batches.fetch_add(1, Ordering::Relaxed);
                    counts.written.fetch_add(n as u64, Ordering::Relaxed);
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
                None => Err(Unwritten::Alone(item)),
            });
        }
    }
}

async fn write<B: Batch>(
    conn: &mut DbConn,
    items: &[&B::Item],
) -> QueryResult<Vec<(String, B::Out)>> {
    let DbConn::Pg(c) = conn else {
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
