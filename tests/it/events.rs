//! Live subscriptions: call records, spend and budget alerts pushed the moment they happen,
//! only to whom they concern, across instances on PostgreSQL (and after the LISTEN connection is
//! killed), and ending when the access token expires.

use serde_json::json;

use crate::chat::chat_query;
use crate::support::{PeerProcess, TestApp};
use crate::ws::GqlWs;

const CALLS: &str =
    "subscription($u: ID) { aiCallUpdated(userId: $u) { id userId status costMicros } }";
const USAGE: &str =
    "subscription { usageUpdated { scope spentMicros reservedMicros remainingMicros } }";
const ALERTS: &str = "subscription { budgetAlert { budgetId threshold percentUsed } }";

#[tokio::test(flavor = "multi_thread")]
async fn call_updates_reach_their_owner_only() {
    let app = TestApp::spawn().await;
    let (alice, _, alice_id) = app.register("live-a@example.com", "live-a-password").await;
    let (bob, _, _) = app.register("live-b@example.com", "live-b-password").await;
    let mut a = GqlWs::connect(&app, Some(&alice)).await.unwrap();
    let mut b = GqlWs::connect(&app, Some(&bob)).await.unwrap();
    a.subscribe("c", CALLS, json!({})).await;
    // Bob asks for Alice's calls: refused, whatever he sends.
    b.subscribe("x", CALLS, json!({"u": alice_id})).await;
    let refused = b.next_item("x").await;
    assert!(refused.to_string().contains("FORBIDDEN"), "{refused}");
    let closed = b.next_item("x").await;
    assert_eq!(closed["type"], "complete", "the refused subscription ends");
    b.subscribe("c", CALLS, json!({})).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let done = app
        .gql_ok(
            Some(&alice),
            &chat_query(),
            json!({"input": {"message": "live!"}}),
        )
        .await;
    let id = done["chat"]["aiCall"]["id"].clone();
    let first = a.next_item("c").await;
    assert_eq!(first["payload"]["data"]["aiCallUpdated"]["id"], id);
    let mut statuses = vec![first["payload"]["data"]["aiCallUpdated"]["status"].clone()];
    while statuses.last() != Some(&json!("SUCCEEDED")) {
        statuses.push(a.next_item("c").await["payload"]["data"]["aiCallUpdated"]["status"].clone());
    }
    assert_eq!(statuses.last(), Some(&json!("SUCCEEDED")));
    assert!(
        b.next_within(500).await.is_none(),
        "Bob receives nothing of Alice's"
    );

    // An admin may watch one user.
    let admin = app.admin_token().await;
    let mut watcher = GqlWs::connect(&app, Some(&admin)).await.unwrap();
    watcher.subscribe("w", CALLS, json!({"u": alice_id})).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    app.gql_ok(
        Some(&bob),
        &chat_query(),
        json!({"input": {"message": "not watched"}}),
    )
    .await;
    app.gql_ok(
        Some(&alice),
        &chat_query(),
        json!({"input": {"message": "watched"}}),
    )
    .await;
    let seen = watcher.next_item("w").await;
    assert_eq!(
        seen["payload"]["data"]["aiCallUpdated"]["userId"], alice_id,
        "only the watched user's calls"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn spend_and_budget_alerts_are_pushed() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (user, _, user_id) = app.register("pushed@example.com", "pushed-password").await;
    app.gql_ok(Some(&admin), "mutation($i: CreateBudgetInput!) { createBudget(input: $i) { id } }", json!({"i": {"userId": user_id, "period": "MONTH", "currency": "CNY", "limitMicros": "1000", "thresholds": [1]}})).await;
    let mut ws = GqlWs::connect(&app, Some(&user)).await.unwrap();
    ws.subscribe("u", USAGE, json!({})).await;
    ws.subscribe("a", ALERTS, json!({})).await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let call = app
        .gql_ok(
            Some(&user),
            &chat_query(),
            json!({"input": {"message": "spend a little", "maxTokens": 8}}),
        )
        .await;
    let cost = call["chat"]["aiCall"]["costMicros"].clone();
    // Two subscriptions on one socket are not ordered relative to each other: take both.
    let (mut usage, mut alert) = (None, None);
    while usage.is_none() || alert.is_none() {
        let message = ws.next().await;
        match message["id"].as_str() {
            Some("u") => usage = Some(message),
            Some("a") => alert = Some(message),
            _ => {}
        }
    }
    let usage = usage.unwrap();
    let budget = &usage["payload"]["data"]["usageUpdated"][0];
    assert_eq!(
        budget["spentMicros"], cost,
        "the spend arrives with the settle: {usage}"
    );
    assert_eq!(budget["reservedMicros"], "0");
    assert_eq!(
        alert.unwrap()["payload"]["data"]["budgetAlert"]["threshold"],
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_token_ends_the_subscription() {
    let app = TestApp::spawn_with(|c| c.auth.access_token_ttl_secs = 2).await;
    let (user, _, _) = app.register("brief@example.com", "brief-password").await;
    let mut ws = GqlWs::connect(&app, Some(&user)).await.unwrap();
    ws.subscribe("c", CALLS, json!({})).await;
    // At expiry the socket closes with 4401; the subscription may first end with its own
    // UNAUTHENTICATED error. Nothing else arrives on it.
    loop {
        let message = ws.next().await;
        match message["type"].as_str() {
            Some("closed") => {
                assert_eq!(message["code"], 4401, "{message}");
                break;
            }
            Some("complete") => {}
            _ => assert!(message.to_string().contains("UNAUTHENTICATED"), "{message}"),
        }
    }
}

/// Two server processes on one PostgreSQL (A in this process, B in its own): a subscriber on A sees
/// a call made on B, still after the LISTEN connections are killed, and a second user on A sees
/// none of it.
#[tokio::test(flavor = "multi_thread")]
async fn events_cross_instances_and_survive_a_killed_listener() {
    if crate::support::skip_without_postgres("events_cross_instances_and_survive_a_killed_listener")
    {
        return;
    }
    let a = TestApp::spawn().await;
    let b = PeerProcess::start(&a.config).await;
    let b_url = b.url("/graphql");
    let (user, _, _) = a.register("roaming@example.com", "roaming-password").await;
    let (other, _, _) = a
        .register("bystander2@example.com", "bystander-password")
        .await;
    let mut on_a = GqlWs::connect(&a, Some(&user)).await.unwrap();
    on_a.subscribe("c", CALLS, json!({})).await;
    on_a.subscribe("u", USAGE, json!({})).await;
    let mut other_on_a = GqlWs::connect(&a, Some(&other)).await.unwrap();
    other_on_a.subscribe("c", CALLS, json!({})).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let chat_on_b = |message: &'static str| {
        let (client, url, token) = (a.client.clone(), b_url.clone(), user.clone());
        async move {
            let body: serde_json::Value = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"query": chat_query(), "variables": {"input": {"message": message}}}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert!(body.get("errors").is_none(), "{body}");
            body["data"]["chat"]["aiCall"]["id"].clone()
        }
    };
    let id = chat_on_b("made on B").await;
    let seen = on_a.next_item("c").await;
    assert_eq!(
        seen["payload"]["data"]["aiCallUpdated"]["id"], id,
        "A's subscriber saw B's call"
    );
    let usage = on_a.next_item("u").await;
    assert!(usage["payload"]["data"]["usageUpdated"].is_array());
    assert!(
        other_on_a.next_within(500).await.is_none(),
        "another user sees nothing"
    );

    // Kill the LISTEN backends of this database, and the connections the events are sent on; A
    // reconnects, B's notifier sends its next events on a new connection, and the next call's
    // events arrive, the first one included.
    for name in [
        cloudbase_server::events::LISTENER_NAME,
        cloudbase_schema::events::NOTIFIER_NAME,
    ] {
        a.sql(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{name}' AND datname = current_database()",
        ))
        .await;
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let listeners = a.sql_number(&format!("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM pg_stat_activity WHERE application_name = '{}' AND datname = current_database()", cloudbase_server::events::LISTENER_NAME)).await;
        if listeners == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the listeners did not reconnect"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Drain what arrived before the kill, then expect the new call.
    while on_a.next_within(300).await.is_some() {}
    let id = chat_on_b("after the reconnect").await;
    let mut statuses = Vec::new();
    while statuses.len() < 2 {
        let seen = on_a.next_item("c").await;
        let call = &seen["payload"]["data"]["aiCallUpdated"];
        if call["id"] == id {
            statuses.push(call["status"].clone());
        }
    }
    // Both of the call's events arrived, the first one included (a lost one would leave the loop
    // above waiting). Each delivers the record as A reads it when the event comes: the call on
    // B may have finished by the time A reads for its first event, so that one shows `PENDING`
    // or already `SUCCEEDED`; the last one shows it finished.
    assert!(
        [json!("PENDING"), json!("SUCCEEDED")].contains(&statuses[0]),
        "{statuses:?}"
    );
    assert_eq!(statuses[1], json!("SUCCEEDED"), "{statuses:?}");
}

/// The npm `graphql-ws` client, as a frontend uses it: subscribe, receive, complete; an invalid
/// subscription gets the protocol's `error`; keep-alive pings are answered.
#[tokio::test(flavor = "multi_thread")]
async fn the_graphql_ws_client_conforms() {
    let app = TestApp::spawn().await;
    let (token, _, _) = app
        .register("frontend@example.com", "frontend-password")
        .await;
    let url = format!("ws://{}/graphql/ws", app.addr);
    crate::support::run_node_harness(
        "ws-conformance",
        "graphql-ws",
        "check.mjs",
        vec![url, token],
    )
    .await;
}
