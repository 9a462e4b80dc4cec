//! The chainer: requests write rows unchained, one lease holder links them in batches, and
//! nothing written is lost to a crash, a racing chainer or a second instance.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cloudbase_schema::clock::SystemClock;
use cloudbase_schema::db::models::AuditRow;
use cloudbase_schema::services::audit::{self, Verdict};
use cloudbase_server::plugin_host::Host;
use diesel_async::{AsyncConnection, AsyncMigrationHarness, AsyncPgConnection};
use diesel_migrations::{FileBasedMigrations, MigrationHarness};
use serde_json::json;

use super::{
    AUDIT_CHAIN, AUDIT_LOG, fast_chainer, idle_chainer, nodes, number, verify, wait_chained,
};
use crate::support::{PeerProcess, TestApp, skip_without_postgres, sqlite_connection};

const CREATE: &str = "mutation($t: String!) { createConversation(title: $t) { id } }";

#[tokio::test(flavor = "multi_thread")]
async fn rows_are_chained_in_order_moments_after_they_are_written() {
    // The shipped settings: a round every 500 ms.
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    for i in 0..3 {
        app.register(&format!("linked{i}@example.com"), "linked-password")
            .await;
    }
    app.gql_ok(Some(&admin), "mutation { logout }", json!({}))
        .await;
    let waited = wait_chained(&app).await;
    assert!(waited.as_secs() < 5, "chained after {waited:?}");

    let admin = app.admin_token().await;
    wait_chained(&app).await;
    let log = app
        .gql_ok(Some(&admin), AUDIT_LOG, json!({ "first": 100 }))
        .await;
    let mut rows = nodes(&log);
    rows.reverse();
    assert_eq!(rows.len(), 6, "two logins, three registers and a logout");
    // One after another, the rows were linked in the order they were written.
    let mut prev = String::new();
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["chained"], true, "{row}");
        assert_eq!(number(&row["seq"]), i as i64 + 1, "{row}");
        assert_eq!(row["prevHash"], prev.as_str(), "{row}");
        prev = row["hash"].as_str().unwrap().to_owned();
    }
    let chain = app.gql_ok(Some(&admin), AUDIT_CHAIN, json!({})).await;
    assert_eq!(
        chain["auditChain"],
        json!({ "chainedRows": 6, "headHash": prev, "unchainedRows": 0,
                "oldestUnchainedAt": null, "oldestUnchainedAgeMs": 0 })
    );
    let report = verify(&app).await;
    assert_eq!(report.verdict, Verdict::Intact { rows: 6 });
    assert_eq!(report.tail.rows, 0);
}

