//! Alerting end to end: an error-rate rule fires once through the webhook plugin when the
//! upstream starts failing, resolves when it heals, stays quiet within its cooldown, and fires
//! once across several instances; deliveries are retried; users opt in to their own budget
//! alerts.

use std::time::Duration;

use serde_json::{Value, json};

use crate::receivers::HttpReceiver;
use crate::support::{TestApp, error_code, instance, skip_without_postgres};
use crate::upstream::{Dialect, Upstream};
use crate::ws::GqlWs;

const CREATE_RULE: &str = "mutation($i: AlertRuleInput!) { createAlertRule(input: $i) { id kind params { thresholdPercent windowSecs minCalls } cooldownSecs enabled } }";
const ALERTS: &str = "query($r: ID) { alerts(ruleId: $r) { edges { node { id state severity subject title deliveries { channel status attempts lastError } } } } }";

fn config_with(upstream: &Upstream, hook: &HttpReceiver, c: &mut cloudbase_server::Config) {
    let mut kimi = instance(
        "kimi",
        json!({"base_url": upstream.base_url()}),
        &[("api_key", "HOME")],
    );
    kimi.retry_backoff_ms = 1;
    c.plugins.insert("kimi".into(), kimi);
    c.plugins.insert(
        "ops-hook".into(),
        instance("webhook", json!({"url": hook.url("/alerts")}), &[]),
    );
    c.alerts.evaluate_interval_ms = 100;
    c.alerts.retry_backoff_ms = 50;
    // These rules watch the records of a provider failing call after call; its circuit breaker
    // (tests/it/breakers.rs) would cut it off after a few and answer 503 at once.
    c.chat.breaker.enabled = false;
}

fn kimi_chat(message: &str) -> Value {
    json!({"input": {"provider": "kimi", "model": "kimi-k2-0905-preview", "message": message}})
}

const CHAT: &str = "mutation($input: ChatInput!) { chat(input: $input) { aiCall { status } } }";

async fn calls(app: &TestApp, token: &str, n: usize, ok: bool) {
    for i in 0..n {
        let r = app
            .gql(Some(token), CHAT, kimi_chat(&format!("call {i}")))
            .await;
        assert_eq!(r["errors"].is_null(), ok, "{r}");
    }
}

fn error_rate_rule(cooldown_secs: i64) -> Value {
    json!({"i": {
        "name": "Kimi errors",
        "kind": "ERROR_RATE",
        "params": {"thresholdPercent": 50, "windowSecs": 3600, "minCalls": 4, "provider": "kimi"},
        "targets": [{"channel": "ops-hook"}],
        "cooldownSecs": cooldown_secs
    }})
}

/// The webhook bodies received so far, parsed.
fn bodies(hook: &HttpReceiver) -> Vec<Value> {
    hook.received()
        .iter()
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect()
}

