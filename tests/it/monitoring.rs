//! System logs, `/metrics` and `systemStats`: warnings and business events stored without
//! holding up requests (a flood is dropped and counted), readable and live for admins; metrics
//! that parse as Prometheus text and move with the traffic; dashboard numbers from the records.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{TestApp, error_code};
use crate::ws::GqlWs;

fn mock_chat(message: &str) -> Value {
    json!({"input": {"provider": "mock", "model": "mock-echo", "message": message}})
}

const CHAT: &str =
    "mutation ProbeChat($input: ChatInput!) { chat(input: $input) { aiCall { status } } }";

/// The instance id of `app` (from `/healthz`), which routes log entries to its store.
async fn instance_of(app: &TestApp) -> String {
    let health: Value = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    health["instance"].as_str().unwrap().to_owned()
}

/// `/metrics`, parsed by a real Prometheus parser.
pub async fn scrape(app: &TestApp) -> prometheus_parse::Scrape {
    scrape_at(&app.client, app.url("/metrics")).await
}

/// `/metrics` at `url` (a peer's), parsed as [`scrape`] does.
pub async fn scrape_at(client: &reqwest::Client, url: String) -> prometheus_parse::Scrape {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text")
}

/// The value of the sample `name` whose labels include `labels` (0 when there is none).
pub fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            prometheus_parse::Value::Histogram(buckets) => {
                buckets.iter().map(|b| b.count).fold(0.0, f64::max)
            }
            prometheus_parse::Value::Summary(_) => f64::NAN,
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_flood_is_dropped_and_counted_while_requests_go_on() {
    let app = TestApp::spawn_with(|c| c.logs.queue_capacity = 64).await;
    let admin = app.admin_token().await;
    let (user, _, _) = app.register("flood@example.com", "flood-password").await;
    let instance = instance_of(&app).await;

    // Chat load on four tasks while 10,000 warnings are logged in this instance's span.
    let load: Vec<_> = (0..4)
        .map(|t| {
            let (client, url, user) = (app.client.clone(), app.url("/graphql"), user.clone());
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for i in 0..10 {
                    let body =
                        json!({"query": CHAT, "variables": mock_chat(&format!("load {t}-{i}"))});
                    let r: Value = client
                        .post(&url)
                        .bearer_auth(&user)
                        .json(&body)
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    statuses.push(r["data"]["chat"]["aiCall"]["status"].clone());
                }
                statuses
            })
        })
        .collect();
    let flood = tokio::task::spawn_blocking(move || {
        let span = tracing::info_span!(target: "cloudbase::test", "instance", instance = %instance);
        let _in = span.enter();
        for n in 0..10_000 {
            tracing::warn!(target: "cloudbase::test::flood", n, "flood warning {n}");
        }
    });
    flood.await.unwrap();
    for task in load {
        for status in task.await.unwrap() {
            assert_eq!(
                status, "SUCCEEDED",
                "every request is served during the flood"
            );
        }
    }

    // Everything queued gets written; what could not be queued was counted, never waited for.
    // (Another test's server in this process may log meanwhile: wait for a quiet moment, when
    // the counters and the table agree, before comparing.)
    let (mut queued, mut written, mut dropped, mut rows) = (0.0, -1.0, 0.0, 0.0);
    for _ in 0..100 {
        let before = scrape(&app).await;
        rows = app
            .sql_number("SELECT COUNT(*) AS n FROM system_logs")
            .await as f64;
        let after = scrape(&app).await;
        let count = |m: &prometheus_parse::Scrape, outcome| {
            value(m, "cloudbase_logs_total", &[("outcome", outcome)])
        };
        (queued, written, dropped) = (
            count(&after, "queued"),
            count(&after, "written"),
            count(&after, "dropped"),
        );
        if written == queued && count(&before, "written") == written && rows == written {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(written, queued, "every queued entry is stored");
    assert_eq!(rows, written, "the table holds what the writer wrote");
    assert!(dropped > 0.0, "a 64-entry queue cannot take 10,000 at once");
    let stored = app
        .sql_number("SELECT COUNT(*) AS n FROM system_logs WHERE source = 'cloudbase::test::flood'")
        .await;
    assert!(stored > 0 && stored <= 10_000, "{stored}");
    assert!(
        stored as f64 + dropped >= 10_000.0,
        "each warning was stored or counted: {stored} + {dropped}"
    );

    // Admins read them back with filters; users may not.
    let q = "query($f: LogsFilter) { logs(filter: $f, first: 3) { edges { node { level source message fields } } pageInfo { hasNextPage } } }";
    let page = app.gql_ok(Some(&admin), q, json!({"f": {"level": "WARN", "source": "cloudbase::test::flood", "text": "FLOOD WARNING"}})).await;
    let edges = page["logs"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 3);
    assert_eq!(page["logs"]["pageInfo"]["hasNextPage"], true);
    let first = &edges[0]["node"];
    assert_eq!(first["level"], "WARN");
    assert!(
        first["message"]
            .as_str()
            .unwrap()
            .starts_with("flood warning "),
        "{first}"
    );
    assert!(first["fields"]["n"].is_number(), "{first}");
    let none = app
        .gql_ok(
            Some(&admin),
            q,
            json!({"f": {"level": "ERROR", "source": "cloudbase::test::flood"}}),
        )
        .await;
    assert_eq!(
        none["logs"]["edges"].as_array().unwrap().len(),
        0,
        "ERROR excludes warnings"
    );
    assert_eq!(
        error_code(&app.gql(Some(&user), q, json!({})).await),
        "FORBIDDEN"
    );
    let bad = app
        .gql(Some(&admin), q, json!({"f": {"text": "x".repeat(101)}}))
        .await;
    assert_eq!(error_code(&bad), "BAD_USER_INPUT");
}

#[tokio::test(flavor = "multi_thread")]
async fn business_events_are_stored_with_their_request_and_streamed_live() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    app.register("events@example.com", "events-password").await;
    let mut ws = GqlWs::connect(&app, Some(&admin)).await.unwrap();
    ws.subscribe(
        "logs",
        "subscription { logAppended(filter: {source: \"cloudbase::event::auth\"}) { level source message requestId } }",
        json!({}),
    )
    .await;
    // Give the subscription a moment to be registered on the bus.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let response = app
        .client
        .post(app.url("/graphql"))
        .header("x-request-id", "login-probe-1")
        .json(&json!({
            "query": "mutation($i: LoginInput!) { login(input: $i) { accessToken } }",
            "variables": {"i": {"email": "events@example.com", "password": "wrong-password"}}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let refused: Value = response.json().await.unwrap();
    assert_eq!(error_code(&refused), "UNAUTHENTICATED", "{refused}");
    let live = ws.next_item("logs").await;
    let entry = &live["payload"]["data"]["logAppended"];
    assert_eq!(entry["message"], "login failed", "{live}");
    assert_eq!(entry["level"], "INFO");
    assert_eq!(entry["requestId"], "login-probe-1");

    let q = "{ logs(filter: {source: \"cloudbase::event\"}) { edges { node { source message requestId fields } } } }";
    let stored = app.gql_ok(Some(&admin), q, json!({})).await;
    let nodes: Vec<&Value> = stored["logs"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .collect();
    let login = nodes
        .iter()
        .find(|n| n["message"] == "login failed")
        .expect("stored");
    assert_eq!(login["source"], "cloudbase::event::auth");
    assert_eq!(login["requestId"], "login-probe-1");
    assert_eq!(
        login["fields"]["client_ip"], "127.0.0.1",
        "the address as text: {login}"
    );
    assert!(
        !login.to_string().contains("wrong-password"),
        "no secrets in logs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_parse_and_move_with_the_traffic() {
    let app = TestApp::spawn().await;
    let (user, _, _) = app
        .register("metrics@example.com", "metrics-password")
        .await;
    let before = scrape(&app).await;
    let ops = [
        ("operation", "ProbeChat"),
        ("type", "mutation"),
        ("outcome", "ok"),
    ];
    let calls = [
        ("provider", "mock"),
        ("model", "mock-echo"),
        ("status", "SUCCEEDED"),
    ];
    assert_eq!(
        value(&before, "cloudbase_graphql_operations_total", &ops),
        0.0
    );

    for i in 0..3 {
        app.gql_ok(Some(&user), CHAT, mock_chat(&format!("metrics {i}")))
            .await;
    }
    let refused = app.gql(None, CHAT, mock_chat("anonymous")).await;
    assert_eq!(error_code(&refused), "UNAUTHENTICATED");
    let mut ws = GqlWs::connect(&app, Some(&user)).await.unwrap();
    ws.subscribe("u", "subscription { usageUpdated { scope } }", json!({}))
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let after = scrape(&app).await;
    assert_eq!(
        value(&after, "cloudbase_graphql_operations_total", &ops),
        3.0
    );
    assert_eq!(
        value(
            &after,
            "cloudbase_graphql_operations_total",
            &[("operation", "ProbeChat"), ("outcome", "UNAUTHENTICATED")]
        ),
        1.0
    );
    assert_eq!(value(&after, "cloudbase_ai_calls_total", &calls), 3.0);
    assert!(
        value(
            &after,
            "cloudbase_ai_tokens_total",
            &[("provider", "mock"), ("kind", "completion")]
        ) > 0.0
    );
    assert!(
        value(
            &after,
            "cloudbase_ai_cost_micros_total",
            &[("provider", "mock")]
        ) > 0.0
    );
    assert_eq!(
        value(
            &after,
            "cloudbase_ai_overhead_duration_seconds",
            &[("provider", "mock")]
        ),
        3.0,
        "one overhead sample per call"
    );
    assert_eq!(
        value(
            &after,
            "cloudbase_ai_upstream_duration_seconds",
            &[("provider", "mock")]
        ),
        3.0
    );
    let posts = value(
        &after,
        "cloudbase_http_requests_total",
        &[("method", "POST"), ("route", "/graphql"), ("status", "200")],
    ) - value(
        &before,
        "cloudbase_http_requests_total",
        &[("method", "POST"), ("route", "/graphql"), ("status", "200")],
    );
    assert!(posts >= 4.0, "{posts}");
    // Each request is counted once under its status and timed once under its route, from the
    // first request of a series on (the handles are kept after it).
    let models = [("method", "GET"), ("route", "/v1/models")];
    for expected in 1..=3 {
        let refused = app.client.get(app.url("/v1/models")).send().await.unwrap();
        assert_eq!(refused.status(), 401);
        let now = scrape(&app).await;
        let count = [models[0], models[1], ("status", "401")];
        assert_eq!(
            value(&now, "cloudbase_http_requests_total", &count),
            f64::from(expected)
        );
        assert_eq!(
            value(&now, "cloudbase_http_request_duration_seconds", &models),
            f64::from(expected)
        );
    }
    assert_eq!(value(&after, "cloudbase_websocket_connections", &[]), 1.0);
    assert_eq!(value(&after, "cloudbase_subscriptions_active", &[]), 1.0);
    assert!(value(&after, "cloudbase_db_pool_connections", &[("state", "max")]) >= 1.0);
    let histogram = after
        .samples
        .iter()
        .find(|s| s.metric == "cloudbase_graphql_operation_duration_seconds");
    assert!(
        matches!(
            histogram.map(|s| &s.value),
            Some(prometheus_parse::Value::Histogram(_))
        ),
        "latencies are histograms"
    );

    // A request relayed by a proxy is not a loopback client, whatever it claims.
    let relayed = app
        .client
        .get(app.url("/metrics"))
        .header("x-forwarded-for", "127.0.0.1")
        .send()
        .await
        .unwrap();
    assert_eq!(relayed.status(), 403);

    ws.drop_connection().await;
    let mut gone = scrape(&app).await;
    for _ in 0..50 {
        if value(&gone, "cloudbase_websocket_connections", &[]) == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        gone = scrape(&app).await;
    }
    assert_eq!(value(&gone, "cloudbase_websocket_connections", &[]), 0.0);
    assert_eq!(value(&gone, "cloudbase_subscriptions_active", &[]), 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_off_loopback_need_the_token() {
    let app = TestApp::spawn_with(|c| {
        c.metrics.loopback = false;
        c.metrics.token = Some(cloudbase_server::config::Secret::new(
            "metrics-token-0123456789",
        ));
    })
    .await;
    let denied = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(denied.status(), 403);
    let body: Value = denied.json().await.unwrap();
    assert_eq!(error_code(&body), "FORBIDDEN");
    let wrong = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("metrics-token-0123456780")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let ok = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("metrics-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_turned_off_are_not_served_and_calls_still_work() {
    let app = TestApp::spawn_with(|c| c.metrics.enabled = false).await;
    let admin = app.admin_token().await;
    let reply = app
        .gql_ok(Some(&admin), CHAT, mock_chat("no metrics"))
        .await;
    assert_eq!(reply["chat"]["aiCall"]["status"], "SUCCEEDED");
    let off = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(off.status(), 404);
    let body: Value = off.json().await.unwrap();
    assert_eq!(error_code(&body), "NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread")]
async fn system_stats_summarise_the_window() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (alice, _, _) = app
        .register("stats-a@example.com", "stats-a-password")
        .await;
    let (bob, _, _) = app
        .register("stats-b@example.com", "stats-b-password")
        .await;
    for (token, n) in [(&alice, 3), (&bob, 2)] {
        for i in 0..n {
            app.gql_ok(Some(token), CHAT, mock_chat(&format!("stats {i}")))
                .await;
        }
    }
    let q = "query($w: Int!) { systemStats(windowMinutes: $w) { windowMinutes calls failed errorRate p50LatencyMs p95LatencyMs activeUsers models { provider model calls failed tokens cost currency } providers { provider state calls failed errorRate lastSuccessAt } } }";
    let s = app.gql_ok(Some(&admin), q, json!({"w": 60})).await["systemStats"].clone();
    assert_eq!(s["calls"], 5);
    assert_eq!(s["failed"], 0);
    assert_eq!(s["errorRate"], 0.0);
    assert_eq!(s["activeUsers"], 2);
    assert!(s["p50LatencyMs"].as_i64().unwrap() <= s["p95LatencyMs"].as_i64().unwrap());
    let model = &s["models"][0];
    assert_eq!(
        (
            model["provider"].as_str(),
            model["model"].as_str(),
            model["calls"].as_i64()
        ),
        (Some("mock"), Some("mock-echo"), Some(5))
    );
    let records = app
        .sql_number("SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS n FROM ai_calls")
        .await;
    assert_eq!(
        model["cost"],
        records.to_string(),
        "the cost is the records' sum"
    );
    let providers: HashMap<&str, &Value> = s["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["provider"].as_str().unwrap(), p))
        .collect();
    assert_eq!(providers["mock"]["state"], "HEALTHY");
    assert!(providers["mock"]["lastSuccessAt"].is_string());

    assert_eq!(
        error_code(&app.gql(Some(&alice), q, json!({"w": 60})).await),
        "FORBIDDEN"
    );
    assert_eq!(
        error_code(&app.gql(Some(&admin), q, json!({"w": 0})).await),
        "BAD_USER_INPUT"
    );
}

/// Twenty subscriptions to every call, on four sockets, cost one read of the record per event:
/// every subscription gets the call's updates, and the read counter moves by the number of
/// events (the call's start and its end), not by the number of subscribers.
#[tokio::test(flavor = "multi_thread")]
async fn subscribers_of_one_event_share_one_read() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (user, _, _) = app
        .register("fanned@example.com", "fanned-out-password")
        .await;
    let mut sockets = Vec::new();
    for _ in 0..4 {
        let mut socket = GqlWs::connect(&app, Some(&admin)).await.unwrap();
        for id in 0..5 {
            socket
                .subscribe(
                    &id.to_string(),
                    "subscription { aiCallUpdated { id status } }",
                    json!({}),
                )
                .await;
        }
        sockets.push(socket);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let reads = "cloudbase_subscription_record_reads_total";
    let before = value(&scrape(&app).await, reads, &[]);

    app.gql_ok(Some(&user), CHAT, mock_chat("to many")).await;
    for socket in &mut sockets {
        let mut finished = 0;
        while finished < 5 {
            let item = socket.next().await;
            assert_eq!(item["type"], "next", "{item}");
            if item["payload"]["data"]["aiCallUpdated"]["status"] == "SUCCEEDED" {
                finished += 1;
            }
        }
    }
    let after = value(&scrape(&app).await, reads, &[]);
    assert_eq!(
        after - before,
        2.0,
        "one read for each of the call's two events"
    );
}
