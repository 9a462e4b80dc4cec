//! SQLite's writers: one connection, taken in turn, and commits shared by writers that queue
//! behind each other (group commit).
//!
//! SQLite lets one connection write at a time, and a second writer waits in SQLite's busy
//! handler, which sleeps in steps of 1 to 100 ms: under concurrent calls those sleeps were most of
//! the tail (`bench/RESULTS.md`). Writers of this process queue on [`WriteGate`] instead and are
//! woken the moment the turn is free. The turn also holds the writer connection, and every write
//! runs on it (swapped in for the pooled connection for the length of the turn): a connection's
//! page cache is thrown away whenever another connection has written since its last use, so one
//! connection that does all the writing always finds its cache current.
//!
//! A commit is most of a write's cost on SQLite: every page the transaction changed is appended
//! to the write-ahead log, and an AI call changes about fifteen, most of them the same pages as
//! the call before it (the last leaf of each index, the day's rollup rows). So writers that find
//! others queued behind them do not commit alone. The first one opens a *batch*, one
//! `BEGIN IMMEDIATE` transaction; each writer after it runs inside it in a savepoint of its own
//! (rolled back alone if it fails) and hands the turn on; the writer that finds nobody queued (or the
//! batch full, or old) commits it, once, for all. Nobody's work counts as written before that
//! commit: every writer in the batch waits for it and returns its outcome, so a caller that got
//! `Ok` has its work durable, as before, and if the commit fails every writer in the batch fails
//! with it. A writer that failed waits for the commit too: its failure may come from a writer
//! before it in the batch (a unique key taken), and what it does next (read that row) must find
//! it. A writer that waited [`FLUSH_AFTER`] without seeing the commit (its successor was
//! cancelled while queued) takes the turn and commits the batch itself.
//!
//! On one busy core the writers would hardly ever find each other queued: the statements of a
//! call run on its task without a pause ([`super::on_call_path`]), so nobody else runs during a
//! turn. A writer that finds nobody queued therefore yields once, still in its turn, and lets
//! the tasks that are ready run up to their own writes before it decides; with nothing else
//! ready that costs nothing.
//!
//! Anyone who takes the turn to do something other than join ([`WriteGate::turn`], the
//! checkpointer) commits the open batch first.
//!
//! What the batch's finished calls add to the daily rollups is written once, with the batch's
//! commit, each rollup row with the sums of the calls that share it
//! ([`super::budgets::Rollups`]): a writer stages its additions while it works, and they join the
//! batch only when its savepoint is released (dropped with it otherwise).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use diesel::connection::AnsiTransactionManager as SyncAnsiTransactionManager;
use diesel_async::{AsyncConnection, TransactionManager};
use tokio::sync::watch;

use super::budgets::{Addition, Rollups};
use super::{DbConn, SqliteConn, SqliteSlot, finish_tx};
use crate::Error;

/// At most this many writers share one commit.
const MAX_WRITERS: usize = 64;
/// A batch older than this is committed by the next writer to finish, queued or not, so that the
/// first writer's wait stays short.
const MAX_AGE: Duration = Duration::from_millis(4);
/// A writer that has not seen its batch committed after this commits it itself.
const FLUSH_AFTER: Duration = Duration::from_millis(50);

type Tm = <SqliteConn as AsyncConnection>::TransactionManager;

/// SQLite's writer turn and its one writer connection (see the module's documentation).
#[derive(Clone)]
pub struct WriteGate(Arc<Inner>);

struct Inner {
    writer: Arc<tokio::sync::Mutex<Writer>>,
    /// Writers waiting for the turn: while there are some, a finished writer leaves the batch
    /// open for them.
    queued: AtomicUsize,
    /// The database file, to open the writer connection again if it ever breaks.
    path: String,
    /// Commits of batches, and the writes they held, since start.
    commits: AtomicU64,
    written: AtomicU64,
    /// Rollup rows written by commits since start.
    rollup_rows: AtomicU64,
}

/// What the writers did since start (for metrics): writes committed, and the commits that held
/// them (fewer when writers shared commits).
#[derive(Debug, Clone, Copy)]
pub struct WriterStats {
    /// Writes whose work was committed.
    pub writes: u64,
    /// Commits of batches.
    pub commits: u64,
    /// Rows of the daily rollups written by those commits (each once per commit, however many
    /// of its calls added to it).
    pub rollup_rows: u64,
}

/// The writer connection, and the batch open on it.
pub struct Writer {
    /// The connection every write runs on.
    pub(super) conn: SqliteConn,
    batch: Option<Batch>,
    /// The rollups' additions of the writer at work, until its savepoint is released.
    staged: Rollups,
}

