//! Backups that restore: `backup create` under write load, `verify`, `restore`, SQLite's
//! schedule, and what bad input and tampering get (a clear error, never a half-written database).
//! On SQLite by default; on PostgreSQL (`pg_dump`/`pg_restore` on `PATH`) with `TEST_DATABASE_URL`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cloudbase_schema::services::audit::Verdict;
use cloudbase_server::backup::{self, Manifest, RestoreOptions};
use serde_json::json;

use crate::support::{TestApp, instance};

const CHAT: &str = "mutation($input: ChatInput!) { chat(input: $input) { aiCall { costMicros } } }";

async fn spawn() -> TestApp {
    TestApp::spawn_with(|c| {
        c.rate_limits.requests_per_minute = 0;
        c.plugins
            .insert("mock".into(), instance("mock", json!({}), &[]));
    })
    .await
}

async fn chat(app: &TestApp, token: &str, i: usize) {
    let body: serde_json::Value = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(token)
        .json(&json!({"query": CHAT, "variables": {"input": {"provider": "mock", "model": "mock-fast", "message": format!("load {i}")}}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    match body["errors"][0]["extensions"]["code"].as_str() {
        None | Some("UNAVAILABLE") => {}
        Some(other) => panic!("a call failed with {other}: {body}"),
    }
}

async fn count(app: &TestApp, query: &str) -> i64 {
    app.sql_number(query).await
}

async fn calls(app: &TestApp) -> i64 {
    count(app, "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM ai_calls").await
}

/// Polls `done` every 50 ms for at most 20 s.
async fn wait_for<F: AsyncFn() -> bool>(what: &str, done: F) {
    let started = Instant::now();
    while !done().await {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what} after 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A backup file path in a folder of its own.
fn backup_file(dir: &tempfile::TempDir, app: &TestApp) -> PathBuf {
    let ext = if app.is_postgres() { "pgdump" } else { "db" };
    dir.path().join(format!("test.{ext}"))
}

fn sqlite_file(app: &TestApp) -> PathBuf {
    PathBuf::from(cloudbase_schema::db::sqlite_path(
        &app.config.database_url(),
    ))
}

/// `restore`, retried briefly while the sessions of a server that just stopped go away.
async fn restore_stopped(app: &TestApp, file: &Path) -> backup::Restored {
    let options = RestoreOptions {
        force: true,
        discard_previous: false,
    };
    let started = Instant::now();
    loop {
        match backup::restore(&app.config, file, options).await {
            Ok(restored) => return restored,
            Err(e)
                if format!("{e:#}").contains("in use")
                    && started.elapsed() < Duration::from_secs(10) =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("restore failed: {e:#}"),
        }
    }
}

/// The acceptance test: a backup taken while three clients keep making AI calls verifies, and
/// restores to a database whose records, daily rollups and audit chain all check out, holding
/// exactly the calls the backup recorded.
#[tokio::test(flavor = "multi_thread")]
async fn a_backup_taken_under_write_load_restores_and_checks_out() {
    let mut app = spawn().await;
    let token = app.admin_token().await;
    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicUsize::new(0));
    let app_ref = Arc::new(spawn_handle(&app));
    let workers: Vec<_> = (0..3)
        .map(|w| {
            let (stop, made, handle, token) =
                (stop.clone(), made.clone(), app_ref.clone(), token.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                for i in 0..300 {
                    if stop.load(Ordering::Relaxed) || started.elapsed() > Duration::from_secs(40) {
                        break;
                    }
                    handle.chat(&token, w * 1000 + i).await;
                    made.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    wait_for("20 calls recorded", async || calls(&app).await >= 20).await;
    let dir = tempfile::tempdir().unwrap();
    let file = backup_file(&dir, &app);
    let created = backup::create(&app.config, Some(&file)).await.unwrap();
    let recorded = created.manifest.tables["ai_calls"];
    // Writers went on during and after the copy.
    wait_for("more calls after the backup", async || {
        calls(&app).await >= recorded + 10
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    assert!(recorded >= 20 && recorded < calls(&app).await, "{recorded}");
    let verified = backup::verify(&app.config, &file).await.unwrap();
    assert_eq!(verified.manifest, created.manifest);
    assert!(verified.notes.is_empty(), "{:?}", verified.notes);
    // The backup itself was only read.
    assert_eq!(
        backup::manifest::digest(&file).unwrap(),
        (created.manifest.bytes, created.manifest.sha256.clone())
    );

    app.stop().await;
    let restored = restore_stopped(&app, &file).await;
    if app.is_postgres() {
        assert!(restored.previous.is_none());
    } else {
        let previous = restored.previous.expect("the old database kept aside");
        assert!(previous.is_file(), "{}", previous.display());
    }
    // The records are the backup's, and the rollups sum them.
    assert_eq!(calls(&app).await, recorded);
    let succeeded = count(
        &app,
        "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM ai_calls WHERE status = 'SUCCEEDED'",
    )
    .await;
    let cost = count(
        &app,
        "SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS n FROM ai_calls",
    )
    .await;
    assert!(succeeded > 0 && cost > 0);
    for rollup in ["usage_daily", "usage_daily_users", "usage_daily_models"] {
        let requests = count(
            &app,
            &format!("SELECT CAST(COALESCE(SUM(requests), 0) AS BIGINT) AS n FROM {rollup}"),
        )
        .await;
        let summed = count(
            &app,
            &format!("SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS n FROM {rollup}"),
        )
        .await;
        assert_eq!(
            requests, succeeded,
            "{rollup}: requests = the calls recorded"
        );
        assert_eq!(summed, cost, "{rollup}: cost = the calls recorded");
    }
    // The server starts on it, links what was left unchained, and the chain holds.
    app.restart_with(|_| {}).await;
    crate::audit::wait_chained(&app).await;
    let report = crate::audit::verify(&app).await;
    match report.verdict {
        Verdict::Intact { rows } => assert!(rows >= verified.chain_rows, "{rows}"),
        Verdict::Broken { seq, reason } => panic!("the chain broke at {seq}: {reason}"),
    }
    let token = app.admin_token().await;
    chat(&app, &token, 0).await;
    assert_eq!(calls(&app).await, recorded + 1);
}

/// What a load worker needs of a [`TestApp`] (which cannot be shared across tasks).
struct Handle {
    client: reqwest::Client,
    url: String,
}

fn spawn_handle(app: &TestApp) -> Handle {
    Handle {
        client: app.client.clone(),
        url: app.url("/graphql"),
    }
}

impl Handle {
    async fn chat(&self, token: &str, i: usize) {
        let Ok(response) = self
            .client
            .post(&self.url)
            .bearer_auth(token)
            .json(&json!({"query": CHAT, "variables": {"input": {"provider": "mock", "model": "mock-fast", "message": format!("load {i}")}}}))
            .send()
            .await
        else {
            return;
        };
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        match body["errors"][0]["extensions"]["code"].as_str() {
            None | Some("UNAVAILABLE") => {}
            Some(other) => panic!("a call failed with {other}: {body}"),
        }
    }
}

/// A chained audit row edited in the database before the backup: `verify` names the row.
#[tokio::test(flavor = "multi_thread")]
async fn verify_finds_an_edited_audit_row_and_says_where() {
    let app = spawn().await;
    let token = app.admin_token().await;
    for i in 0..3 {
        chat(&app, &token, i).await;
    }
    crate::audit::wait_chained(&app).await;
    app.sql("UPDATE audit_log SET field = 'forged' WHERE seq = 2")
        .await;
    let dir = tempfile::tempdir().unwrap();
    let file = backup_file(&dir, &app);
    backup::create(&app.config, Some(&file)).await.unwrap();
    let error = format!(
        "{:#}",
        backup::verify(&app.config, &file).await.unwrap_err()
    );
    assert!(
        error.contains("the audit chain is broken at row 2") && error.contains("edited"),
        "{error}"
    );
}

/// A SQLite copy whose rows were deleted after the fact, its manifest's checksum forged to
/// match: the row counts still give it away. Its audit row edited: the chain says where.
#[tokio::test(flavor = "multi_thread")]
async fn verify_finds_rows_removed_from_a_copy_after_the_fact() {
    let app = spawn().await;
    if app.is_postgres() {
        eprintln!("editing a copy in place is a SQLite test (the PostgreSQL run covers the rest)");
        return;
    }
    let token = app.admin_token().await;
    for i in 0..4 {
        chat(&app, &token, i).await;
    }
    crate::audit::wait_chained(&app).await;
    let dir = tempfile::tempdir().unwrap();
    let file = backup_file(&dir, &app);
    let created = backup::create(&app.config, Some(&file)).await.unwrap();
    let url = format!("sqlite://{}", file.display());
    edit_copy(
        &url,
        "DELETE FROM ai_calls WHERE id IN (SELECT id FROM ai_calls ORDER BY id LIMIT 2)",
    )
    .await;
    let error = format!(
        "{:#}",
        backup::verify(&app.config, &file).await.unwrap_err()
    );
    assert!(
        error.contains("the file changed since the backup"),
        "{error}"
    );
    forge_checksum(&file, &created.manifest);
    let error = format!(
        "{:#}",
        backup::verify(&app.config, &file).await.unwrap_err()
    );
    let recorded = created.manifest.tables["ai_calls"];
    assert!(
        error.contains(&format!(
            "table ai_calls holds {} rows; the backup recorded {recorded}",
            recorded - 2
        )) && !error.contains("changed since"),
        "{error}"
    );
    edit_copy(
        &url,
        "UPDATE audit_log SET outcome = 'FORGED' WHERE seq = 1",
    )
    .await;
    forge_checksum(&file, &created.manifest);
    let error = format!(
        "{:#}",
        backup::verify(&app.config, &file).await.unwrap_err()
    );
    assert!(error.contains("audit chain is broken at row 1"), "{error}");
    // Pages overwritten in the middle, the checksum forged again: SQLite's integrity check.
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[4096..12288].fill(0xa5);
    std::fs::write(&file, &bytes).unwrap();
    forge_checksum(&file, &created.manifest);
    let error = format!(
        "{:#}",
        backup::verify(&app.config, &file).await.unwrap_err()
    );
    assert!(
        error.contains("integrity check failed") || error.contains("SQLite cannot read it"),
        "{error}"
    );
}

async fn edit_copy(url: &str, statement: &str) {
    use diesel_async::RunQueryDsl;
    let mut conn = crate::support::sqlite_connection(url).await;
    diesel::sql_query(statement)
        .execute(&mut conn)
        .await
        .unwrap();
}

/// Rewrites the manifest's size and checksum to the copy's current ones (a careful forger).
fn forge_checksum(file: &Path, manifest: &Manifest) {
    let (bytes, sha256) = backup::manifest::digest(file).unwrap();
    let forged = Manifest {
        bytes,
        sha256,
        ..manifest.clone()
    };
    std::fs::remove_file(backup::manifest::manifest_path(file)).unwrap();
    forged.write_beside(file).unwrap();
}

/// Missing files, files that are not backups, a truncated copy: each gets a clear error, and a
/// restore of a bad copy leaves the database as it was.
#[tokio::test(flavor = "multi_thread")]
async fn bad_backups_get_a_clear_error_and_change_nothing() {
    let mut app = spawn().await;
    let token = app.admin_token().await;
    chat(&app, &token, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let good = backup_file(&dir, &app);
    let created = backup::create(&app.config, Some(&good)).await.unwrap();
    let err = |e: anyhow::Error| format!("{e:#}");
    let verify = async |file: &Path| err(backup::verify(&app.config, file).await.unwrap_err());

    let missing = dir.path().join("missing.db");
    assert!(verify(&missing).await.contains("no such file"));
    let loose = dir.path().join("loose.db");
    std::fs::write(&loose, b"hello").unwrap();
    assert!(verify(&loose).await.contains("no manifest beside it"));

    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
    created.manifest.write_beside(&garbage).unwrap();
    let error = verify(&garbage).await;
    assert!(error.contains("the file changed since"), "{error}");
    let expected = if app.is_postgres() {
        "not a pg_dump custom-format archive"
    } else {
        "not a SQLite database"
    };
    assert!(error.contains(expected), "{error}");

    let truncated = dir.path().join("truncated.db");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    created.manifest.write_beside(&truncated).unwrap();
    let error = verify(&truncated).await;
    assert!(
        error.contains("not a good backup") && error.contains("changed since"),
        "{error}"
    );
    std::fs::write(dir.path().join("junk.manifest.json"), b"{ not json").unwrap();
    std::fs::write(dir.path().join("junk"), b"x").unwrap();
    let error = verify(&dir.path().join("junk")).await;
    assert!(
        error.contains("not a CloudBase AI backup manifest"),
        "{error}"
    );

    // A restore of the truncated copy stops at its check: the database is untouched.
    app.stop().await;
    let before = calls(&app).await;
    for bad in [&truncated, &garbage, &missing] {
        let error = err(backup::restore(&app.config, bad, RestoreOptions::default())
            .await
            .unwrap_err());
        assert!(!error.is_empty());
    }
    assert_eq!(calls(&app).await, before);
    if !app.is_postgres() {
        let db = sqlite_file(&app);
        let leftovers: Vec<_> = std::fs::read_dir(db.parent().unwrap())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("restoring") || n.contains("before-restore"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
    // An existing file is never overwritten.
    let error = err(backup::create(&app.config, Some(&good)).await.unwrap_err());
    assert!(error.contains("already exists"), "{error}");
}

/// A restore while a server has the database open is refused, and the server serves on.
#[tokio::test(flavor = "multi_thread")]
async fn restore_refuses_a_database_a_server_is_using() {
    let app = spawn().await;
    let token = app.admin_token().await;
    chat(&app, &token, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let file = backup_file(&dir, &app);
    backup::create(&app.config, Some(&file)).await.unwrap();
    chat(&app, &token, 1).await;
    let options = RestoreOptions {
        force: true,
        discard_previous: true,
    };
    let error = format!(
        "{:#}",
        backup::restore(&app.config, &file, options)
            .await
            .unwrap_err()
    );
    assert!(
        error.contains("in use") && error.contains("stop"),
        "{error}"
    );
    chat(&app, &token, 2).await;
    assert_eq!(calls(&app).await, 3, "nothing was restored");
}

/// PostgreSQL: a database that already holds tables is replaced only with `--force`.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_restore_into_a_database_with_tables_needs_force() {
    if crate::support::skip_without_postgres(
        "postgres_restore_into_a_database_with_tables_needs_force",
    ) {
        return;
    }
    let mut app = spawn().await;
    let dir = tempfile::tempdir().unwrap();
    let file = backup_file(&dir, &app);
    backup::create(&app.config, Some(&file)).await.unwrap();
    app.stop().await;
    let started = Instant::now();
    let error = loop {
        let error = format!(
            "{:#}",
            backup::restore(&app.config, &file, RestoreOptions::default())
                .await
                .unwrap_err()
        );
        if !error.contains("in use") || started.elapsed() > Duration::from_secs(10) {
            break error;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        error.contains("not empty") && error.contains("--force"),
        "{error}"
    );
    restore_stopped(&app, &file).await;
}

/// SQLite: the server takes a backup every `interval_secs` and keeps the newest `keep`, each one
/// good.
#[tokio::test(flavor = "multi_thread")]
async fn scheduled_backups_keep_the_newest() {
    let app = TestApp::spawn_with(|c| {
        c.backup.interval_secs = 1;
        c.backup.keep = 2;
    })
    .await;
    if app.is_postgres() {
        eprintln!("scheduled backups are SQLite's (PostgreSQL is backed up from outside)");
        return;
    }
    let dir = app.config.backup_dir();
    let mut seen = std::collections::BTreeSet::new();
    let list = || -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "db"));
        files.sort();
        files
    };
    let started = Instant::now();
    while seen.len() < 4 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{} backups in 20 s",
            seen.len()
        );
        let files = list();
        assert!(files.len() <= 3, "{files:?}");
        seen.extend(files);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The first ones were pruned; the newest finished one is good.
    assert!(
        !seen.first().unwrap().exists(),
        "the oldest backup is still there"
    );
    let files = list();
    assert!((1..=3).contains(&files.len()), "{files:?}");
    let newest = files
        .iter()
        .rev()
        .find(|f| backup::manifest::manifest_path(f).is_file())
        .expect("a finished backup");
    backup::verify(&app.config, newest).await.unwrap();
}

/// SQLite: a backup from an older schema version is good, and said to be older; it restores into
/// a data folder with no database yet, and the server migrates it when it starts.
#[tokio::test(flavor = "multi_thread")]
async fn an_older_schema_is_reported_and_restores_where_no_database_was() {
    let app = spawn().await;
    if app.is_postgres() {
        eprintln!("editing a copy in place is a SQLite test");
        return;
    }
    let token = app.admin_token().await;
    chat(&app, &token, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let file = backup_file(&dir, &app);
    let created = backup::create(&app.config, Some(&file)).await.unwrap();
    // The copy as the release before the newest migration would have left it (as far as the
    // migrations table tells), its manifest written to match.
    edit_copy(
        &format!("sqlite://{}", file.display()),
        "UPDATE __diesel_schema_migrations SET version = '00000000000000' \
         WHERE version = (SELECT MAX(version) FROM __diesel_schema_migrations)",
    )
    .await;
    let scratch = tempfile::tempdir().unwrap();
    let (_, census) = backup::sqlite::scratch_copy(&file, scratch.path()).unwrap();
    assert!(census.schema_version < created.manifest.schema_version);
    let (bytes, sha256) = backup::manifest::digest(&file).unwrap();
    let older = Manifest {
        bytes,
        sha256,
        schema_version: census.schema_version,
        ..created.manifest.clone()
    };
    std::fs::remove_file(backup::manifest::manifest_path(&file)).unwrap();
    older.write_beside(&file).unwrap();
    let verified = backup::verify(&app.config, &file).await.unwrap();
    assert!(
        verified.notes.len() == 1 && verified.notes[0].contains("older than this build's"),
        "{:?}",
        verified.notes
    );

    let target = tempfile::tempdir().unwrap();
    let mut config = app.config.clone();
    config.database_url = Some(format!(
        "sqlite://{}",
        target.path().join("fresh").join("cloudbase.db").display()
    ));
    let restored = backup::restore(&config, &file, RestoreOptions::default())
        .await
        .unwrap();
    assert!(restored.previous.is_none(), "there was nothing to keep");
    let restored_calls = {
        use diesel_async::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = crate::support::sqlite_connection(&config.database_url()).await;
        diesel::sql_query("SELECT COUNT(*) AS n FROM ai_calls")
            .get_result::<N>(&mut conn)
            .await
            .unwrap()
            .n
    };
    assert_eq!(restored_calls, 1);
}
