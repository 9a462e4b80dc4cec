//! The server's own SQLite backups: one every `[backup] interval_secs` into `[backup] dir`, then
//! all but the newest `keep` deleted. A failure is logged and the next interval tries again.

use std::path::PathBuf;
use std::time::Duration;

use super::{Kind, create_at, manifest};

/// Where and how often.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The database URL (`sqlite://…`).
    pub url: String,
    /// The folder backups go to.
    pub dir: PathBuf,
    /// Time between backups.
    pub every: Duration,
    /// Backups kept, newest first.
    pub keep: usize,
}

/// Takes a backup every `schedule.every` (the first one interval after start) until aborted.
pub async fn run(schedule: Schedule) {
    let start = tokio::time::Instant::now() + schedule.every;
    let mut tick = tokio::time::interval_at(start, schedule.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let file = manifest::new_file_name(&schedule.dir, Kind::Sqlite, chrono::Utc::now());
        let started = std::time::Instant::now();
        match create_at(&schedule.url, Kind::Sqlite, &file).await {
            Ok(created) => tracing::info!(
                backup.file = %created.file.display(),
                backup.bytes = created.manifest.bytes,
                duration_ms = started.elapsed().as_millis() as u64,
                "backup written"
            ),
            Err(e) => {
                tracing::warn!(backup.file = %file.display(), error = %format!("{e:#}"), "scheduled backup failed");
                continue;
            }
        }
        let (dir, keep) = (schedule.dir.clone(), schedule.keep);
        match tokio::task::spawn_blocking(move || manifest::prune(&dir, keep)).await {
            Ok(Ok(removed)) => {
                for old in removed {
                    tracing::info!(backup.file = %old.display(), "old backup removed");
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "removing old backups failed");
            }
            Err(e) => tracing::warn!(error = %e, "removing old backups failed"),
        }
    }
}
