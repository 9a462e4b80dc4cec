//! The manifest beside each backup (`<copy>.manifest.json`): what the copy must hold, checked by
//! `backup verify`; the copy's names; writing under a temporary name, then renaming; and keeping
//! the newest backups of a folder.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// The manifest's `format`: a manifest without it is not one of ours.
pub const FORMAT: &str = "cloudbase-backup/1";

/// Which database a backup was taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A SQLite database file, copied with SQLite's online backup API.
    Sqlite,
    /// A `pg_dump --format=custom` archive.
    Postgres,
}

impl Kind {
    /// The database's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sqlite => "SQLite",
            Kind::Postgres => "PostgreSQL",
        }
    }

    /// The copy's file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Kind::Sqlite => "db",
            Kind::Postgres => "pgdump",
        }
    }
}

/// What a backup holds, recorded when it was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The database it came from.
    pub backend: Kind,
    /// When it was taken (UTC, RFC 3339).
    pub created_at: String,
    /// The copy's size in bytes.
    pub bytes: u64,
    /// SHA-256 of the copy, in hex.
    pub sha256: String,
    /// The newest migration applied to the database when it was taken.
    pub schema_version: Option<String>,
    /// Rows per table in the copy.
    pub tables: BTreeMap<String, i64>,
}

/// Where the manifest of the copy at `file` lives.
pub fn manifest_path(file: &Path) -> PathBuf {
    with_suffix(file, ".manifest.json")
}

/// A name a file has while it is being written: nothing that looks finished.
pub fn partial_path(file: &Path) -> PathBuf {
    with_suffix(file, ".partial")
}

fn with_suffix(file: &Path, suffix: &str) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A new copy's path in `dir`: `cloudbase-<UTC time>.<ext>`, which sorts by time.
pub fn new_file_name(dir: &Path, kind: Kind, now: chrono::DateTime<chrono::Utc>) -> PathBuf {
    dir.join(format!(
        "cloudbase-{}.{}",
        now.format("%Y%m%dT%H%M%S%.3fZ"),
        kind.extension()
    ))
}

/// The size and SHA-256 (hex) of the file at `path`.
pub fn digest(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok((bytes, hex::encode(hasher.finalize())))
}

impl Manifest {
    /// Reads the manifest beside `file`; a missing or foreign one means `file` is not a finished
    /// CloudBase AI backup.
    pub fn read_beside(file: &Path) -> anyhow::Result<Self> {
        anyhow::ensure!(file.is_file(), "{}: no such file", file.display());
        let path = manifest_path(file);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => anyhow::bail!(
                "{}: no manifest beside it ({}): not a finished CloudBase AI backup",
                file.display(),
                path.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let manifest: Manifest = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a CloudBase AI backup manifest", path.display()))?;
        anyhow::ensure!(
            manifest.format == FORMAT,
            "{}: unknown manifest format {:?} (this build reads {FORMAT:?})",
            path.display(),
            manifest.format
        );
        Ok(manifest)
    }

    /// Writes the manifest beside `file`: under a temporary name, synced, then renamed.
    pub fn write_beside(&self, file: &Path) -> anyhow::Result<()> {
        let path = manifest_path(file);
        let partial = partial_path(&path);
        let text = serde_json::to_string_pretty(self).context("rendering the manifest")?;
        let mut out = std::fs::File::create(&partial)
            .with_context(|| format!("creating {}", partial.display()))?;
        out.write_all(text.as_bytes())
            .and_then(|()| out.sync_all())
            .with_context(|| format!("writing {}", partial.display()))?;
        rename_synced(&partial, &path)
    }
}

/// Renames `from` to `to`, then syncs their folder so the rename survives a crash.
pub fn rename_synced(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::rename(from, to)
        .with_context(|| format!("renaming {} to {}", from.display(), to.display()))?;
    sync_dir(to)
}

/// Syncs the folder holding `path`.
pub fn sync_dir(path: &Path) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}

/// Deletes all but the newest `keep` finished backups (`cloudbase-*` with a manifest) in `dir`,
/// with their manifests, and leftovers of a backup cut short (`*.partial`, or a copy without a
/// manifest) more than an hour old. Other files are left alone. Returns the copies deleted.
pub fn prune(dir: &Path, keep: usize) -> anyhow::Result<Vec<PathBuf>> {
    let mut finished = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !name.starts_with("cloudbase-") {
            continue;
        }
        let copy = name.ends_with(".db") || name.ends_with(".pgdump");
        if copy && manifest_path(&path).is_file() {
            finished.push(path);
        } else if (copy || name.ends_with(".partial")) && older_than_an_hour(&path) {
            // A backup cut short: a temporary file, or a copy whose manifest never came.
            let _ = std::fs::remove_file(&path);
        }
    }
    // The names carry the time: the newest sort last.
    finished.sort();
    let excess = finished.len().saturating_sub(keep);
    let removed: Vec<PathBuf> = finished.into_iter().take(excess).collect();
    for path in &removed {
        // The manifest first: a copy without one is no longer a finished backup.
        std::fs::remove_file(manifest_path(path))
            .and_then(|()| std::fs::remove_file(path))
            .with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(removed)
}

fn older_than_an_hour(path: &Path) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age.as_secs() > 3600)
}
