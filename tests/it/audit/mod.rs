//! The audit trail: every mutation recorded by the schema extension, secrets redacted, and a hash
//! chain that `audit verify` checks. [`chain`]: the chainer that links rows off the request path.

mod chain;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudbase_schema::clock::SystemClock;
use cloudbase_schema::services::audit::{self, Report, Verdict};
use cloudbase_server::config::Config;
use cloudbase_server::plugin_host::Host;
use serde_json::{Value, json};

use crate::support::{TestApp, error_code};

const AUDIT_LOG: &str = "query($filter: AuditLogFilter, $first: Int, $after: String) {
  auditLog(filter: $filter, first: $first, after: $after) {
    edges { cursor node { id seq chained actorId actorRole operationName field arguments outcome clientIp requestId prevHash hash } }
    pageInfo { hasNextPage endCursor }
  }
}";

const AUDIT_CHAIN: &str =
    "{ auditChain { chainedRows headHash unchainedRows oldestUnchainedAt oldestUnchainedAgeMs } }";

fn nodes(data: &Value) -> Vec<Value> {
    data["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

fn number(v: &Value) -> i64 {
    v.as_str().unwrap().parse().unwrap()
}

/// A chainer that links every 50 ms, and hands over within a second.
fn fast_chainer(c: &mut Config) {
    c.audit.chain_interval_ms = 50;
    c.audit.chain_lease_ttl_ms = 1_000;
}

/// A chainer that does not run during a test.
fn idle_chainer(c: &mut Config) {
    c.audit.chain_interval_ms = 3_600_000;
    c.audit.chain_lease_ttl_ms = 7_200_000;
}

/// `audit verify`, as the CLI runs it: a fresh `App` on the test's database.
pub(crate) async fn verify(app: &TestApp) -> Report {
    let built = cloudbase_server::startup::build_app(
        &app.config,
        Arc::new(SystemClock),
        Arc::new(Host::empty()),
    )
    .await
    .unwrap();
    audit::verify(&built).await.unwrap()
}

/// Polls until no row waits to be chained (at most 15 s); returns how long it took.
pub(crate) async fn wait_chained(app: &TestApp) -> Duration {
    let started = Instant::now();
    loop {
        let waiting = app
            .sql_number("SELECT COUNT(*) AS n FROM audit_log WHERE seq IS NULL")
            .await;
        if waiting == 0 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{waiting} rows still unchained after 15 s"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mutations_are_audited_with_their_outcome_and_secrets_redacted() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (user, _, user_id) = app
        .register("audited@example.com", "audited-password")
        .await;

    let (_, _, other) = app
        .register("bystander3@example.com", "bystander-password")
        .await;
    let forbidden = app
        .gql(
            Some(&user),
            "mutation($u: ID!) { disableUser(userId: $u) { id } }",
            json!({ "u": other }),
        )
        .await;
    assert_eq!(error_code(&forbidden), "FORBIDDEN");
    // An admin change; then a failed mutation by the promoted user.
    app.gql_ok(
        Some(&admin),
        "mutation PromoteAda($u: ID!) { setUserRole(userId: $u, role: ADMIN) { id } }",
        json!({ "u": user_id }),
    )
    .await;
    let wrong = app
        .gql(
            Some(&user),
            "mutation { changePassword(currentPassword: \"wrong-password-1\", newPassword: \"new-password-123\") }",
            json!({}),
        )
        .await;
    let denied_code = error_code(&wrong);
    assert_ne!(denied_code, "", "{wrong}");

    // A mutation that succeeds while the selection under it fails: the outcome is the
    // mutation's; a variable's default counts as its value.
    let partial = app
        .gql(
            Some(&user),
            "mutation Make($t: String = \"Defaulted\") { createConversation(title: $t) { id messages(first: 0) { edges { cursor } } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&partial), "BAD_USER_INPUT", "{partial}");

    let log = app
        .gql_ok(Some(&admin), AUDIT_LOG, json!({ "first": 100 }))
        .await;
    let rows = nodes(&log);
    let promote = rows
        .iter()
        .find(|r| r["field"] == "setUserRole")
        .expect("the admin's change is recorded");
    assert_eq!(promote["outcome"], "OK");
    assert_eq!(promote["actorRole"], "ADMIN");
    assert_eq!(promote["operationName"], "PromoteAda");
    assert_eq!(
        promote["arguments"]["userId"], user_id,
        "variables are resolved"
    );
    assert_eq!(promote["arguments"]["role"], "ADMIN");
    assert_eq!(promote["clientIp"], "127.0.0.1");

    let refused = rows
        .iter()
        .find(|r| r["field"] == "disableUser")
        .expect("the refused admin change is recorded");
    assert_eq!(refused["outcome"], "FORBIDDEN");
    assert_eq!(refused["actorId"], user_id);
    assert_eq!(refused["actorRole"], "USER");
    assert_eq!(refused["arguments"]["userId"], other);

    let failed = rows
        .iter()
        .find(|r| r["field"] == "changePassword")
        .expect("the failed mutation is recorded");
    assert_eq!(failed["outcome"], denied_code);
    assert_eq!(failed["actorId"], user_id);
    assert_eq!(failed["actorRole"], "ADMIN", "the role at the time");
    assert_eq!(failed["arguments"]["currentPassword"], audit::REDACTED);
    assert_eq!(failed["arguments"]["newPassword"], audit::REDACTED);

    let made = rows
        .iter()
        .find(|r| r["field"] == "createConversation")
        .expect("the conversation is recorded");
    assert_eq!(made["outcome"], "OK", "the conversation was created");
    assert_eq!(made["arguments"]["title"], "Defaulted");
    assert!(made["arguments"].get("provider").is_none());

    // Anonymous mutations too, passwords never stored.
    let registers: Vec<_> = rows.iter().filter(|r| r["field"] == "register").collect();
    assert_eq!(registers.len(), 2);
    assert!(registers.iter().all(|r| r["actorId"].is_null()
        && r["arguments"]["input"]["password"] == audit::REDACTED
        && r["arguments"]["input"]["email"].is_string()));
    assert!(
        rows.iter()
            .any(|r| r["field"] == "login" && r["outcome"] == "OK")
    );

    // Filters and pages (by row id, newest first).
    let mine = app
        .gql_ok(
            Some(&admin),
            AUDIT_LOG,
            json!({ "filter": { "actorId": user_id } }),
        )
        .await;
    assert!(nodes(&mine).iter().all(|r| r["actorId"] == user_id));
    let page = app
        .gql_ok(Some(&admin), AUDIT_LOG, json!({ "first": 2 }))
        .await;
    assert_eq!(nodes(&page).len(), 2);
    assert_eq!(page["auditLog"]["pageInfo"]["hasNextPage"], true);
    let cursor = page["auditLog"]["pageInfo"]["endCursor"].clone();
    let next = app
        .gql_ok(
            Some(&admin),
            AUDIT_LOG,
            json!({ "first": 2, "after": cursor }),
        )
        .await;
    let (a, b) = (nodes(&page), nodes(&next));
    assert!(number(&a[0]["id"]) > number(&a[1]["id"]));
    assert!(number(&b[0]["id"]) < number(&a[1]["id"]));

    // Only admins read it, or the chain's state.
    let (plain, _, _) = app.register("plain@example.com", "plain-password").await;
    let refused = app.gql(Some(&plain), AUDIT_LOG, json!({})).await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
    let refused = app.gql(Some(&plain), AUDIT_CHAIN, json!({})).await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
    let bad_cursor = app
        .gql(Some(&admin), AUDIT_LOG, json!({ "after": "nope" }))
        .await;
    assert_eq!(error_code(&bad_cursor), "BAD_USER_INPUT");
}

#[tokio::test(flavor = "multi_thread")]
async fn tampering_breaks_the_chain() {
    let app = TestApp::spawn_with(fast_chainer).await;
    let admin = app.admin_token().await;
    for i in 0..3 {
        app.register(&format!("chain{i}@example.com"), "chain-password")
            .await;
    }
    app.gql_ok(Some(&admin), "mutation { logout }", json!({}))
        .await;
    wait_chained(&app).await;
    let report = verify(&app).await;
    assert_eq!(
        report.verdict,
        Verdict::Intact { rows: 5 },
        "login, three registers and logout"
    );
    assert_eq!(report.tail.rows, 0);

    // Editing a row: the chain breaks there.
    app.sql("UPDATE audit_log SET outcome = 'FORBIDDEN' WHERE seq = 3")
        .await;
    assert!(matches!(
        verify(&app).await.verdict,
        Verdict::Broken { seq: 3, .. }
    ));
    app.sql("UPDATE audit_log SET outcome = 'OK' WHERE seq = 3")
        .await;
    assert_eq!(verify(&app).await.verdict, Verdict::Intact { rows: 5 });

    // Removing the last row: the head says more were linked.
    app.sql("DELETE FROM audit_log WHERE seq = 5").await;
    assert!(matches!(
        verify(&app).await.verdict,
        Verdict::Broken { seq: 5, ref reason } if reason.contains("removed")
    ));
}

const VERIFY_STEP: &str = "query($after: Int!, $limit: Int!) {
  verifyAuditChain(afterSeq: $after, limit: $limit) {
    afterSeq lastSeq checkedRows intact brokenAtSeq reason headSeq done
  }
}";

/// The console's "verify chain": bounded steps that page along the chain, find an edit and a
/// removed tail row, refuse limits out of range, and are for admins only.
#[tokio::test(flavor = "multi_thread")]
async fn the_admin_checks_the_chain_in_bounded_steps() {
    let app = TestApp::spawn_with(fast_chainer).await;
    let admin = app.admin_token().await;
    let (user, _, _) = app.register("steps0@example.com", "steps-password").await;
    for i in 1..6 {
        app.register(&format!("steps{i}@example.com"), "steps-password")
            .await;
    }
    wait_chained(&app).await;
    let step = |after: i64, limit: i64| {
        let (app, admin) = (&app, admin.clone());
        async move {
            app.gql_ok(
                Some(&admin),
                VERIFY_STEP,
                json!({ "after": after, "limit": limit }),
            )
            .await["verifyAuditChain"]
                .clone()
        }
    };
    // The admin's login and six registrations: seven rows, walked three at a time.
    let mut after = 0;
    let mut steps = Vec::new();
    loop {
        let s = step(after, 3).await;
        assert_eq!(s["intact"], true, "{s}");
        assert_eq!(s["headSeq"], 7, "{s}");
        steps.push((
            s["afterSeq"].as_i64().unwrap(),
            s["lastSeq"].as_i64().unwrap(),
            s["checkedRows"].as_i64().unwrap(),
        ));
        after = s["lastSeq"].as_i64().unwrap();
        if s["done"] == true {
            break;
        }
        assert!(steps.len() < 10, "the walk does not end: {steps:?}");
    }
    assert_eq!(steps, vec![(0, 3, 3), (3, 6, 3), (6, 7, 1)]);

    // An edited row is found by the step that covers it, not by the ones before it.
    app.sql("UPDATE audit_log SET outcome = 'FORBIDDEN' WHERE seq = 5")
        .await;
    assert_eq!(step(0, 3).await["intact"], true);
    let broken = step(3, 3).await;
    assert_eq!(
        (
            &broken["intact"],
            &broken["brokenAtSeq"],
            &broken["lastSeq"],
            &broken["done"]
        ),
        (&json!(false), &json!(5), &json!(4), &json!(true)),
        "{broken}"
    );
    assert!(
        broken["reason"].as_str().unwrap().contains("edited"),
        "{broken}"
    );
    app.sql("UPDATE audit_log SET outcome = 'OK' WHERE seq = 5")
        .await;
    assert_eq!(step(3, 3).await["intact"], true);

    // A removed last row: the head says more were linked.
    app.sql("DELETE FROM audit_log WHERE seq = 7").await;
    let removed = step(6, 10).await;
    assert_eq!(removed["brokenAtSeq"], 7, "{removed}");
    assert!(
        removed["reason"].as_str().unwrap().contains("removed"),
        "{removed}"
    );

    // Out of range, and not an admin.
    for (after, limit) in [(0, 0), (0, 10_001), (-1, 10), (8, 10)] {
        let body = app
            .gql(
                Some(&admin),
                VERIFY_STEP,
                json!({ "after": after, "limit": limit }),
            )
            .await;
        assert_eq!(
            error_code(&body),
            "BAD_USER_INPUT",
            "{after} {limit}: {body}"
        );
    }
    let body = app
        .gql(Some(&user), VERIFY_STEP, json!({ "after": 0, "limit": 10 }))
        .await;
    assert_eq!(error_code(&body), "FORBIDDEN", "{body}");
}

/// Turning a chained row back into an unchained one (to edit it and have it linked afresh)
/// leaves a hole where it was.
#[tokio::test(flavor = "multi_thread")]
async fn unlinking_a_chained_row_is_found() {
    let app = TestApp::spawn_with(fast_chainer).await;
    for i in 0..3 {
        app.register(&format!("unlink{i}@example.com"), "unlink-password")
            .await;
    }
    wait_chained(&app).await;
    assert_eq!(verify(&app).await.verdict, Verdict::Intact { rows: 3 });
    app.sql(
        "UPDATE audit_log SET seq = NULL, prev_hash = NULL, hash = NULL, outcome = 'FORBIDDEN' \
         WHERE seq = 2",
    )
    .await;
    wait_chained(&app).await;
    assert_eq!(
        app.sql_number("SELECT seq AS n FROM audit_log WHERE outcome = 'FORBIDDEN'")
            .await,
        4,
        "linked again, at the end"
    );
    let verdict = verify(&app).await.verdict;
    assert!(
        matches!(&verdict, Verdict::Broken { seq: 3, reason } if reason.contains("missing")),
        "{verdict:?}"
    );
}

#[test]
fn the_chainer_is_configured_under_audit() {
    figment::Jail::expect_with(|jail| {
        let defaults = Config::load(None).unwrap().audit;
        assert_eq!(
            (
                defaults.chain_interval_ms,
                defaults.chain_batch_size,
                defaults.chain_lease_ttl_ms
            ),
            (500, 1024, 3000)
        );
        jail.set_env("CLOUDBASE_AUDIT__CHAIN_INTERVAL_MS", "50");
        jail.set_env("CLOUDBASE_AUDIT__CHAIN_BATCH_SIZE", "100");
        let settings = Config::load(None).unwrap().chain_settings();
        assert_eq!(settings.interval, Duration::from_millis(50));
        assert_eq!(settings.batch_size, 100);
        assert_eq!(settings.lease_ttl, Duration::from_secs(3));
        for (value, key) in [
            ("0", "CLOUDBASE_AUDIT__CHAIN_BATCH_SIZE"),
            ("10001", "CLOUDBASE_AUDIT__CHAIN_BATCH_SIZE"),
            ("50", "CLOUDBASE_AUDIT__CHAIN_LEASE_TTL_MS"),
        ] {
            jail.set_env(key, value);
            let error = Config::load(None).unwrap_err().to_string();
            assert!(error.starts_with("audit.chain_"), "{key}={value}: {error}");
            jail.set_env("CLOUDBASE_AUDIT__CHAIN_BATCH_SIZE", "100");
        }
        Ok(())
    });
}
