//! `[backup]`: where backups go, and SQLite's scheduled backups.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::validate::{ConfigError, invalid};

/// `[backup]`: `cloudbase-ai backup create` writes into `dir`; on SQLite the server also takes a
/// backup every `interval_secs` and keeps the newest `keep`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// Where backups are written (default `<data_dir>/backups`).
    pub dir: Option<PathBuf>,
    /// Seconds between the server's own backups (SQLite only); 0, the default, turns them off.
    pub interval_secs: u64,
    /// How many scheduled backups to keep, newest first (default 7).
    pub keep: usize,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            dir: None,
            interval_secs: 0,
            keep: 7,
        }
    }
}

/// The longest accepted interval: a year.
const MAX_INTERVAL_SECS: u64 = 366 * 24 * 3600;

impl BackupConfig {
    /// The folder in force: `dir`, or `<data_dir>/backups`.
    pub fn dir(&self, data_dir: &Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| data_dir.join("backups"))
    }

    /// Time between scheduled backups; `None` when they are off.
    pub fn interval(&self) -> Option<Duration> {
        (self.interval_secs > 0).then(|| Duration::from_secs(self.interval_secs))
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.interval_secs > MAX_INTERVAL_SECS {
            return Err(invalid(
                "backup.interval_secs",
                format!(
                    "must be at most {MAX_INTERVAL_SECS} (a year); 0 turns scheduled backups off"
                ),
            ));
        }
        if !(1..=10_000).contains(&self.keep) {
            return Err(invalid(
                "backup.keep",
                "must be between 1 and 10000 (the newest backups kept)",
            ));
        }
        if self.dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            return Err(invalid(
                "backup.dir",
                "must not be empty (leave it out for <data_dir>/backups)",
            ));
        }
        Ok(())
    }
}