/// Waits (at most 15 s) until the receiver has `n` requests.
async fn wait_for(hook: &HttpReceiver, n: usize) -> Vec<Value> {
    for _ in 0..150 {
        if hook.received().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = bodies(hook);
    assert!(got.len() >= n, "expected {n} webhook calls, got {got:?}");
    got
}

fn field<'a>(body: &'a Value, key: &str) -> &'a str {
    body["fields"][key].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_rate_rule_fires_once_resolves_and_keeps_its_cooldown() {
    let upstream = Upstream::start(Dialect::Kimi).await;
    let hook = HttpReceiver::start(200, "ok").await;
    let app = TestApp::spawn_with(|c| config_with(&upstream, &hook, c)).await;
    let admin = app.admin_token().await;
    let (user, _, _) = app.register("alerts@example.com", "alerts-password").await;
    let rule = app
        .gql_ok(Some(&admin), CREATE_RULE, error_rate_rule(3600))
        .await;
    let rule_id = rule["createAlertRule"]["id"].as_str().unwrap().to_owned();
    assert_eq!(rule["createAlertRule"]["params"]["minCalls"], 4);
    let mut ws = GqlWs::connect(&app, Some(&admin)).await.unwrap();
    ws.subscribe(
        "a",
        "subscription { alertFired { state ruleId subject title } }",
        json!({}),
    )
    .await;

    // Healthy traffic: nothing fires.
    calls(&app, &user, 2, true).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(hook.received().is_empty());

    // The upstream fails: 4 of 6 calls failed (67% > 50%), the rule fires once.
    upstream.fail_next(1000, 500);
    calls(&app, &user, 4, false).await;
    let got = wait_for(&hook, 1).await;
    assert_eq!(got[0]["severity"], "critical", "{}", got[0]);
    assert_eq!(field(&got[0], "state"), "FIRING");
    assert!(
        got[0]["title"].as_str().unwrap().contains("Kimi errors"),
        "{}",
        got[0]
    );
    let live = ws.next_item("a").await;
    assert_eq!(
        live["payload"]["data"]["alertFired"]["state"], "FIRING",
        "{live}"
    );
    assert_eq!(live["payload"]["data"]["alertFired"]["ruleId"], rule_id);
    // More failures and many more evaluations: still one alert.
    calls(&app, &user, 2, false).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        hook.received().len(),
        1,
        "fires once while it keeps failing"
    );

    // It heals: 6 of 14 failed (43%), resolved.
    upstream.fail_next(0, 500);
    calls(&app, &user, 8, true).await;
    let got = wait_for(&hook, 2).await;
    assert_eq!(field(&got[1], "state"), "RESOLVED");
    assert_eq!(got[1]["severity"], "resolved");
    let live = ws.next_item("a").await;
    assert_eq!(live["payload"]["data"]["alertFired"]["state"], "RESOLVED");

    // It fails again within the cooldown: the firing is recorded as suppressed, nothing is sent,
    // and neither is its recovery.
    upstream.fail_next(1000, 500);
    calls(&app, &user, 10, false).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    upstream.fail_next(0, 500);
    calls(&app, &user, 20, true).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        hook.received().len(),
        2,
        "nothing within the cooldown: {:?}",
        bodies(&hook)
    );
    let suppressed = app
        .sql_number(&format!(
            "SELECT COUNT(*) AS n FROM alert_states WHERE rule_id = '{rule_id}' AND suppressed"
        ))
        .await;
    assert_eq!(suppressed, 1);

    let listed = app
        .gql_ok(Some(&admin), ALERTS, json!({"r": rule_id}))
        .await;
    let alerts = listed["alerts"]["edges"].as_array().unwrap();
    assert_eq!(alerts.len(), 2);
    for a in alerts {
        let d = &a["node"]["deliveries"][0];
        assert_eq!(
            (
                d["channel"].as_str(),
                d["status"].as_str(),
                d["attempts"].as_i64()
            ),
            (Some("ops-hook"), Some("DELIVERED"), Some(1)),
            "{a}"
        );
    }
    // A user sees no admin alerts.
    let theirs = app.gql_ok(Some(&user), ALERTS, json!({})).await;
    assert_eq!(theirs["alerts"]["edges"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_delivery_is_retried_up_to_its_bound() {
    let upstream = Upstream::start(Dialect::Kimi).await;
    let hook = HttpReceiver::start(503, "down").await;
    let app = TestApp::spawn_with(|c| {
        config_with(&upstream, &hook, c);
        c.alerts.max_delivery_attempts = 3;
    })
    .await;
    let admin = app.admin_token().await;
    let (user, _, _) = app
        .register("retry-alerts@example.com", "retry-alerts-password")
        .await;
    let rule = json!({"i": {"name": "Kimi down", "kind": "PROVIDER_FAILING", "params": {"consecutiveFailures": 2}, "targets": [{"channel": "ops-hook"}]}});
    app.gql_ok(Some(&admin), CREATE_RULE, rule).await;
    upstream.fail_next(1000, 500);
    calls(&app, &user, 2, false).await;

    // Three attempts (50 ms, then 100 ms apart), then FAILED with the reason; no fourth.
    wait_for(&hook, 3).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(hook.received().len(), 3, "bounded retries");
    let listed = app.gql_ok(Some(&admin), ALERTS, json!({})).await;
    let d = &listed["alerts"]["edges"][0]["node"]["deliveries"][0];
    assert_eq!(d["status"], "FAILED", "{listed}");
    assert_eq!(d["attempts"], 3);
    assert!(d["lastError"].as_str().unwrap().contains("503"), "{d}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alert_fires_once_across_instances() {
    if skip_without_postgres("an_alert_fires_once_across_instances") {
        return;
    }
    let upstream = Upstream::start(Dialect::Kimi).await;
    let hook = HttpReceiver::start(200, "ok").await;
    let (app, peers) = TestApp::spawn_cluster_with(
        3,
        std::sync::Arc::new(cloudbase_schema::clock::SystemClock),
        |c| config_with(&upstream, &hook, c),
    )
    .await;
    let admin = app.admin_token().await;
    let (user, _, _) = app
        .register("cluster-alerts@example.com", "cluster-alerts-password")
        .await;
    app.gql_ok(Some(&admin), CREATE_RULE, error_rate_rule(3600))
        .await;
    upstream.fail_next(1000, 500);
    // Failures spread over the three instances.
    let client = reqwest::Client::new();
    for (i, url) in [
        app.url("/graphql"),
        peers[0].url("/graphql"),
        peers[1].url("/graphql"),
        app.url("/graphql"),
    ]
    .iter()
    .enumerate()
    {
        let body = json!({"query": CHAT, "variables": kimi_chat(&format!("spread {i}"))});
        let r: Value = client
            .post(url)
            .bearer_auth(&user)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(!r["errors"].is_null(), "{r}");
    }
    wait_for(&hook, 1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got = bodies(&hook);
    assert_eq!(got.len(), 1, "three instances, one alert: {got:?}");
    assert_eq!(app.sql_number("SELECT COUNT(*) AS n FROM alerts").await, 1);
    // The lease is held by one of the three.
    let mut instances = Vec::new();
    for base in [
        app.url("/healthz"),
        peers[0].url("/healthz"),
        peers[1].url("/healthz"),
    ] {
        let health: Value = client.get(base).send().await.unwrap().json().await.unwrap();
        instances.push(format!("'{}'", health["instance"].as_str().unwrap()));
    }
    let held = format!(
        "SELECT COUNT(*) AS n FROM leases WHERE name = 'alerts' AND holder IN ({})",
        instances.join(", ")
    );
    assert_eq!(app.sql_number(&held).await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn users_opt_in_to_their_own_budget_alerts() {
    let upstream = Upstream::start(Dialect::Kimi).await;
    let hook = HttpReceiver::start(200, "ok").await;
    let mine = HttpReceiver::start(200, "ok").await;
    let app = TestApp::spawn_with(|c| {
        config_with(&upstream, &hook, c);
        // The receivers are on loopback.
        c.alerts.allow_private_targets = true;
    })
    .await;
    let admin = app.admin_token().await;
    let (user, _, user_id) = app.register("opt-in@example.com", "opt-in-password").await;
    let (other, _, _) = app
        .register("other-opt@example.com", "other-opt-password")
        .await;
    // A budget small enough for a few mock calls to pass half of it.
    app.gql_ok(Some(&admin), "mutation($i: CreateBudgetInput!) { createBudget(input: $i) { id } }",
        json!({"i": {"userId": user_id, "period": "MONTH", "currency": "CNY", "limitMicros": "1000000000"}})).await;
    let spent_half = "UPDATE budgets SET spent_micros = 600000000";

    let opt_in = "mutation($t: Int!, $c: PersonalChannel!, $a: String!) { createMyBudgetAlert(thresholdPercent: $t, channel: $c, address: $a) { id kind ownerId targets { channel to } } }";
    let bad = app
        .gql(
            Some(&user),
            opt_in,
            json!({"t": 50, "c": "WEBHOOK", "a": "not a url"}),
        )
        .await;
    assert_eq!(error_code(&bad), "BAD_USER_INPUT", "{bad}");
    let none = app
        .gql(
            Some(&user),
            opt_in,
            json!({"t": 50, "c": "EMAIL", "a": "me@example.com"}),
        )
        .await;
    assert_eq!(
        error_code(&none),
        "UNAVAILABLE",
        "no email channel is configured: {none}"
    );
    let rule = app
        .gql_ok(
            Some(&user),
            opt_in,
            json!({"t": 50, "c": "WEBHOOK", "a": mine.url("/my-hook")}),
        )
        .await;
    let rule = &rule["createMyBudgetAlert"];
    assert_eq!(rule["ownerId"], user_id);
    assert_eq!(rule["targets"][0]["channel"], "ops-hook");
    // At most ten personal rules each.
    let (busy, _, _) = app
        .register("busy-opt@example.com", "busy-opt-password")
        .await;
    for t in 0..10 {
        app.gql_ok(
            Some(&busy),
            opt_in,
            json!({"t": 90 + t, "c": "WEBHOOK", "a": mine.url("/busy")}),
        )
        .await;
    }
    let eleventh = app
        .gql(
            Some(&busy),
            opt_in,
            json!({"t": 50, "c": "WEBHOOK", "a": mine.url("/busy")}),
        )
        .await;
    assert_eq!(error_code(&eleventh), "BAD_USER_INPUT", "{eleventh}");
    // Users cannot create admin rules, nor see or delete others' rules.
    let refused = app.gql(Some(&user), CREATE_RULE, error_rate_rule(60)).await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
    let rules = app
        .gql_ok(Some(&other), "{ alertRules { id } }", json!({}))
        .await;
    assert_eq!(rules["alertRules"].as_array().unwrap().len(), 0);
    let stolen = app
        .gql(
            Some(&other),
            "mutation($id: ID!) { deleteAlertRule(id: $id) }",
            json!({"id": rule["id"]}),
        )
        .await;
    assert_eq!(error_code(&stolen), "NOT_FOUND");

    let mut ws = GqlWs::connect(&app, Some(&user)).await.unwrap();
    ws.subscribe(
        "mine",
        "subscription { alertFired { state title } }",
        json!({}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.sql(spent_half).await;
    let got = wait_for(&mine, 1).await;
    assert_eq!(mine.received()[0].path, "/my-hook");
    assert_eq!(got[0]["severity"], "warning");
    assert!(
        got[0]["body"].as_str().unwrap().contains("60%"),
        "{}",
        got[0]
    );
    assert!(
        hook.received().is_empty(),
        "the admin's configured URL is not used"
    );
    let live = ws.next_item("mine").await;
    assert_eq!(live["payload"]["data"]["alertFired"]["state"], "FIRING");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mine.received().len(), 1, "once per budget and period");
}

#[tokio::test(flavor = "multi_thread")]
async fn alert_rules_are_validated_and_managed() {
    let upstream = Upstream::start(Dialect::Kimi).await;
    let hook = HttpReceiver::start(200, "ok").await;
    let app = TestApp::spawn_with(|c| config_with(&upstream, &hook, c)).await;
    let admin = app.admin_token().await;
    for (input, field) in [
        (
            json!({"name": "x", "kind": "ERROR_RATE", "params": {}, "targets": [{"channel": "ops-hook"}]}),
            "params.thresholdPercent",
        ),
        (
            json!({"name": "x", "kind": "ERROR_RATE", "params": {"thresholdPercent": 100}, "targets": [{"channel": "ops-hook"}]}),
            "params.thresholdPercent",
        ),
        (
            json!({"name": "x", "kind": "LATENCY_P95", "params": {"latencyMs": 100}, "targets": [{"channel": "nope"}]}),
            "targets.channel",
        ),
        (
            json!({"name": "x", "kind": "LATENCY_P95", "params": {"latencyMs": 100}, "targets": []}),
            "targets",
        ),
        (
            json!({"name": "", "kind": "PLUGIN_FAILED", "targets": [{"channel": "ops-hook"}]}),
            "name",
        ),
        (
            json!({"name": "x", "kind": "PLUGIN_FAILED", "targets": [{"channel": "ops-hook"}], "cooldownSecs": -1}),
            "cooldownSecs",
        ),
    ] {
        let r = app
            .gql(Some(&admin), CREATE_RULE, json!({"i": input}))
            .await;
        assert_eq!(error_code(&r), "BAD_USER_INPUT", "{input}: {r}");
        assert_eq!(r["errors"][0]["extensions"]["field"], field, "{r}");
    }
    let created = app.gql_ok(Some(&admin), CREATE_RULE, json!({"i": {"name": "Slow", "kind": "LATENCY_P95", "params": {"latencyMs": 2000}, "targets": [{"channel": "ops-hook"}]}})).await;
    let id = created["createAlertRule"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        created["createAlertRule"]["params"]["windowSecs"], 300,
        "defaults are filled in"
    );
    let off = app
        .gql_ok(
            Some(&admin),
            "mutation($id: ID!) { setAlertRuleEnabled(id: $id, enabled: false) { enabled } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(off["setAlertRuleEnabled"]["enabled"], false);
    let update = "mutation($id: ID!, $i: AlertRuleInput!) { updateAlertRule(id: $id, input: $i) { name cooldownSecs enabled } }";
    let changed = app.gql_ok(Some(&admin), update, json!({"id": id, "i": {"name": "Slower", "kind": "LATENCY_P95", "params": {"latencyMs": 5000}, "targets": [{"channel": "ops-hook"}], "cooldownSecs": 60}})).await;
    assert_eq!(changed["updateAlertRule"]["name"], "Slower");
    assert_eq!(
        changed["updateAlertRule"]["enabled"], false,
        "unchanged when not given"
    );
    let kind = app.gql(Some(&admin), update, json!({"id": id, "i": {"name": "x", "kind": "ERROR_RATE", "params": {"thresholdPercent": 5}, "targets": [{"channel": "ops-hook"}]}})).await;
    assert_eq!(error_code(&kind), "BAD_USER_INPUT");
    let deleted = app
        .gql_ok(
            Some(&admin),
            "mutation($id: ID!) { deleteAlertRule(id: $id) }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(deleted["deleteAlertRule"], true);
    let rules = app
        .gql_ok(Some(&admin), "{ alertRules { id } }", json!({}))
        .await;
    assert_eq!(rules["alertRules"].as_array().unwrap().len(), 0);
    // Every change is in the audit trail.
    let audited = app
        .gql_ok(
            Some(&admin),
            "{ auditLog(filter: {field: \"createAlertRule\"}) { edges { node { outcome } } } }",
            json!({}),
        )
        .await;
    assert_eq!(audited["auditLog"]["edges"].as_array().unwrap().len(), 7);

    // A user's own webhook may not point at this network (the receiver here is on loopback).
    let (user, _, _) = app.register("inside@example.com", "inside-password").await;
    let inside = app
        .gql(
            Some(&user),
            "mutation($a: String!) { createMyBudgetAlert(thresholdPercent: 80, channel: WEBHOOK, address: $a) { id } }",
            json!({"a": hook.url("/internal")}),
        )
        .await;
    assert_eq!(error_code(&inside), "BAD_USER_INPUT", "{inside}");
    assert!(
        inside["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("public"),
        "{inside}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn old_alerts_and_logs_are_pruned_by_retention() {
    let upstream = Upstream::start(Dialect::Kimi).await;
    let hook = HttpReceiver::start(200, "ok").await;
    let app = TestApp::spawn_with(|c| {
        config_with(&upstream, &hook, c);
        c.budgets.sweep_interval_secs = 1;
        c.retention.alerts_days = 30;
        c.retention.system_logs_days = 7;
    })
    .await;
    let admin = app.admin_token().await;
    let created = app
        .gql_ok(Some(&admin), CREATE_RULE, error_rate_rule(60))
        .await;
    let rule = created["createAlertRule"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (id, days) in [
        ("01000000-0000-7000-8000-000000000001", 40),
        ("01000000-0000-7000-8000-000000000002", 10),
    ] {
        app.sql(&format!(
            "INSERT INTO alerts (id, rule_id, owner_id, subject, state, severity, title, body, at) VALUES ('{id}', '{rule}', NULL, '*', 'FIRING', 'CRITICAL', 't', 'b', {})",
            old(&app, days)
        ))
        .await;
    }
    for (id, days) in [
        ("01000000-0000-7000-8000-000000000003", 8),
        ("01000000-0000-7000-8000-000000000004", 1),
    ] {
        app.sql(&format!(
            "INSERT INTO system_logs (id, at, level, source, message, fields, request_id, batch_id) VALUES ('{id}', {}, 'WARN', 'cloudbase::test', 'old', '{{}}', NULL, 'b')",
            old(&app, days)
        ))
        .await;
    }
    let mut left = (0, 0);
    for _ in 0..50 {
        left = (
            app.sql_number("SELECT COUNT(*) AS n FROM alerts").await,
            app.sql_number(
                "SELECT COUNT(*) AS n FROM system_logs WHERE source = 'cloudbase::test'",
            )
            .await,
        );
        if left == (1, 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        left,
        (1, 1),
        "only the alert and the log entry inside their retention are left"
    );
}

/// A timestamp `days` ago, as SQL for either backend.
fn old(app: &TestApp, days: i64) -> String {
    if app.is_postgres() {
        format!("(NOW() AT TIME ZONE 'UTC') - INTERVAL '{days} days'")
    } else {
        format!("strftime('%Y-%m-%d %H:%M:%f', 'now', '-{days} days')")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_state_change_happens_once_whoever_races_for_it() {
    // The lease keeps evaluators apart; this shows the state row alone also lets exactly one
    // of many concurrent writers move a rule to FIRING, and one back.
    let upstream = Upstream::start(Dialect::Kimi).await;
    let hook = HttpReceiver::start(200, "ok").await;
    let app = TestApp::spawn_with(|c| {
        config_with(&upstream, &hook, c);
        c.alerts.evaluate_interval_ms = 3_600_000;
    })
    .await;
    let admin = app.admin_token().await;
    let created = app
        .gql_ok(Some(&admin), CREATE_RULE, error_rate_rule(60))
        .await;
    let rule = created["createAlertRule"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let pool = cloudbase_schema::db::DbPool::connect_and_migrate(&cloudbase_schema::db::DbConfig {
        url: app.config.database_url.clone().unwrap(),
        max_connections: 8,
        acquire_timeout: Duration::from_secs(10),
    })
    .await
    .unwrap();
    for firing in [true, false] {
        let racers: Vec<_> = (0..8)
            .map(|_| {
                let (pool, rule) = (pool.clone(), rule.clone());
                tokio::spawn(async move {
                    let mut conn = pool.get().await.unwrap();
                    let now = chrono::Utc::now().naive_utc();
                    cloudbase_schema::db::alerts::transition(&mut conn, &rule, "race", firing, now)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut won = 0;
        for racer in racers {
            won += usize::from(racer.await.unwrap());
        }
        assert_eq!(
            won, 1,
            "exactly one writer moves the state to firing = {firing}"
        );
    }
}
