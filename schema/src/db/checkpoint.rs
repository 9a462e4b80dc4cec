//! SQLite's checkpoints, in the writers' turn instead of inside some AI call's commit.
//!
//! By default SQLite checkpoints inside the commit that leaves 1,000 pages in the write-ahead
//! log: one call in about seventy paid for copying the log into the database and its `fsync`,
//! which was most of the p99 of a call at c=1 (`bench/RESULTS.md`). Checkpointing beside the
//! writers alone (`PASSIVE`) does not help under steady load: the log only starts over when a
//! writer finds every frame copied, and by then new frames have always come, so it grows without
//! end. So every [`EVERY`] this task
//! 1. copies what the log holds into the database, beside the writers (`PASSIVE`): the bulk of
//!    the work, and no writer waits for it;
//! 2. then, in the writers' turn ([`super::WriteGate`]), copies the few frames written meanwhile
//!    and marks the log to start over (`RESTART`), so the next writer rewinds it.
//!
//! A writer waits for step 2 at most once per interval. Connections keep SQLite's own
//! checkpoint as a backstop at 10,000 pages (`SQLITE_PRAGMAS` in [`super`]): for a stalled task,
//! and for processes without one, like the command-line tools.
//!
//! Step 1 runs on a thread of its own at the lowest priority (nice 19, on Linux): its 2 to 4 ms
//! of copying, four times a second, otherwise preempted the runtime's worker on a busy core and
//! made up much of a call's p99 at c=1 (`perf sched`, `bench/RESULTS.md`). Nothing waits for it
//! but this task. Step 2 keeps the normal priority, since writers wait for it. On a saturated
//! core step 1 still gets a small share and finishes later, the interval stretches, and step 2
//! copies what came meanwhile (at c=128 for 10 s the log file stayed under 4 MB).

use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use tokio::sync::oneshot;

use diesel::sql_types::Integer;
use diesel::{Connection, QueryableByName, RunQueryDsl, SqliteConnection};

use super::WriteGate;

/// How often the log is copied and rewound.
pub const EVERY: Duration = Duration::from_millis(250);

/// One row of `PRAGMA wal_checkpoint`.
#[derive(QueryableByName, Debug, Clone, Copy)]
struct Outcome {
    /// 1 when readers or writers kept it from finishing.
    #[diesel(sql_type = Integer)]
    busy: i32,
    /// Frames in the log.
    #[diesel(sql_type = Integer)]
    log: i32,
    /// Of them, copied into the database.
    #[diesel(sql_type = Integer)]
    checkpointed: i32,
}

type Shared = Arc<Mutex<SqliteConnection>>;

async fn checkpoint(conn: &Shared, mode: &'static str) -> Result<Outcome, String> {
    let conn = Arc::clone(conn);
    tokio::task::spawn_blocking(move || {
        run_pragma(&mut conn.lock().unwrap_or_else(|p| p.into_inner()), mode)
    })
    .await
    .map_err(|e| e.to_string())?
}

fn run_pragma(c: &mut SqliteConnection, mode: &str) -> Result<Outcome, String> {
    diesel::sql_query(format!("PRAGMA wal_checkpoint({mode})"))
        .get_result::<Outcome>(c)
        .map_err(|e| e.to_string())
}

/// Opens the checkpointer's own connection to `path`.
fn open(path: &str) -> Result<SqliteConnection, String> {
    let mut c = SqliteConnection::establish(path).map_err(|e| e.to_string())?;
    // Never wait for readers inside the writers' turn: a busy step ends, the next one finishes
    // the job.
    diesel::sql_query("PRAGMA busy_timeout = 0")
        .execute(&mut c)
        .map_err(|e| e.to_string())?;
    Ok(c)
}

/// A request for one `PASSIVE` copy, answered on the channel it carries.
type CopyRequest = oneshot::Sender<Result<Outcome, String>>;

