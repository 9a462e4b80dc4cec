//! SQLite: the copy through SQLite's online backup API, its inspection, and the restore that
//! swaps the database file. Blocking code: callers run it on the blocking pool.
//!
//! The copy is one step of `sqlite3_backup_step(-1)`: one read transaction, so it is consistent,
//! and in WAL mode it never blocks the server's writers (the checkpointer's `RESTART` just finds
//! the log busy until it ends, and the log grows meanwhile). Copying in small steps would start
//! over after every write by another connection, and never finish under load.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::manifest::{partial_path, rename_synced, sync_dir};
use cloudbase_schema::db::inventory::Census;

/// What every SQLite file starts with.
const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// How long the copy waits, in total, while the source is locked (a restore or a migration).
const BUSY_FOR: Duration = Duration::from_secs(30);

/// Copies the live database at `source` into `dest` (under a temporary name, synced, then
/// renamed), as one consistent snapshot, and counts what the copy holds.
pub fn create(source: &Path, dest: &Path) -> anyhow::Result<Census> {
    let src = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("no SQLite database at {}", source.display()))?;
    src.busy_timeout(Duration::from_secs(5))?;
    let partial = partial_path(dest);
    let _ = std::fs::remove_file(&partial);
    let census = copy(&src, &partial).inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })?;
    rename_synced(&partial, dest)?;
    Ok(census)
}

fn copy(src: &Connection, partial: &Path) -> anyhow::Result<Census> {
    let mut dst =
        Connection::open(partial).with_context(|| format!("creating {}", partial.display()))?;
    {
        let backup = Backup::new(src, &mut dst).context("starting the SQLite backup")?;
        let started = std::time::Instant::now();
        loop {
            match backup.step(-1).context("copying the database")? {
                StepResult::Done => break,
                StepResult::More => {}
                StepResult::Busy | StepResult::Locked if started.elapsed() < BUSY_FOR => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                _ => anyhow::bail!("the database stayed locked for {} s", BUSY_FOR.as_secs()),
            }
        }
    }
    // One self-contained file: no write-ahead log beside it.
    let mode: String = dst.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))?;
    anyhow::ensure!(mode == "delete", "the copy stayed in {mode} mode");
    let census = census(&dst)?;
    dst.close().map_err(|(_, e)| e)?;
    std::fs::File::open(partial)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", partial.display()))?;
    Ok(census)
}

/// Counts the rows of every table, and reads the newest applied migration.
pub fn census(conn: &Connection) -> anyhow::Result<Census> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         ORDER BY name",
    )?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let mut tables = BTreeMap::new();
    let mut schema_version = None;
    for name in names {
        let quoted = name.replace('"', "\"\"");
        let n: i64 = conn.query_row(&format!("SELECT COUNT(*) FROM \"{quoted}\""), [], |r| {
            r.get(0)
        })?;
        if name == "__diesel_schema_migrations" {
            schema_version = conn.query_row(
                "SELECT MAX(version) FROM __diesel_schema_migrations",
                [],
                |r| r.get::<_, Option<String>>(0),
            )?;
        }
        tables.insert(name, n);
    }
    Ok(Census {
        schema_version,
        tables,
    })
}

/// Copies the backup at `file` into `dir` for checking (the backup itself is never opened by
/// SQLite, which could change it), after checking it is a SQLite file at all; then runs SQLite's
/// integrity check and counts the rows.
pub fn scratch_copy(file: &Path, dir: &Path) -> anyhow::Result<(PathBuf, Census)> {
    let mut header = [0u8; 16];
    let read = std::fs::File::open(file)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut header))
        .with_context(|| format!("reading {}", file.display()))?;
    anyhow::ensure!(
        read == MAGIC.len() && &header == MAGIC,
        "not a SQLite database (no SQLite header)"
    );
    let scratch = dir.join("verify.db");
    std::fs::copy(file, &scratch).context("copying the backup for checking")?;
    let conn = Connection::open_with_flags(&scratch, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    let problems = conn
        .prepare("PRAGMA integrity_check(20)")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|e| anyhow::anyhow!("SQLite cannot read it: {e}"))?;
    if problems != ["ok"] {
        anyhow::bail!("SQLite's integrity check failed: {}", problems.join(", "));
    }
    let census = census(&conn).map_err(|e| anyhow::anyhow!("SQLite cannot read it: {e:#}"))?;
    drop(conn);
    Ok((scratch, census))
}

/// Puts the backup at `file` (whose size and SHA-256 are `expected`) in place of the database at `target`, which no process may have
/// open. Copied beside the target and synced first, then renamed over it; the old database is
/// kept as `<target>.before-restore-<time>` unless `discard_previous`. Returns where it was kept.
pub fn restore(
    file: &Path,
    target: &Path,
    expected: (u64, String),
    discard_previous: bool,
) -> anyhow::Result<Option<PathBuf>> {
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let staged = partial_path(&target.with_extension("restoring"));
    std::fs::copy(file, &staged)
        .and_then(|_| std::fs::File::open(&staged)?.sync_all())
        .with_context(|| format!("copying the backup to {}", staged.display()))?;
    // The bytes put in place are the ones verified, even if the backup changed since.
    let result = super::manifest::digest(&staged)
        .context("reading the staged copy")
        .and_then(|digest| {
            anyhow::ensure!(
                digest == expected,
                "the backup changed while it was being restored"
            );
            swap(&staged, target, discard_previous)
        });
    if result.is_err() {
        let _ = std::fs::remove_file(&staged);
    }
    result
}

fn swap(staged: &Path, target: &Path, discard_previous: bool) -> anyhow::Result<Option<PathBuf>> {
    let wal = side_file(target, "-wal");
    let shm = side_file(target, "-shm");
    // Held until the new file is in place: nothing opens the old one meanwhile.
    let lock = if target.exists() {
        Some(lock_unused(target)?)
    } else {
        None
    };
    let mut kept = None;
    if lock.is_some() {
        if discard_previous {
            std::fs::remove_file(target)
                .with_context(|| format!("removing {}", target.display()))?;
        } else {
            let aside = side_file(
                target,
                &format!(
                    ".before-restore-{}",
                    chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
                ),
            );
            rename_synced(target, &aside)?;
            kept = Some(aside);
        }
    }
    // A log left beside the new file would be replayed into it: gone before it arrives.
    for stale in [&wal, &shm] {
        match std::fs::remove_file(stale) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", stale.display())),
        }
    }
    rename_synced(staged, target)?;
    sync_dir(target)?;
    drop(lock);
    Ok(kept)
}

/// Takes the database at `target` for itself, or says who has it: in exclusive locking mode,
/// `BEGIN EXCLUSIVE` fails while any other connection has it open, even an idle one (WAL
/// connections share the log's index until they close). Then folds the log into the file and
/// leaves WAL mode, so the file kept aside stands alone.
fn lock_unused(target: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open_with_flags(target, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .with_context(|| format!("opening {}", target.display()))?;
    conn.busy_timeout(Duration::ZERO)?;
    let in_use = || {
        anyhow::anyhow!(
            "{} is in use (a running server or another command has it open): stop it before restoring",
            target.display()
        )
    };
    conn.query_row("PRAGMA locking_mode = EXCLUSIVE", [], |_| Ok(()))
        .map_err(|_| in_use())?;
    conn.execute_batch("BEGIN EXCLUSIVE; COMMIT;")
        .map_err(|_| in_use())?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .context("folding the write-ahead log into the old database")?;
    conn.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))
        .context("taking the old database out of WAL mode")?;
    Ok(conn)
}

fn side_file(target: &Path, suffix: &str) -> PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
