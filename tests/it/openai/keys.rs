//! The life of an API key on every door (`/v1`, `/graphql`, `/graphql/ws`): scopes, revocation
//! (sockets included), expiry, a disabled owner, rotation with a grace period, the audit trail
//! without the secret, the owner's data only, reports by key, and a key budget that 50 concurrent
//! calls cannot overspend (on PostgreSQL, across two server processes).

use std::time::Duration;

use serde_json::{Value, json};

use super::{ask, complete, create_key, refused};
use crate::support::{TestApp, error_code};
use crate::ws::GqlWs;

const ME: &str = "{ me { id } }";

async fn v1_status(app: &TestApp, key: &str) -> u16 {
    complete(app, key, ask("mock/mock-fast", "status"))
        .await
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn revoked_expired_and_disabled_owners_keys_are_refused_on_every_door() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (user, _, user_id) = app.register("life@example.com", "life-user-password").await;
    let (key, record) = create_key(&app, &user, json!({"name": "full", "scope": "FULL"})).await;
    assert_eq!(record["state"], "ACTIVE");
    assert!(
        key.starts_with("cb-") && key.len() >= 3 + 43,
        "256 random bits: {key}"
    );
    assert!(key.starts_with(record["prefix"].as_str().unwrap()));
    assert_eq!(v1_status(&app, &key).await, 200);
    let me = app.gql_ok(Some(&key), ME, json!({})).await;
    assert_eq!(
        me["me"]["id"],
        user_id.as_str(),
        "a FULL key acts as its owner"
    );

    // A socket opened with the key closes when the key is revoked; a new one is refused.
    let mut socket = GqlWs::connect(&app, Some(&key)).await.unwrap();
    socket
        .subscribe("1", "subscription { aiCallUpdated { id } }", json!({}))
        .await;
    let id = record["id"].as_str().unwrap();
    let revoked = app
        .gql_ok(
            Some(&user),
            "mutation($id: ID!) { revokeApiKey(id: $id) { state revokedAt } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(revoked["revokeApiKey"]["state"], "REVOKED");
    let (code, reason) = socket.closed().await;
    assert_eq!(code, Some(4401), "{reason}");
    assert_eq!(
        GqlWs::connect(&app, Some(&key)).await.err().unwrap().code,
        Some(4403)
    );
    let v1 = complete(&app, &key, ask("mock/mock-fast", "after")).await;
    assert_eq!(
        refused(v1, 401).await["message"],
        "this API key has been revoked"
    );
    let gql = app.gql(Some(&key), ME, json!({})).await;
    assert_eq!(error_code(&gql), "UNAUTHENTICATED");
    let again = app
        .gql(
            Some(&user),
            "mutation($id: ID!) { updateApiKey(id: $id, input: {name: \"x\"}) { id } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(
        error_code(&again),
        "CONFLICT",
        "a revoked key cannot be changed"
    );

    // Expiry.
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let (short, _) = create_key(&app, &user, json!({"name": "short", "expiresAt": soon})).await;
    assert_eq!(v1_status(&app, &short).await, 200);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let expired = complete(&app, &short, ask("mock/mock-fast", "late")).await;
    assert_eq!(
        refused(expired, 401).await["message"],
        "this API key has expired"
    );
    let socket = GqlWs::connect(&app, Some(&short)).await;
    assert_eq!(
        socket.err().map(|c| c.code),
        Some(Some(4403)),
        "expired on the socket too"
    );
    let past = (chrono::Utc::now() - chrono::Duration::seconds(5)).to_rfc3339();
    let bad = app
        .gql(
            Some(&user),
            "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { secret } }",
            json!({"i": {"name": "past", "expiresAt": past}}),
        )
        .await;
    assert_eq!(error_code(&bad), "BAD_USER_INPUT");

    // A disabled owner's keys stop at once, on every door, and work again when enabled.
    let (live, _) = create_key(&app, &user, json!({"name": "live", "scope": "FULL"})).await;
    let mut socket = GqlWs::connect(&app, Some(&live)).await.unwrap();
    socket
        .subscribe("1", "subscription { aiCallUpdated { id } }", json!({}))
        .await;
    assert_eq!(v1_status(&app, &live).await, 200);
    app.gql_ok(
        Some(&admin),
        "mutation($u: ID!) { disableUser(userId: $u) { id } }",
        json!({"u": user_id}),
    )
    .await;
    assert_eq!(v1_status(&app, &live).await, 401);
    assert_eq!(
        error_code(&app.gql(Some(&live), ME, json!({})).await),
        "UNAUTHENTICATED"
    );
    let (code, _) = socket.closed().await;
    assert_eq!(code, Some(4401));
    app.gql_ok(
        Some(&admin),
        "mutation($u: ID!) { enableUser(userId: $u) { id } }",
        json!({"u": user_id}),
    )
    .await;
    assert_eq!(v1_status(&app, &live).await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chat_key_chats_and_reads_nothing_else() {
    let app = TestApp::spawn().await;
    let (user, _, user_id) = app
        .register("chatonly@example.com", "chat-user-password")
        .await;
    let (key, _) = create_key(&app, &user, json!({"name": "chat"})).await;
    for query in [
        ME,
        "{ aiCalls(first: 5) { edges { node { id } } } }",
        "{ apiKeys { id } }",
        "{ budgets { id } }",
        "{ conversations(first: 5) { edges { node { id } } } }",
    ] {
        let body = app.gql(Some(&key), query, json!({})).await;
        assert_eq!(error_code(&body), "FORBIDDEN", "{query}: {body}");
    }
    let create = app
        .gql(
            Some(&key),
            "mutation { createApiKey(input: {name: \"escalate\", scope: FULL}) { secret } }",
            json!({}),
        )
        .await;
    assert_eq!(
        error_code(&create),
        "FORBIDDEN",
        "a CHAT key cannot mint a FULL one"
    );
    let csv = app
        .client
        .get(app.url("/statements/2026-11.csv"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 403);

    let chat = app
        .gql_ok(
            Some(&key),
            "mutation { chat(input: {provider: \"mock\", model: \"mock-fast\", message: \"hi\"}) { content aiCall { apiKeyId userId } } }",
            json!({}),
        )
        .await;
    assert_eq!(chat["chat"]["content"], "Mock reply: hi");
    assert_eq!(chat["chat"]["aiCall"]["userId"], user_id.as_str());
    let models = app
        .gql_ok(Some(&key), "{ models { provider id } }", json!({}))
        .await;
    assert!(!models["models"].as_array().unwrap().is_empty());

    let mut socket = GqlWs::connect(&app, Some(&key)).await.unwrap();
    socket
        .subscribe("1", "subscription { aiCallUpdated { id } }", json!({}))
        .await;
    let refused = socket.next_item("1").await;
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );
    socket
        .subscribe(
            "2",
            "subscription { chatStream(input: {provider: \"mock\", model: \"mock-fast\", message: \"hi\"}) { delta done } }",
            json!({}),
        )
        .await;
    let (items, _) = socket.collect("2").await;
    assert!(
        items
            .iter()
            .any(|i| i["data"]["chatStream"]["done"] == true),
        "{items:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_sees_only_its_owners_data_and_reports_group_by_key() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (alice, _, alice_id) = app
        .register("alice-key@example.com", "alice-user-password")
        .await;
    let (bob, _, bob_id) = app
        .register("bob-key@example.com", "bob-user-password")
        .await;
    let (alice_key, alice_record) =
        create_key(&app, &alice, json!({"name": "a", "scope": "FULL"})).await;
    let (bob_key, bob_record) = create_key(&app, &bob, json!({"name": "b"})).await;
    let (_, other_record) = create_key(&app, &alice, json!({"name": "a2"})).await;

    let bob_call = complete(&app, &bob_key, ask("mock/mock-fast", "bob's")).await;
    let bob_call_id = bob_call.headers()["x-cloudbase-call-id"]
        .to_str()
        .unwrap()
        .to_owned();
    for i in 0..3 {
        assert_eq!(
            complete(&app, &alice_key, ask("mock/mock-fast", &format!("a{i}")))
                .await
                .status(),
            200
        );
    }
    // And one over GraphQL with her session (no key).
    app.gql_ok(
        Some(&alice),
        "mutation { chat(input: {provider: \"mock\", model: \"mock-fast\", message: \"session\"}) { content } }",
        json!({}),
    )
    .await;

    let calls = app
        .gql_ok(
            Some(&alice_key),
            "{ aiCalls(first: 50) { edges { node { userId apiKeyId } } } }",
            json!({}),
        )
        .await;
    let edges = calls["aiCalls"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 4, "her calls only");
    assert!(
        edges
            .iter()
            .all(|e| e["node"]["userId"] == alice_id.as_str())
    );
    let by_key = app
        .gql_ok(
            Some(&alice_key),
            "query($k: ID) { aiCalls(first: 50, filter: {apiKeyId: $k}) { edges { node { apiKeyId } } } }",
            json!({"k": alice_record["id"]}),
        )
        .await;
    assert_eq!(by_key["aiCalls"]["edges"].as_array().unwrap().len(), 3);
    let theirs = app
        .gql(
            Some(&alice_key),
            "query($id: ID!) { aiCall(id: $id) { id } }",
            json!({"id": bob_call_id}),
        )
        .await;
    assert!(
        theirs.get("errors").is_some(),
        "bob's call is not hers: {theirs}"
    );
    let keys = app
        .gql_ok(Some(&alice_key), "{ apiKeys { id } }", json!({}))
        .await;
    assert_eq!(keys["apiKeys"].as_array().unwrap().len(), 2);
    for (query, vars) in [
        (
            "query($u: ID) { apiKeys(userId: $u) { id } }",
            json!({"u": bob_id}),
        ),
        ("{ apiKeys(all: true) { id } }", json!({})),
        (
            "mutation($u: ID) { createApiKey(input: {name: \"x\", userId: $u}) { secret } }",
            json!({"u": bob_id}),
        ),
    ] {
        assert_eq!(
            error_code(&app.gql(Some(&alice_key), query, vars).await),
            "FORBIDDEN",
            "{query}"
        );
    }
    let revoke = app
        .gql(
            Some(&alice_key),
            "mutation($id: ID!) { revokeApiKey(id: $id) { id } }",
            json!({"id": bob_record["id"]}),
        )
        .await;
    assert_eq!(
        error_code(&revoke),
        "NOT_FOUND",
        "another's key is not even there"
    );
    assert_eq!(v1_status(&app, &bob_key).await, 200, "and still works");

    // Reports by key: her three key calls, her session's call under no key, the unused key absent.
    let today = chrono::Utc::now().date_naive();
    let range = json!({"from": today - chrono::Days::new(1), "to": today + chrono::Days::new(1)});
    let mine = app
        .gql_ok(
            Some(&alice_key),
            "query($r: DateRange!) { myUsage(range: $r, groupBy: [API_KEY]) { apiKeyId requests costMicros } }",
            json!({"r": range}),
        )
        .await;
    let rows = mine["myUsage"].as_array().unwrap();
    let requests = |key: Value| {
        rows.iter()
            .find(|r| r["apiKeyId"] == key)
            .map(|r| r["requests"].as_i64().unwrap())
    };
    assert_eq!(requests(alice_record["id"].clone()), Some(3), "{rows:?}");
    assert_eq!(requests(Value::Null), Some(1), "{rows:?}");
    assert_eq!(requests(other_record["id"].clone()), None);
    let one = app
        .gql_ok(
            Some(&admin),
            "query($r: DateRange!, $k: ID) { usage(range: $r, groupBy: [USER], filter: {apiKeyId: $k}) { userId requests } }",
            json!({"r": range, "k": bob_record["id"]}),
        )
        .await;
    assert_eq!(one["usage"], json!([{"userId": bob_id, "requests": 2}]));
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_keeps_settings_budget_and_the_old_key_until_its_grace_ends() {
    let app = TestApp::spawn().await;
    let (user, _, _) = app
        .register("rotate@example.com", "rotate-user-password")
        .await;
    let (old, record) = create_key(
        &app,
        &user,
        json!({"name": "rotating", "allowedModels": ["mock/mock-fast"], "tokensPerMinute": 100000,
               "budget": {"period": "MONTH", "currency": "CNY", "limitMicros": "1000000"}}),
    )
    .await;
    assert_eq!(v1_status(&app, &old).await, 200);
    let rotated = app
        .gql_ok(
            Some(&user),
            &format!("mutation($id: ID!) {{ rotateApiKey(id: $id, gracePeriodSeconds: 2) {{ secret apiKey {{ {} }} }} }}", super::KEY_FIELDS),
            json!({"id": record["id"]}),
        )
        .await;
    let new = rotated["rotateApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let new_record = &rotated["rotateApiKey"]["apiKey"];
    assert_ne!(new, old);
    assert_eq!(new_record["allowedModels"], json!(["mock/mock-fast"]));
    assert_eq!(
        new_record["familyId"], record["id"],
        "the family keeps the budget"
    );
    let spent_before: i64 = new_record["budget"]["spentMicros"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        spent_before > 0,
        "the old key's spend is the family's: {new_record}"
    );
    assert_eq!(v1_status(&app, &new).await, 200);
    assert_eq!(v1_status(&app, &old).await, 200, "within the grace period");
    let states = app
        .gql_ok(Some(&user), "{ apiKeys { id state } }", json!({}))
        .await;
    let state_of = |id: &Value| {
        states["apiKeys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| &k["id"] == id)
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(state_of(&record["id"]), "ROTATING");
    assert_eq!(state_of(&new_record["id"]), "ACTIVE");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(v1_status(&app, &old).await, 401, "after the grace period");
    assert_eq!(v1_status(&app, &new).await, 200);
    let forbidden = complete(&app, &new, ask("mock/mock-echo", "x")).await;
    assert_eq!(forbidden.status(), 403, "the model list came along");

    // At once (no grace): the old key stops now.
    let again = app
        .gql_ok(
            Some(&user),
            "mutation($id: ID!) { rotateApiKey(id: $id) { secret } }",
            json!({"id": new_record["id"]}),
        )
        .await;
    assert_eq!(v1_status(&app, &new).await, 401);
    let newest = again["rotateApiKey"]["secret"].as_str().unwrap();
    assert_eq!(v1_status(&app, newest).await, 200);
    let budget = app
        .gql_ok(
            Some(&user),
            "{ apiKeys { budget { spentMicros reservedMicros } } }",
            json!({}),
        )
        .await;
    let budgets: Vec<&Value> = budget["apiKeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["budget"])
        .collect();
    assert!(
        budgets.iter().all(|b| b == &budgets[0]),
        "one family, one budget: {budgets:?}"
    );
    assert_eq!(budgets[0]["reservedMicros"], "0");
}

#[tokio::test(flavor = "multi_thread")]
async fn key_mutations_are_audited_and_the_secret_is_in_no_row_or_log() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (user, _, _) = app
        .register("audited@example.com", "audited-user-password")
        .await;
    let (key, record) = create_key(&app, &user, json!({"name": "audited"})).await;
    let rotated = app
        .gql_ok(
            Some(&user),
            "mutation($id: ID!) { rotateApiKey(id: $id) { secret apiKey { id } } }",
            json!({"id": record["id"]}),
        )
        .await;
    let new = rotated["rotateApiKey"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let new_id = rotated["rotateApiKey"]["apiKey"]["id"].clone();
    app.gql_ok(
        Some(&user),
        "mutation($id: ID!) { updateApiKey(id: $id, input: {name: \"renamed\", requestsPerMinute: 5}) { id } }",
        json!({"id": new_id}),
    )
    .await;
    app.gql_ok(
        Some(&user),
        "mutation($id: ID!) { revokeApiKey(id: $id) { id } }",
        json!({"id": new_id}),
    )
    .await;
    let audit = app
        .gql_ok(
            Some(&admin),
            "{ auditLog(first: 100) { edges { node { field arguments outcome } } } }",
            json!({}),
        )
        .await;
    let rows = audit["auditLog"]["edges"].as_array().unwrap();
    for field in [
        "createApiKey",
        "rotateApiKey",
        "updateApiKey",
        "revokeApiKey",
    ] {
        assert!(
            rows.iter()
                .any(|r| r["node"]["field"] == field && r["node"]["outcome"] == "OK"),
            "{field} audited: {audit}"
        );
    }
    let logs = app
        .gql_ok(
            Some(&admin),
            "{ logs(first: 100) { edges { node { message fields } } } }",
            json!({}),
        )
        .await;
    for secret in [&key, &new] {
        assert!(
            !audit.to_string().contains(secret.as_str()),
            "no secret in the audit trail"
        );
        assert!(
            !logs.to_string().contains(secret.as_str()),
            "no secret in the logs"
        );
        // Nor its hash's source anywhere but the hash column.
        assert!(!audit.to_string().contains(&secret[3..]));
    }
}

/// 50 concurrent `/v1` calls on a key whose own budget covers 10: never more than 10 succeed, the
/// rest get `429 insufficient_quota`, and the key's budget holds exactly what they cost.
async fn check_key_budget(app: &TestApp, urls: &[String]) {
    let (user, _, _) = app
        .register("keybudget@example.com", "key-budget-password")
        .await;
    let (probe, _) = create_key(app, &user, json!({"name": "probe"})).await;
    let body = json!({"model": "mock/mock-echo", "max_tokens": 3, "messages": [{"role": "user", "content": "budget test"}]});
    let one: i64 = complete(app, &probe, body.clone()).await.headers()["x-cloudbase-cost-micros"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(one > 0);
    let (key, record) = create_key(
        app,
        &user,
        json!({"name": "ten", "budget": {"period": "TOTAL", "currency": "CNY", "limitMicros": (10 * one).to_string()}}),
    )
    .await;
    let client = reqwest::Client::new();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (client, url, key, body) = (
                client.clone(),
                urls[i % urls.len()].clone(),
                key.clone(),
                body.clone(),
            );
            tokio::spawn(async move {
                let r = client
                    .post(url)
                    .bearer_auth(key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let cost = r
                    .headers()
                    .get("x-cloudbase-cost-micros")
                    .map(|v| v.to_str().unwrap().parse::<i64>().unwrap());
                let body: Value = r.json().await.unwrap();
                (status, cost, body)
            })
        })
        .collect();
    let (mut costs, mut refused) = (Vec::new(), 0);
    for t in tasks {
        let (status, cost, body) = t.await.unwrap();
        match status {
            200 => costs.push(cost.unwrap()),
            429 => {
                assert_eq!(body["error"]["code"], "insufficient_quota", "{body}");
                refused += 1;
            }
            other => panic!("status {other}: {body}"),
        }
    }
    assert!(
        !costs.is_empty() && costs.len() <= 10,
        "{} calls on a key budget for 10",
        costs.len()
    );
    assert_eq!(costs.len() + refused, 50);
    let keys = app
        .gql_ok(
            Some(&user),
            "{ apiKeys { id budget { spentMicros reservedMicros limitMicros } } }",
            json!({}),
        )
        .await;
    let budget = keys["apiKeys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == record["id"])
        .unwrap()["budget"]
        .clone();
    let spent: i64 = budget["spentMicros"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        spent,
        costs.iter().sum::<i64>(),
        "spend is exactly what the calls cost"
    );
    assert!(spent <= 10 * one, "never overspent: {budget}");
    assert_eq!(budget["reservedMicros"], "0", "every reservation came back");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_budget_is_never_overspent_by_concurrent_calls() {
    let app = TestApp::spawn().await;
    check_key_budget(&app, &[app.url("/v1/chat/completions")]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_budget_holds_across_two_server_processes_on_postgres() {
    if crate::support::skip_without_postgres(
        "a_key_budget_holds_across_two_server_processes_on_postgres",
    ) {
        return;
    }
    let app = TestApp::spawn().await;
    let other = crate::support::PeerProcess::start(&app.config).await;
    let urls = vec![
        app.url("/v1/chat/completions"),
        other.url("/v1/chat/completions"),
    ];
    check_key_budget(&app, &urls).await;
}
