//! Backups that restore: `cloudbase-ai backup create | verify | restore`, and SQLite's scheduled
//! backups.
//!
//! A backup is a copy and its manifest beside it (`<copy>.manifest.json`: size, SHA-256, schema
//! version and rows per table, taken in the copy's own snapshot). SQLite copies go through
//! SQLite's online backup API; PostgreSQL copies are `pg_dump --format=custom`. Both are written
//! under a temporary name and renamed when complete; the manifest comes last, so a copy without
//! one is not a finished backup. `verify` never opens the backup itself: it checks the bytes
//! against the manifest, restores a scratch copy (a temporary file, or a scratch database), runs
//! SQLite's integrity check there, compares the rows with the manifest and walks the audit
//! chain. `restore` verifies first, then swaps the whole database in or nothing.
//!
//! - [`manifest`]: the manifest, the copies' names, renames that survive a crash, keeping the
//!   newest.
//! - [`sqlite`]: the online copy, its inspection, and the file swap of a restore.
//! - [`postgres`]: `pg_dump` in a shared snapshot, the scratch database, `pg_restore`.
//! - [`verify`]: the checks of a backup on its scratch copy.
//! - [`schedule`]: the server's task taking SQLite backups every `[backup] interval_secs`.

pub mod manifest;
pub mod postgres;
pub mod schedule;
pub mod sqlite;
mod verify;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use cloudbase_schema::db::Backend;

use crate::config::Config;
pub use manifest::{Kind, Manifest};
pub use verify::verify;

/// A finished backup.
#[derive(Debug, Clone)]
pub struct Created {
    /// The copy.
    pub file: PathBuf,
    /// What it holds.
    pub manifest: Manifest,
}

/// What [`verify`] found in a good backup.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Its manifest, which the copy matches.
    pub manifest: Manifest,
    /// Audit rows chained, all intact.
    pub chain_rows: i64,
    /// Audit rows written but not linked yet when it was taken.
    pub unchained_rows: i64,
    /// Worth knowing, not wrong: a backup from an older schema version.
    pub notes: Vec<String>,
}

/// How [`restore`] treats what is there.
#[derive(Debug, Clone, Copy, Default)]
pub struct RestoreOptions {
    /// PostgreSQL: restore into a database that already holds tables (the dump's objects are
    /// dropped and made again).
    pub force: bool,
    /// SQLite: delete the replaced database instead of keeping it aside.
    pub discard_previous: bool,
}

/// What [`restore`] did.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The backup, as verified before it went in.
    pub verified: Verified,
    /// SQLite: where the replaced database was kept.
    pub previous: Option<PathBuf>,
}

fn kind_of(url: &str) -> anyhow::Result<Kind> {
    Ok(match Backend::of_url(url)? {
        Backend::Sqlite => Kind::Sqlite,
        Backend::Postgres => Kind::Postgres,
    })
}

fn backend_of(kind: Kind) -> Backend {
    match kind {
        Kind::Sqlite => Backend::Sqlite,
        Kind::Postgres => Backend::Postgres,
    }
}

/// Backs the configured database up, online, to `out` or a new file in `[backup] dir`.
pub async fn create(config: &Config, out: Option<&Path>) -> anyhow::Result<Created> {
    let url = config.database_url();
    let kind = kind_of(&url)?;
    let file = match out {
        Some(path) => path.to_path_buf(),
        None => manifest::new_file_name(&config.backup_dir(), kind, chrono::Utc::now()),
    };
    create_at(&url, kind, &file).await
}

/// The size and SHA-256 of `file`, read on the blocking pool (a backup can be large).
async fn digest(file: &Path) -> anyhow::Result<(u64, String)> {
    let path = file.to_path_buf();
    tokio::task::spawn_blocking(move || manifest::digest(&path))
        .await
        .context("the checksum task failed")?
        .with_context(|| format!("reading {}", file.display()))
}

/// Backs the database at `url` up to `file`.
async fn create_at(url: &str, kind: Kind, file: &Path) -> anyhow::Result<Created> {
    anyhow::ensure!(
        !file.exists() && !manifest::manifest_path(file).exists(),
        "{} already exists: a backup never overwrites a file",
        file.display()
    );
    if let Some(dir) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let created_at = chrono::Utc::now();
    let census = match kind {
        Kind::Sqlite => {
            let source = PathBuf::from(cloudbase_schema::db::sqlite_path(url));
            let dest = file.to_path_buf();
            tokio::task::spawn_blocking(move || sqlite::create(&source, &dest))
                .await
                .context("the backup task failed")??
        }
        Kind::Postgres => postgres::create(url, file).await?,
    };
    let finish = async || {
        let (bytes, sha256) = digest(file).await?;
        let manifest = Manifest {
            format: manifest::FORMAT.into(),
            backend: kind,
            created_at: created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            bytes,
            sha256,
            schema_version: census.schema_version.clone(),
            tables: census.tables.clone(),
        };
        manifest.write_beside(file)?;
        Ok::<_, anyhow::Error>(manifest)
    };
    match finish().await {
        Ok(manifest) => Ok(Created {
            file: file.to_path_buf(),
            manifest,
        }),
        Err(e) => {
            let _ = std::fs::remove_file(file);
            Err(e)
        }
    }
}

/// Verifies the backup at `file`, then puts it in place of the configured database: all of it
/// or nothing, and never under a running server.
pub async fn restore(
    config: &Config,
    file: &Path,
    options: RestoreOptions,
) -> anyhow::Result<Restored> {
    let url = config.database_url();
    let kind = kind_of(&url)?;
    let verified = verify(config, file).await?;
    let manifest = &verified.manifest;
    anyhow::ensure!(
        manifest.backend == kind,
        "a {} backup cannot be restored into a {} database",
        manifest.backend.name(),
        kind.name()
    );
    let build = cloudbase_schema::db::latest_version(backend_of(kind)).map(|v| v.replace('-', ""));
    if let (Some(found), Some(build)) = (&manifest.schema_version, &build) {
        anyhow::ensure!(
            found.replace('-', "") <= *build,
            "the backup is at schema version {found}, newer than this build's {build}: restore \
             it with the CloudBase AI version that took it"
        );
    }
    let previous = match kind {
        Kind::Sqlite => {
            let target = PathBuf::from(cloudbase_schema::db::sqlite_path(&url));
            let (from, expected) = (
                file.to_path_buf(),
                (manifest.bytes, manifest.sha256.clone()),
            );
            tokio::task::spawn_blocking(move || {
                sqlite::restore(&from, &target, expected, options.discard_previous)
            })
            .await
            .context("the restore task failed")??
        }
        Kind::Postgres => {
            postgres::restore(&url, file, options.force).await?;
            None
        }
    };
    Ok(Restored { verified, previous })
}