/// Starts the low-priority thread that runs step 1 on a connection of its own; it ends when the
/// returned sender is dropped (this task ends or is aborted).
fn start_copier(path: String) -> Result<mpsc::Sender<CopyRequest>, String> {
    let (tx, rx) = mpsc::channel::<CopyRequest>();
    let (ready_tx, ready_rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            lowest_priority();
            let mut conn = match open(&path) {
                Ok(c) => {
                    let _ = ready_tx.send(Ok(()));
                    c
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            while let Ok(reply) = rx.recv() {
                let _ = reply.send(run_pragma(&mut conn, "PASSIVE"));
            }
        })
        .map_err(|e| e.to_string())?;
    ready_rx
        .recv()
        .map_err(|_| "the checkpoint thread ended at start".to_owned())??;
    Ok(tx)
}

/// Puts the calling thread at nice 19, so that any other thread of the process ready to run on
/// its core runs first. Best effort: left as it is where that fails or is not Linux.
#[cfg(target_os = "linux")]
#[expect(
    unsafe_code,
    reason = "two system calls through libc on the calling thread's own id"
)]
fn lowest_priority() {
    // SAFETY: `gettid` has no preconditions; on Linux `setpriority(PRIO_PROCESS, tid, ..)` changes
    // that one thread's nice value, here the calling thread's own, and only returns an error.
    let failed = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19) != 0
    };
    if failed {
        tracing::debug!(error = %std::io::Error::last_os_error(), "the SQLite checkpoint thread keeps its priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lowest_priority() {}

/// Copies the log into the database on the copier thread.
async fn copy(copier: &mpsc::Sender<CopyRequest>) -> Result<Outcome, String> {
    let (tx, rx) = oneshot::channel();
    copier
        .send(tx)
        .map_err(|_| "the checkpoint thread has ended".to_owned())?;
    rx.await
        .map_err(|_| "the checkpoint thread has ended".to_owned())?
}

/// Checkpoints the SQLite database at `path` every [`EVERY`] until aborted, taking `gate`'s turn
/// for the short second step.
pub async fn run(path: String, gate: WriteGate) {
    let opened = tokio::task::spawn_blocking(move || {
        let copier = start_copier(path.clone())?;
        Ok::<_, String>((copier, open(&path)?))
    })
    .await;
    let (copier, conn) = match opened.map_err(|e| e.to_string()).and_then(|r| r) {
        Ok((copier, c)) => (copier, Arc::new(Mutex::new(c)) as Shared),
        Err(e) => {
            tracing::warn!(error = %e, "the SQLite checkpointer cannot open the database; commits checkpoint by themselves");
            return;
        }
    };
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The log's length when it was last marked to start over: unchanged means nothing was written.
    let mut rewound_at = None;
    // A lasting failure (a full disk) is logged once a minute, not four times a second.
    let mut failing = crate::recurring::Recurring::default();
    let failed = |failing: &mut crate::recurring::Recurring, e: String| {
        failing.failed(|unsaid| {
            tracing::warn!(error = %e, rounds_failed_unlogged = unsaid, "SQLite checkpoint failed");
        });
    };
    loop {
        tick.tick().await;
        let copied = match copy(&copier).await {
            Ok(o) => o,
            Err(e) => {
                failed(&mut failing, e);
                continue;
            }
        };
        if copied.log == 0 || rewound_at == Some(copied.log) {
            failing.worked(|| tracing::info!("SQLite checkpoints work again"));
            continue;
        }
        let turn = gate.turn().await;
        let restart = checkpoint(&conn, "RESTART").await;
        drop(turn);
        match restart {
            Ok(o) if o.busy == 0 => {
                rewound_at = Some(o.log);
                failing.worked(|| tracing::info!("SQLite checkpoints work again"));
            }
            Ok(o) => {
                rewound_at = None;
                tracing::debug!(
                    log = o.log,
                    checkpointed = o.checkpointed,
                    "SQLite checkpoint kept busy by readers; trying again"
                );
            }
            Err(e) => failed(&mut failing, e),
        }
    }
}

#[cfg(test)]
#[cfg(target_os = "linux")]
mod tests {
    /// The nice value of the calling thread, from `/proc/thread-self/stat` (the 19th field).
    fn own_nice() -> i64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // The name in parentheses may hold spaces; the fields after it are plain.
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        after_name.split(' ').nth(16).unwrap().parse().unwrap()
    }

    /// The copy step's thread goes to nice 19, and only that thread: the caller's stays as it was.
    #[test]
    fn lowest_priority_is_for_the_calling_thread_alone() {
        let before = own_nice();
        let on_thread = std::thread::spawn(|| {
            super::lowest_priority();
            own_nice()
        })
        .join()
        .unwrap();
        assert_eq!(on_thread, 19);
        assert_eq!(own_nice(), before);
    }
}
