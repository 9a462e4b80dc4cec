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

use std::sync::{Arc, Mutex};
use std::time::Duration;

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
        let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
        diesel::sql_query(format!("PRAGMA wal_checkpoint({mode})"))
            .get_result::<Outcome>(&mut *c)
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Checkpoints the SQLite database at `path` every [`EVERY`] until aborted, taking `gate`'s turn
/// for the short second step.
pub async fn run(path: String, gate: WriteGate) {
    let opened = tokio::task::spawn_blocking(move || {
        let mut c = SqliteConnection::establish(&path).map_err(|e| e.to_string())?;
        // Never wait for readers inside the writers' turn: a busy step ends, the next one
        // finishes the job.
        diesel::sql_query("PRAGMA busy_timeout = 0")
            .execute(&mut c)
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(c)
    })
    .await;
    let conn: Shared = match opened.map_err(|e| e.to_string()).and_then(|r| r) {
        Ok(c) => Arc::new(Mutex::new(c)),
        Err(e) => {
            tracing::warn!(error = %e, "the SQLite checkpointer cannot open the database; commits checkpoint by themselves");
            return;
        }
    };
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The log's length when it was last marked to start over: unchanged means nothing was written.
    let mut rewound_at = None;
    loop {
        tick.tick().await;
        let copied = match checkpoint(&conn, "PASSIVE").await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "SQLite checkpoint failed");
                continue;
            }
        };
        if copied.log == 0 || rewound_at == Some(copied.log) {
            continue;
        }
        let turn = gate.turn().await;
        let restart = checkpoint(&conn, "RESTART").await;
        drop(turn);
        match restart {
            Ok(o) if o.busy == 0 => rewound_at = Some(o.log),
            Ok(o) => {
                rewound_at = None;
                tracing::debug!(
                    log = o.log,
                    checkpointed = o.checkpointed,
                    "SQLite checkpoint kept busy by readers; trying again"
                );
            }
            Err(e) => tracing::warn!(error = %e, "SQLite checkpoint failed"),
        }
    }
}