impl Writer {
    /// Stages what a finished call adds to the rollups: written with the batch's commit if the
    /// writer's work stays in the batch.
    pub(super) fn stage(&mut self, addition: Addition) {
        self.staged.add(addition);
    }
}

/// SQLite's writer turn, holding the writer connection.
pub type Turn = tokio::sync::OwnedMutexGuard<Writer>;

/// One open `BEGIN IMMEDIATE` transaction, shared by the writers that ran in it.
struct Batch {
    writers: usize,
    /// The batch's first writer is at work in it without a savepoint of its own.
    bare: bool,
    opened: Instant,
    /// `Some` once the batch is committed (or has failed); its writers wait for it.
    done: watch::Sender<Option<Result<(), String>>>,
    /// What its writers' finished calls add to the rollups, written before its commit.
    rollups: Rollups,
}

impl Batch {
    fn new() -> Self {
        Self {
            writers: 0,
            bare: true,
            opened: Instant::now(),
            done: watch::Sender::new(None),
            rollups: Rollups::default(),
        }
    }
}

impl Drop for Batch {
    /// A batch dropped before its commit (its transaction was lost with a cancelled writer's
    /// connection, or failed) fails every writer waiting for it.
    fn drop(&mut self) {
        self.done.send_if_modified(|done| {
            let unset = done.is_none();
            if unset {
                *done = Some(Err("the write batch was rolled back".into()));
            }
            unset
        });
    }
}

/// Decrements the queue count when a writer stops waiting for the turn, got it or not.
struct Queued<'a>(&'a AtomicUsize);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl WriteGate {
    /// A gate whose turn carries `writer`, a connection to the database at `path`.
    pub fn new(writer: SqliteConn, path: String) -> Self {
        Self(Arc::new(Inner {
            writer: Arc::new(tokio::sync::Mutex::new(Writer {
                conn: writer,
                batch: None,
                staged: Rollups::default(),
            })),
            queued: AtomicUsize::new(0),
            path,
            commits: AtomicU64::new(0),
            written: AtomicU64::new(0),
            rollup_rows: AtomicU64::new(0),
        }))
    }

    /// Writes and commits since start.
    pub fn stats(&self) -> WriterStats {
        WriterStats {
            writes: self.0.written.load(Ordering::Relaxed),
            commits: self.0.commits.load(Ordering::Relaxed),
            rollup_rows: self.0.rollup_rows.load(Ordering::Relaxed),
        }
    }

    /// Writers waiting for the turn now.
    pub fn queued(&self) -> usize {
        self.0.queued.load(Ordering::Relaxed)
    }

    /// Waits for the turn, with any open batch committed first: for work that must not run
    /// inside a batch (a checkpoint).
    pub async fn turn(&self) -> Turn {
        let mut turn = self.lock().await;
        if turn.batch.is_some() {
            // A failed commit has failed the batch's writers; the turn is clean either way.
            let _ = self.commit(&mut turn).await;
        }
        turn
    }

    /// Runs `body` on the writer connection, in a savepoint of the open batch (opening one if
    /// there is none), and returns once the batch holding its work is committed. For the length
    /// of `body`, `conn` holds the turn in place of its pooled connection; if the caller is
    /// dropped meanwhile, the turn goes back with the savepoint still open, and the next writer
    /// rolls it back ([`Self::lock`]): the batch and the pool stay as they were.
    pub(super) async fn write<T>(
        &self,
        conn: &mut DbConn,
        body: impl AsyncFnOnce(&mut DbConn) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut turn = self.lock().await;
        // The batch's first writer needs no savepoint: if it fails, the batch holds nothing
        // else, and all of it is rolled back.
        let bare = turn.batch.is_none();
        if bare {
            begin_immediate(&mut turn.conn).await?;
            turn.batch = Some(Batch::new());
        }
        let pooled = std::mem::replace(slot(conn)?, SqliteSlot::Writer(turn));
        let result = if bare {
            body(conn).await
        } else {
            match Tm::begin_transaction(&mut **slot(conn)?).await {
                Ok(()) => {
                    let result = body(conn).await;
                    finish_tx(&mut **slot(conn)?, result).await
                }
                Err(e) => Err(e.into()),
            }
        };
        let SqliteSlot::Writer(turn) = std::mem::replace(slot(conn)?, pooled) else {
            return Err(Error::Internal("the writer turn went missing".into()));
        };
        self.finished(turn, bare, result).await
    }

