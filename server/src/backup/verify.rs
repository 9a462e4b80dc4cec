//! `backup verify`: the copy's bytes against its manifest, then a scratch copy of it (a
//! temporary file, or a scratch database) checked for integrity, rows per table, schema version
//! and audit chain. The backup itself is only read.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use cloudbase_schema::db::inventory::Census;
use cloudbase_schema::db::{DbConfig, DbPool};
use cloudbase_schema::services::audit::{self, Report, Verdict};

use super::{Kind, Manifest, Verified, backend_of, kind_of, postgres, sqlite};
use crate::config::Config;

/// What a scratch copy of a backup holds, and its audit chain.
struct Inspection {
    census: Census,
    chain: anyhow::Result<Report>,
}

/// Checks the backup at `file`: its bytes against its manifest, then a scratch copy of it
/// (integrity, rows per table, audit chain). The backup itself is only read. Fails with every
/// problem found, in one line.
pub async fn verify(config: &Config, file: &Path) -> anyhow::Result<Verified> {
    let manifest = Manifest::read_beside(file)?;
    let mut problems = Vec::new();
    let (bytes, sha256) = super::digest(file).await?;
    if bytes != manifest.bytes || sha256 != manifest.sha256 {
        problems.push(format!(
            "the file changed since the backup was taken ({bytes} bytes, SHA-256 {}; the \
             manifest recorded {} bytes, {})",
            short(&sha256),
            manifest.bytes,
            short(&manifest.sha256)
        ));
    }
    let inspected = match manifest.backend {
        Kind::Sqlite => inspect_sqlite(file).await,
        Kind::Postgres => inspect_postgres(config, file).await,
    };
    let mut verified = Verified {
        manifest: manifest.clone(),
        chain_rows: 0,
        unchained_rows: 0,
        notes: Vec::new(),
    };
    match inspected {
        Err(e) => problems.push(format!("{e:#}")),
        Ok(Inspection { census, chain }) => {
            compare_rows(&manifest, &census, &mut problems);
            verified
                .notes
                .extend(schema_note(&manifest, &census, &mut problems));
            match chain {
                Ok(report) => {
                    verified.unchained_rows = report.tail.rows;
                    match report.verdict {
                        Verdict::Intact { rows } => verified.chain_rows = rows,
                        Verdict::Broken { seq, reason } => problems
                            .push(format!("the audit chain is broken at row {seq}: {reason}")),
                    }
                }
                Err(e) => problems.push(format!("cannot check the audit chain: {e:#}")),
            }
        }
    }
    anyhow::ensure!(
        problems.is_empty(),
        "{}: not a good backup: {}",
        file.display(),
        problems.join("; ")
    );
    Ok(verified)
}

fn short(sha256: &str) -> String {
    format!("{}…", sha256.get(..12).unwrap_or(sha256))
}

async fn inspect_sqlite(file: &Path) -> anyhow::Result<Inspection> {
    let dir = tempfile::tempdir().context("creating a temporary folder to check the copy in")?;
    let (from, into) = (file.to_path_buf(), dir.path().to_path_buf());
    let (scratch, census) = tokio::task::spawn_blocking(move || sqlite::scratch_copy(&from, &into))
        .await
        .context("the check's task failed")??;
    let chain = audit_chain(&format!("sqlite://{}", scratch.display())).await;
    Ok(Inspection { census, chain })
}

async fn inspect_postgres(config: &Config, file: &Path) -> anyhow::Result<Inspection> {
    let url = config.database_url();
    anyhow::ensure!(
        kind_of(&url)? == Kind::Postgres,
        "checking a PostgreSQL dump restores it into a scratch database: database_url must name \
         a PostgreSQL server"
    );
    postgres::with_scratch(&url, file, async |scratch: &str| {
        let census = postgres::census(scratch).await?;
        let chain = audit_chain(scratch).await;
        Ok(Inspection { census, chain })
    })
    .await
}

/// Walks the audit chain of the database at `url`, opened as it is (no migration).
async fn audit_chain(url: &str) -> anyhow::Result<Report> {
    let db = DbPool::connect_existing(&DbConfig {
        url: url.to_owned(),
        max_connections: 2,
        acquire_timeout: Duration::from_secs(30),
    })
    .await?;
    let report = audit::verify_db(&db).await;
    drop(db);
    report.map_err(|e| anyhow::anyhow!("{e}"))
}

/// Every table the manifest names must hold as many rows, and no other table may appear.
fn compare_rows(manifest: &Manifest, census: &Census, problems: &mut Vec<String>) {
    for (table, &recorded) in &manifest.tables {
        match census.tables.get(table) {
            None => problems.push(format!("table {table} is missing")),
            Some(&rows) if rows != recorded => problems.push(format!(
                "table {table} holds {rows} rows; the backup recorded {recorded}"
            )),
            Some(_) => {}
        }
    }
    for table in census.tables.keys() {
        if !manifest.tables.contains_key(table) {
            problems.push(format!("table {table} was not in the backup"));
        }
    }
}

/// The copy's schema version must be the manifest's; one older or newer than this build's is
/// worth a note.
fn schema_note(manifest: &Manifest, census: &Census, problems: &mut Vec<String>) -> Option<String> {
    let digits = |v: &str| v.replace('-', "");
    let found = census.schema_version.as_deref().map(digits);
    if found != manifest.schema_version.as_deref().map(digits) {
        problems.push(format!(
            "its schema version is {}; the backup recorded {}",
            census.schema_version.as_deref().unwrap_or("none"),
            manifest.schema_version.as_deref().unwrap_or("none")
        ));
        return None;
    }
    let build = cloudbase_schema::db::latest_version(backend_of(manifest.backend));
    let (found, build) = (found?, build.as_deref().map(digits)?);
    match found.cmp(&build) {
        std::cmp::Ordering::Less => Some(format!(
            "taken at schema version {found}, older than this build's {build}: the server \
             migrates it when it starts on the restored database"
        )),
        std::cmp::Ordering::Greater => Some(format!(
            "taken at schema version {found}, newer than this build's {build}: restore it with \
             the CloudBase AI version that took it"
        )),
        std::cmp::Ordering::Equal => None,
    }
}
