//! The audit trail: every mutation recorded by the schema extension, secrets redacted, and a hash
//! chain that `audit verify` checks.

use std::sync::Arc;

use cloudbase_schema::clock::SystemClock;
use cloudbase_schema::services::audit::{self, Verdict};
use cloudbase_server::plugins::Registry;
use serde_json::{Value, json};

use crate::support::{TestApp, error_code};

const AUDIT_LOG: &str = "query($filter: AuditLogFilter, $first: Int, $after: String) {
  auditLog(filter: $filter, first: $first, after: $after) {
    edges { cursor node { seq actorId actorRole operationName field arguments outcome clientIp requestId hash } }
    pageInfo { hasNextPage endCursor }
  }
}";

fn nodes(data: &Value) -> Vec<Value> {
    data["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

/// `audit verify`, as the CLI runs it: a fresh `App` on the test's database.
async fn verify(app: &TestApp) -> Verdict {
    let built = cloudbase_server::startup::build_app(
        &app.config,
        Arc::new(SystemClock),
        Arc::new(Registry::empty()),
    )
    .await
    .unwrap();
    audit::verify(&built).await.unwrap()
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

    // Filters and pages.
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
    assert!(
        b[0]["seq"].as_str().unwrap().parse::<i64>().unwrap()
            < a[1]["seq"].as_str().unwrap().parse::<i64>().unwrap()
    );

    // Only admins read it.
    let (plain, _, _) = app.register("plain@example.com", "plain-password").await;
    let refused = app.gql(Some(&plain), AUDIT_LOG, json!({})).await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
    let bad_cursor = app
        .gql(Some(&admin), AUDIT_LOG, json!({ "after": "nope" }))
        .await;
    assert_eq!(error_code(&bad_cursor), "BAD_USER_INPUT");
}

#[tokio::test(flavor = "multi_thread")]
async fn tampering_breaks_the_chain() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    for i in 0..3 {
        app.register(&format!("chain{i}@example.com"), "chain-password")
            .await;
    }
    app.gql_ok(Some(&admin), "mutation { logout }", json!({}))
        .await;
    let rows = match verify(&app).await {
        Verdict::Intact { rows } => rows,
        broken => panic!("a fresh chain is intact: {broken:?}"),
    };
    assert_eq!(rows, 5, "login, three registers and logout");

    // Editing a row: the chain breaks there.
    app.sql("UPDATE audit_log SET outcome = 'FORBIDDEN' WHERE seq = 3")
        .await;
    assert!(matches!(verify(&app).await, Verdict::Broken { seq: 3, .. }));
    app.sql("UPDATE audit_log SET outcome = 'OK' WHERE seq = 3")
        .await;
    assert_eq!(verify(&app).await, Verdict::Intact { rows: 5 });

    // Removing the last row: the head says more were written.
    app.sql("DELETE FROM audit_log WHERE seq = 5").await;
    assert!(matches!(verify(&app).await, Verdict::Broken { seq: 5, .. }));
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_mutations_keep_one_chain_and_verify_runs_alongside() {
    // Twelve accounts from one address in a moment is what the registration limit stops.
    let app = TestApp::spawn_with(|c| c.rate_limits.registrations_per_address = 0).await;
    let registers = (0..12).map(|i| {
        let app = &app;
        async move {
            app.register(&format!("racer{i}@example.com"), "racer-password")
                .await
        }
    });
    // Checking while rows are appended reports what it saw as intact, never a false break.
    let checks = async {
        for _ in 0..3 {
            let verdict = verify(&app).await;
            assert!(matches!(verdict, Verdict::Intact { .. }), "{verdict:?}");
        }
    };
    tokio::join!(futures_util::future::join_all(registers), checks);
    assert_eq!(verify(&app).await, Verdict::Intact { rows: 12 });
}