    /// Waits for the turn, counted as queued meanwhile, and makes the writer connection agree
    /// with the batch: a savepoint left open by a writer that was dropped in its turn is rolled
    /// back.
    async fn lock(&self) -> Turn {
        self.0.queued.fetch_add(1, Ordering::Relaxed);
        let queued = Queued(&self.0.queued);
        let mut turn = Arc::clone(&self.0.writer).lock_owned().await;
        drop(queued);
        self.settle(&mut turn).await;
        turn
    }

    /// After one writer's savepoint: leaves the batch open for the writers queued behind it, or
    /// commits it; then waits for the commit if it has work in it.
    async fn finished<T>(
        &self,
        mut turn: Turn,
        bare: bool,
        result: Result<T, Error>,
    ) -> Result<T, Error> {
        if bare {
            if let Some(batch) = turn.batch.as_mut() {
                batch.bare = false;
            }
            if result.is_err() {
                // Nothing but this writer's work is in the batch: all of it is rolled back.
                turn.batch = None;
                self.settle(&mut turn).await;
                return result;
            }
        }
        if depth(&mut turn.conn) != Some(1) {
            // The savepoint did not end cleanly: its work is rolled back (with the batch, if the
            // batch went with it).
            self.settle(&mut turn).await;
            return result.and(Err(Error::Unavailable(
                "the database write failed; try again".into(),
            )));
        }
        // Before any pause: the writer's work is in the batch now (or rolled back, on `Err`),
        // and its additions to the rollups go with it.
        let Writer { batch, staged, .. } = &mut *turn;
        match batch.as_mut() {
            Some(batch) if result.is_ok() => batch.rollups.append(staged),
            _ => staged.clear(),
        }
        let young = turn
            .batch
            .as_ref()
            .is_some_and(|b| b.opened.elapsed() < MAX_AGE);
        if young && self.queued() == 0 {
            // Statements on the call path run on the calling task without a pause, so on a
            // busy core the other writers have had no chance to queue: let the tasks that are
            // ready run up to their writes first (at once when there are none).
            tokio::task::yield_now().await;
        }
        let queued = self.queued() > 0;
        let Some(batch) = turn.batch.as_mut() else {
            return result;
        };
        if result.is_ok() {
            batch.writers += 1;
        }
        if queued && batch.writers < MAX_WRITERS && batch.opened.elapsed() < MAX_AGE {
            let done = batch.done.subscribe();
            drop(turn);
            return match result {
                Ok(value) => self.wait(done).await.map(|()| value),
                Err(e) => {
                    // A failure can be the batch's own doing (a unique key a writer before this
                    // one took): answered before the commit, the caller would look for that row
                    // and not find it yet. So a failed writer, too, returns once the batch is
                    // committed (or has failed), with its own error.
                    let _committed = self.wait(done).await;
                    Err(e)
                }
            };
        }
        let committed = self.commit(&mut turn).await;
        drop(turn);
        result.and_then(|value| committed.map(|()| value))
    }

    /// Commits the open batch and tells its writers.
    async fn commit(&self, turn: &mut Turn) -> Result<(), Error> {
        let Some(mut batch) = turn.batch.take() else {
            return Ok(());
        };
        let rollups = std::mem::take(&mut batch.rollups);
        let rows = if rollups.is_empty() {
            Ok(0)
        } else {
            turn.conn.spawn_blocking(move |c| rollups.write(c)).await
        };
        // If the rollups failed, the transaction is still open: `settle` rolls it back.
        let committed = match rows {
            Ok(rows) => Tm::commit_transaction(&mut turn.conn).await.map(|()| rows),
            Err(e) => Err(e),
        };
        if let Ok(rows) = committed {
            self.0.commits.fetch_add(1, Ordering::Relaxed);
            self.0
                .written
                .fetch_add(u64::try_from(batch.writers).unwrap_or(0), Ordering::Relaxed);
            self.0
                .rollup_rows
                .fetch_add(u64::try_from(rows).unwrap_or(0), Ordering::Relaxed);
        }
        batch.done.send_replace(Some(
            committed.as_ref().map(|_| ()).map_err(|e| e.to_string()),
        ));
        self.settle(turn).await;
        committed.map(drop).map_err(|e| {
            tracing::warn!(error = %e, "SQLite commit failed");
            Error::Unavailable("the database write failed; try again".into())
        })
    }

