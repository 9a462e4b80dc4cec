//! What reloads the plugins besides an admin's `reloadPlugins`: `SIGHUP`, and, when
//! `plugins_watch_secs` is set, a change in the plugins folder. Both run the same reload as the
//! mutation, audited as a `reloadPlugins` with no user.
//!
//! The watch polls the folder's listing (name, size and modification time of each file) rather
//! than asking the kernel: no new dependency, and a few `stat`s every few seconds cost nothing.
//! It reloads once a change has settled, when a poll sees the same listing as the poll before,
//! so a library still being copied in is not loaded half-written.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cloudbase_schema::services::App;
use cloudbase_schema::services::plugins::{ReloadTrigger, reload_unattended};

/// Listens for `SIGHUP` now (from here on a `SIGHUP` reloads instead of ending the process) and
/// returns the task that reloads on each one, for the caller to spawn; `None`, with a warning,
/// where signals cannot be had. Reload failures are logged (and audited) by the service.
pub fn on_hangup(app: Arc<App>) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(hangups) => hangups,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reload plugins with `reloadPlugins`");
                return None;
            }
        };
        Some(async move {
            while hangups.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the plugins");
                let _ = reload_unattended(&app, ReloadTrigger::Signal).await;
            }
        })
    }
    #[cfg(not(unix))]
    {
        drop(app);
        None::<std::future::Ready<()>>
    }
}

/// One file in the plugins folder as the watch sees it.
type Seen = (String, u64, Option<SystemTime>);

/// The folder's listing, sorted; hidden files (and an unreadable folder) count as nothing.
fn listing(dir: &Path) -> Vec<Seen> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut seen: Vec<Seen> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            // Follows symlinks: a link swapped to a new target is a change.
            let meta = std::fs::metadata(entry.path()).ok()?;
            (!name.starts_with('.') && meta.is_file()).then(|| {
                let modified = meta.modified().ok();
                (name, meta.len(), modified)
            })
        })
        .collect();
    seen.sort();
    seen
}

/// Looks at `dir` every `every` and reloads once a change has settled (see the module docs).
pub async fn watch_folder(app: Arc<App>, dir: PathBuf, every: Duration) {
    tracing::info!(dir = %dir.display(), every_secs = every.as_secs(), "watching the plugins folder");
    let mut last = listing(&dir);
    let mut changed = false;
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let now = {
            let dir = dir.clone();
            match tokio::task::spawn_blocking(move || listing(&dir)).await {
                Ok(now) => now,
                Err(_) => continue,
            }
        };
        if now != last {
            last = now;
            changed = true;
        } else if changed {
            changed = false;
            tracing::info!(dir = %dir.display(), "the plugins folder changed: reloading the plugins");
            let _ = reload_unattended(&app, ReloadTrigger::Watch).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_sees_files_not_hidden_ones_or_folders() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("libb.so"), b"12").unwrap();
        std::fs::write(dir.path().join("liba.so"), b"1").unwrap();
        std::fs::write(dir.path().join(".hidden.so"), b"1").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let seen = listing(dir.path());
        let names: Vec<_> = seen.iter().map(|(n, len, _)| (n.as_str(), *len)).collect();
        assert_eq!(names, [("liba.so", 1), ("libb.so", 2)]);
        std::fs::write(dir.path().join("liba.so"), b"123").unwrap();
        assert_ne!(listing(dir.path()), seen, "a new size is a change");
        assert!(listing(&dir.path().join("missing")).is_empty());
    }
}