/// Fifty mutations at once, while two more chainers race the server's without the lease and
/// `verify` runs alongside: each row is linked exactly once, into one chain.
#[tokio::test(flavor = "multi_thread")]
async fn fifty_concurrent_mutations_are_chained_exactly_once() {
    let app = TestApp::spawn_with(fast_chainer).await;
    let (token, _, _) = app.register("racer@example.com", "racer-password").await;
    let rogue = |done: Arc<AtomicBool>| {
        let config = app.config.clone();
        async move {
            let rogue = cloudbase_server::startup::build_app(
                &config,
                Arc::new(SystemClock),
                Arc::new(Host::empty()),
            )
            .await
            .unwrap();
            let mut linked = 0;
            while !done.load(Ordering::Relaxed) {
                linked += audit::chainer::link_batch(&rogue, 7).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            linked
        }
    };
    let done = Arc::new(AtomicBool::new(false));
    let rogues = (
        tokio::spawn(rogue(done.clone())),
        tokio::spawn(rogue(done.clone())),
    );
    let mutations = (0..50).map(|i| {
        let (app, token) = (&app, &token);
        async move {
            app.gql_ok(Some(token), CREATE, json!({ "t": format!("race {i}") }))
                .await;
        }
    });
    // Checking while rows are linked reports what it saw as intact, never a false break.
    let checks = async {
        for _ in 0..3 {
            let verdict = verify(&app).await.verdict;
            assert!(matches!(verdict, Verdict::Intact { .. }), "{verdict:?}");
        }
    };
    tokio::join!(futures_util::future::join_all(mutations), checks);
    wait_chained(&app).await;
    done.store(true, Ordering::Relaxed);
    let (a, b) = (rogues.0.await.unwrap(), rogues.1.await.unwrap());
    eprintln!("the racing chainers linked {a} and {b} of 51 rows");

    let report = verify(&app).await;
    assert_eq!(report.verdict, Verdict::Intact { rows: 51 });
    assert_eq!(report.tail.rows, 0);
    for (query, expected) in [
        (
            "SELECT COUNT(*) AS n FROM audit_log WHERE field = 'createConversation' AND seq IS NOT NULL",
            50,
        ),
        ("SELECT COUNT(DISTINCT seq) AS n FROM audit_log", 51),
        ("SELECT MAX(seq) AS n FROM audit_log", 51),
        ("SELECT seq AS n FROM audit_head", 51),
    ] {
        assert_eq!(app.sql_number(query).await, expected, "{query}");
    }
}

/// Rows written and then the server stopped before its chainer ran: they are listed and
/// reported as the unchained tail, survive the restart, and are linked by the next chainer.
#[tokio::test(flavor = "multi_thread")]
async fn a_stop_before_chaining_loses_nothing_and_the_tail_is_reported() {
    let mut app = TestApp::spawn_with(idle_chainer).await;
    let admin = app.admin_token().await;
    for i in 0..3 {
        app.register(&format!("tail{i}@example.com"), "tail-password")
            .await;
    }
    let log = app
        .gql_ok(Some(&admin), AUDIT_LOG, json!({ "first": 100 }))
        .await;
    let rows = nodes(&log);
    assert_eq!(
        rows.len(),
        4,
        "a login and three registers, listed unchained"
    );
    assert!(rows.iter().all(|r| r["chained"] == false
        && r["seq"].is_null()
        && r["prevHash"].is_null()
        && r["hash"].is_null()));
    let chain = app.gql_ok(Some(&admin), AUDIT_CHAIN, json!({})).await;
    let chain = &chain["auditChain"];
    assert_eq!(chain["chainedRows"], 0);
    assert_eq!(chain["headHash"], "");
    assert_eq!(chain["unchainedRows"], 4);
    assert!(chain["oldestUnchainedAt"].is_string(), "{chain}");
    assert!(chain["oldestUnchainedAgeMs"].as_i64().unwrap() >= 0);
    let report = verify(&app).await;
    assert_eq!(report.verdict, Verdict::Intact { rows: 0 });
    assert_eq!(report.tail.rows, 4);
    assert!(report.tail.oldest_at.is_some());

    app.stop().await;
    assert_eq!(
        app.sql_number("SELECT COUNT(*) AS n FROM audit_log WHERE seq IS NULL")
            .await,
        4
    );
    app.restart_with(fast_chainer).await;
    wait_chained(&app).await;
    let report = verify(&app).await;
    assert_eq!(report.verdict, Verdict::Intact { rows: 4 });
    assert_eq!(report.tail.rows, 0);
}

/// Reverts migrations down to before the chainer's (running its `down.sql`).
fn revert_chainer_migration<DB: diesel::backend::Backend>(
    harness: &mut impl MigrationHarness<DB>,
    dir: &Path,
) where
    FileBasedMigrations: diesel::migration::MigrationSource<DB>,
{
    loop {
        let source = FileBasedMigrations::from_path(dir).unwrap();
        if harness.revert_last_migration(source).unwrap().to_string() == "20261130000010" {
            return;
        }
    }
}

/// [`revert_chainer_migration`] on the test's database.
async fn before_the_chainer(app: &TestApp) {
    let backend = if app.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations")
        .join(backend);
    let url = app.config.database_url.clone().unwrap();
    if app.is_postgres() {
        let conn = AsyncPgConnection::establish(&url).await.unwrap();
        revert_chainer_migration(&mut AsyncMigrationHarness::new(conn), &dir);
    } else {
        let conn = sqlite_connection(&url).await;
        revert_chainer_migration(&mut AsyncMigrationHarness::new(conn), &dir);
    }
}

/// A database from before the chainer: rows chained as they were written, the way the server
/// used to. Migrating keeps them verifying, and new rows are linked after them.
#[tokio::test(flavor = "multi_thread")]
async fn rows_chained_before_the_chainer_still_verify() {
    let mut app = TestApp::spawn_with(fast_chainer).await;
    let admin = app.admin_token().await;
    app.register("before@example.com", "before-password").await;
    wait_chained(&app).await;
    let chain = app.gql_ok(Some(&admin), AUDIT_CHAIN, json!({})).await;
    let head = chain["auditChain"]["chainedRows"].as_i64().unwrap();
    let head_hash = chain["auditChain"]["headHash"].as_str().unwrap().to_owned();
    assert_eq!(head, 2);
    app.stop().await;
    before_the_chainer(&app).await;

    // Appended the old way: the next `seq`, hashed at once, and the head moved with it.
    let seq = head + 1;
    let at = chrono::NaiveDate::from_ymd_opt(2026, 11, 1)
        .unwrap()
        .and_hms_micro_opt(10, 0, 0, 123_456)
        .unwrap();
    let row = AuditRow {
        id: seq,
        seq: None,
        at,
        actor_id: None,
        actor_role: None,
        operation_name: Some("Legacy".into()),
        field: "login".into(),
        arguments: "{\"input\":{\"email\":\"old@example.com\"}}".into(),
        outcome: "OK".into(),
        client_ip: Some("10.0.0.1".into()),
        user_agent: None,
        request_id: "legacy-request".into(),
        prev_hash: None,
        hash: None,
    };
    let hash = audit::chain_hash(seq, &head_hash, &row);
    app.sql(&format!(
        "INSERT INTO audit_log (seq, at, actor_id, actor_role, operation_name, field, arguments, \
         outcome, client_ip, user_agent, request_id, prev_hash, hash) VALUES ({seq}, \
         '2026-11-01 10:00:00.123456', NULL, NULL, 'Legacy', 'login', '{}', 'OK', '10.0.0.1', \
         NULL, 'legacy-request', '{head_hash}', '{hash}')",
        row.arguments
    ))
    .await;
    app.sql(&format!(
        "UPDATE audit_head SET seq = {seq}, hash = '{hash}'"
    ))
    .await;

    app.restart_with(fast_chainer).await;
    app.register("after@example.com", "after-password").await;
    wait_chained(&app).await;
    assert_eq!(verify(&app).await.verdict, Verdict::Intact { rows: 4 });
    // Reverting the migrations dropped the signing keys too: the restart made new ones, so the
    // admin signs in again (one more audited row, linked after the others).
    let admin = app.admin_token().await;
    let log = app
        .gql_ok(Some(&admin), AUDIT_LOG, json!({ "first": 3 }))
        .await;
    let rows = &nodes(&log)[1..];
    assert_eq!(rows[0]["field"], "register");
    assert_eq!(number(&rows[0]["seq"]), 4);
    assert_eq!(rows[0]["prevHash"], hash.as_str());
    assert_eq!(rows[1]["operationName"], "Legacy");
    assert_eq!(number(&rows[1]["id"]), 3, "an old row's id is its position");
    assert!(number(&rows[0]["id"]) > 3);
}

/// Three instances on one PostgreSQL, one of them in its own process: mutations on all of them
/// are linked into one chain with no fork and no row twice, and when that process is killed
/// (holding the lease or not) the others carry on.
#[tokio::test(flavor = "multi_thread")]
async fn instances_chain_without_forks_or_duplicates() {
    if skip_without_postgres("instances_chain_without_forks_or_duplicates") {
        return;
    }
    let (app, peers) = TestApp::spawn_cluster_with(2, Arc::new(SystemClock), fast_chainer).await;
    let process = PeerProcess::start(&app.config).await;
    let (token, _, _) = app
        .register("cluster@example.com", "cluster-password")
        .await;
    let urls = [
        app.url("/graphql"),
        peers[0].url("/graphql"),
        process.url("/graphql"),
    ];
    let client = reqwest::Client::new();
    let create = |url: String, i: usize| {
        let (client, token) = (&client, &token);
        async move {
            let body = json!({ "query": CREATE, "variables": { "t": format!("spread {i}") } });
            let r: serde_json::Value = client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert!(r["errors"].is_null(), "{r}");
        }
    };
    futures_util::future::join_all((0..45).map(|i| create(urls[i % 3].clone(), i))).await;
    wait_chained(&app).await;
    assert_eq!(verify(&app).await.verdict, Verdict::Intact { rows: 46 });

    drop(process);
    futures_util::future::join_all((45..55).map(|i| create(urls[i % 2].clone(), i))).await;
    wait_chained(&app).await;
    let report = verify(&app).await;
    assert_eq!(report.verdict, Verdict::Intact { rows: 56 });
    assert_eq!(
        app.sql_number("SELECT COUNT(DISTINCT seq) AS n FROM audit_log")
            .await,
        56
    );
}