    /// Waits for a batch's commit; if it does not come in [`FLUSH_AFTER`], commits it.
    async fn wait(
        &self,
        mut done: watch::Receiver<Option<Result<(), String>>>,
    ) -> Result<(), Error> {
        if tokio::time::timeout(FLUSH_AFTER, done.wait_for(Option::is_some))
            .await
            .is_err()
        {
            drop(self.turn().await);
        }
        let outcome = done.borrow().clone();
        match outcome {
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "a batch of SQLite writes failed");
                Err(Error::Unavailable(
                    "the database write failed; try again".into(),
                ))
            }
            None => Err(Error::Internal("a write batch was never committed".into())),
        }
    }

    /// Brings the writer connection to the depth the batch says (1 with a batch open, else 0),
    /// rolling back savepoints left open; if it cannot, the batch is lost (its writers fail) and
    /// the connection is rolled back entirely, or opened again.
    async fn settle(&self, turn: &mut Turn) {
        // Whoever staged these did not get its work into the batch (or it is settled now).
        turn.staged.clear();
        if turn.batch.as_ref().is_some_and(|b| b.bare) {
            // Its first writer was dropped in the middle of its work: none of it stays.
            turn.batch = None;
        }
        let want = u32::from(turn.batch.is_some());
        loop {
            match depth(&mut turn.conn) {
                Some(d) if d == want => return,
                Some(d) if d > want => {
                    if Tm::rollback_transaction(&mut turn.conn).await.is_err() {
                        break;
                    }
                }
                _ => break,
            }
        }
        turn.batch = None;
        while let Some(1..) = depth(&mut turn.conn) {
            if Tm::rollback_transaction(&mut turn.conn).await.is_err() {
                break;
            }
        }
        if depth(&mut turn.conn) == Some(0) {
            return;
        }
        match establish_writer(self.0.path.clone()).await {
            Ok(fresh) => turn.conn = fresh,
            Err(e) => tracing::error!(error = %e, "cannot reopen the SQLite writer connection"),
        }
    }
}

/// The transaction depth of a connection (0 outside any transaction); `None` when its
/// transaction manager is broken, or while a statement of a dropped writer still runs on it on
/// the blocking pool (diesel-async then refuses, by panicking, to look).
fn depth(conn: &mut SqliteConn) -> Option<u32> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Tm::transaction_manager_status_mut(conn)
            .transaction_depth()
            .ok()
            .map(|d| d.map_or(0, NonZeroU32::get))
    }))
    .ok()
    .flatten()
}

/// The writer connection's page cache (KiB, as SQLite's negative `cache_size` counts): every
/// write reads the index leaves and rollup pages it changes, and on a database of a million
/// calls those no longer fit SQLite's default 2 MiB.
const WRITER_CACHE_KIB: i32 = 32 * 1024;

/// Opens the writer connection: a pooled connection's settings, a larger page cache, and no
/// busy handler (see [`begin_immediate`]).
pub(super) async fn establish_writer(path: String) -> diesel::ConnectionResult<SqliteConn> {
    use diesel_async::SimpleAsyncConnection;
    let mut conn = super::establish_sqlite(path).await?;
    conn.batch_execute(&format!(
        "PRAGMA cache_size = -{WRITER_CACHE_KIB}; PRAGMA busy_timeout = 0;"
    ))
    .await
    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

/// How long a batch waits for another process (a command-line tool, a second server on the same
/// file) to release SQLite's write lock, as `busy_timeout` does for other connections.
const BUSY_WAIT: Duration = Duration::from_secs(5);

/// Opens a batch's transaction, taking SQLite's write lock. The writer connection has no busy
/// handler: while another process holds the lock, it waits here with tokio's timers instead of
/// sleeping in SQLite's handler, which on the call path ([`super::on_call_path`]) would stop a
/// runtime thread for as long, and with it whatever that process's lock was waiting for when it
/// shares the runtime (two `App`s in one process, as the tests run them).
async fn begin_immediate(conn: &mut SqliteConn) -> Result<(), Error> {
    let deadline = Instant::now() + BUSY_WAIT;
    let mut pause = Duration::from_millis(1);
    loop {
        let begun = conn
            .spawn_blocking(|inner| {
                SyncAnsiTransactionManager::begin_transaction_sql(inner, "BEGIN IMMEDIATE")
            })
            .await;
        match begun {
            Err(diesel::result::Error::DatabaseError(_, info))
                if info.message() == "database is locked" && Instant::now() < deadline =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

/// Where the connection of a SQLite `conn` is.
fn slot(conn: &mut DbConn) -> Result<&mut SqliteSlot, Error> {
    match conn {
        DbConn::Sqlite(slot, _) => Ok(slot),
        DbConn::Pg(_) => Err(Error::Internal(
            "SQLite's writer turn asked for on PostgreSQL".into(),
        )),
    }
}
