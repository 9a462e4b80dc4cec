//! Circuit breakers (issue 17, item 1): a provider that keeps failing is no longer called; its
//! calls fail over to the fallbacks at once (or get `UNAVAILABLE` with a retry time when there is
//! none), the state shows in `plugins`, `systemStats`, `/metrics` and `pluginStatusChanged`, a
//! `PROVIDER_FAILING` rule fires on it, and a probe closes it once the provider answers again.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::monitoring::{scrape, value};
use crate::receivers::HttpReceiver;
use crate::support::{TestApp, error_code, instance};
use crate::upstream::{Dialect, Upstream};
use crate::ws::GqlWs;

const CHAT: &str = "mutation($input: ChatInput!) { chat(input: $input) { aiCall { id status provider errorCode attempts } } }";

/// Seconds the breaker stays open.
const OPEN_SECS: u64 = 2;

async fn app_with(upstream: &Upstream, hook: &HttpReceiver) -> TestApp {
    let (base, hook) = (upstream.base_url(), hook.url("/alerts"));
    TestApp::spawn_with(move |c| {
        let mut kimi = instance("kimi", json!({"base_url": base}), &[("api_key", "HOME")]);
        kimi.retry_backoff_ms = 1;
        c.plugins.insert("kimi".into(), kimi);
        c.plugins.insert(
            "ops-hook".into(),
            instance("webhook", json!({"url": hook}), &[]),
        );
        c.chat.fallbacks.insert(
            "kimi/kimi-k2-0905-preview".into(),
            vec!["mock/mock-echo".into()],
        );
        c.chat.breaker.min_failures = 3;
        c.chat.breaker.failure_rate_percent = 50;
        c.chat.breaker.open_secs = OPEN_SECS;
        c.chat.breaker.half_open_probes = 1;
        c.alerts.evaluate_interval_ms = 100;
    })
    .await
}

fn ask(model: &str, message: &str) -> Value {
    json!({"input": {"provider": "kimi", "model": model, "message": message}})
}

const WITH_FALLBACK: &str = "kimi-k2-0905-preview";
const WITHOUT_FALLBACK: &str = "kimi-k2-turbo-preview";

async fn breaker_of(app: &TestApp, admin: &str) -> Value {
    let stats = app
        .gql_ok(
            Some(admin),
            "{ systemStats { providers { provider breaker { node state failures attempts openedAt retryAt lastError } } } }",
            json!({}),
        )
        .await;
    stats["systemStats"]["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["provider"] == "kimi")
        .map(|p| p["breaker"].clone())
        .expect("kimi in systemStats")
}

/// A chat that the breaker refuses: HTTP 503 with `Retry-After`, and `UNAVAILABLE` with
/// `retryAfterMs` in the body. Returns `retryAfterMs`.
async fn refused(app: &TestApp, token: &str, input: Value) -> i64 {
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("accept", "application/json")
        .bearer_auth(token)
        .json(&json!({ "query": CHAT, "variables": input }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=OPEN_SECS).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), "UNAVAILABLE", "{body}");
    body["errors"][0]["extensions"]["retryAfterMs"]
        .as_i64()
        .unwrap()
}

/// The next `pluginStatusChanged` event on `ws`.
async fn next_change(ws: &mut GqlWs) -> Value {
    let message = ws.next().await;
    assert_eq!(message["type"], "next", "{message}");
    message["payload"]["data"]["pluginStatusChanged"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_provider_is_cut_off_failed_over_at_once_and_probed_back() {
    let upstream = Upstream::start(Dialect::Kimi).await;
    let hook = HttpReceiver::start(200, "ok").await;
    let app = app_with(&upstream, &hook).await;
    let admin = app.admin_token().await;
    let (user, _, _) = app
        .register("breaker@example.com", "breaker-password")
        .await;
    app.gql_ok(
        Some(&admin),
        "mutation($i: AlertRuleInput!) { createAlertRule(input: $i) { id } }",
        json!({"i": {"name": "Kimi failing", "kind": "PROVIDER_FAILING", "params": {"provider": "kimi", "consecutiveFailures": 1000}, "targets": [{"channel": "ops-hook"}]}}),
    )
    .await;
    let mut ws = GqlWs::connect(&app, Some(&admin)).await.unwrap();
    ws.subscribe(
        "plugins",
        "subscription { pluginStatusChanged { name instance status breaker node reason } }",
        json!({}),
    )
    .await;
    // Subscriptions start on the next event; give it a moment to be in place.
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Closed: a success, then three failures (each after its retries), every one failed over.
    let ok = app
        .gql_ok(Some(&user), CHAT, ask(WITH_FALLBACK, "fine"))
        .await;
    assert_eq!(ok["chat"]["aiCall"]["provider"], "kimi");
    upstream.fail_next(1000, 503);
    for n in 0..3 {
        let r = app
            .gql_ok(Some(&user), CHAT, ask(WITH_FALLBACK, &format!("down {n}")))
            .await;
        let call = &r["chat"]["aiCall"];
        assert_eq!(call["status"], "SUCCEEDED", "{r}");
        assert_eq!(call["provider"], "mock", "fell back: {r}");
        assert_eq!(call["attempts"][0]["outcome"], "UPSTREAM_FAILED", "{r}");
    }
    let tried = upstream.seen().len();
    assert_eq!(
        tried,
        1 + 3 * 3,
        "one success, three failures of three tries each"
    );

    // Open: announced, with the node and the failure that opened it.
    let opened = next_change(&mut ws).await;
    assert_eq!(opened["instance"], "kimi", "{opened}");
    assert_eq!(opened["name"], "kimi", "{opened}");
    assert_eq!(opened["breaker"], "OPEN", "{opened}");
    assert_eq!(opened["status"], "LOADED", "{opened}");
    assert!(
        !opened["node"].as_str().unwrap_or("").is_empty(),
        "{opened}"
    );
    assert!(
        opened["reason"].as_str().unwrap().contains("503"),
        "{opened}"
    );

    // The next call does not reach the provider: straight to the fallback.
    let started = Instant::now();
    let r = app
        .gql_ok(Some(&user), CHAT, ask(WITH_FALLBACK, "skip it"))
        .await;
    let call = &r["chat"]["aiCall"];
    assert_eq!(call["provider"], "mock", "{r}");
    assert_eq!(call["attempts"][0]["outcome"], "CIRCUIT_OPEN", "{r}");
    assert_eq!(call["attempts"][0]["httpAttempts"], 0, "{r}");
    assert_eq!(upstream.seen().len(), tried, "the provider was not called");
    assert!(
        started.elapsed() < Duration::from_secs(OPEN_SECS),
        "failed over without waiting for the breaker"
    );
    // With no fallback: UNAVAILABLE at once, with when to retry, and recorded as such.
    let retry = refused(&app, &user, ask(WITHOUT_FALLBACK, "no fallback")).await;
    assert!(
        (1..=i64::try_from(OPEN_SECS * 1000).unwrap()).contains(&retry),
        "{retry}"
    );
    assert_eq!(upstream.seen().len(), tried, "the provider was not called");
    let last = app
        .gql_ok(
            Some(&user),
            "{ aiCalls(first: 1) { edges { node { status errorCode attempts } } } }",
            json!({}),
        )
        .await;
    let record = &last["aiCalls"]["edges"][0]["node"];
    assert_eq!(record["status"], "FAILED");
    assert_eq!(record["errorCode"], "UNAVAILABLE");
    assert_eq!(record["attempts"][0]["outcome"], "CIRCUIT_OPEN");

    // Seen by admins: systemStats, plugins and /metrics.
    let breaker = breaker_of(&app, &admin).await;
    assert_eq!(breaker["state"], "OPEN", "{breaker}");
    assert!(breaker["retryAt"].is_string(), "{breaker}");
    assert!(breaker["openedAt"].is_string(), "{breaker}");
    assert!(
        breaker["lastError"].as_str().unwrap().contains("503"),
        "{breaker}"
    );
    let plugins = app
        .gql_ok(Some(&admin), "{ plugins { instance breaker } }", json!({}))
        .await;
    let row = |name: &str| {
        plugins["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["instance"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(row("kimi")["breaker"], "OPEN", "{plugins}");
    assert_eq!(row("mock")["breaker"], "CLOSED", "{plugins}");
    assert!(row("ops-hook")["breaker"].is_null(), "notifiers have none");
    let metrics = scrape(&app).await;
    assert_eq!(
        value(
            &metrics,
            "cloudbase_provider_breaker_state",
            &[("instance", "kimi")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &metrics,
            "cloudbase_provider_breaker_rejected_total",
            &[("instance", "kimi")]
        ),
        2.0
    );
    // The PROVIDER_FAILING rule fired on the breaker (the consecutive-failure half is set high).
    let deadline = Instant::now() + Duration::from_secs(10);
    while hook.received().is_empty() {
        assert!(Instant::now() < deadline, "no alert for the open breaker");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let alerts = app
        .gql_ok(
            Some(&admin),
            "{ alerts { edges { node { state subject } } } }",
            json!({}),
        )
        .await;
    let alert = &alerts["alerts"]["edges"][0]["node"];
    assert_eq!(alert["state"], "FIRING", "{alerts}");
    assert!(
        alert["subject"]
            .as_str()
            .unwrap()
            .starts_with("breaker:kimi@"),
        "{alerts}"
    );

    // The provider is back; after the open time one probe goes through and closes it.
    upstream.fail_next(0, 503);
    tokio::time::sleep(Duration::from_secs(OPEN_SECS) + Duration::from_millis(200)).await;
    let r = app
        .gql_ok(Some(&user), CHAT, ask(WITH_FALLBACK, "back?"))
        .await;
    assert_eq!(
        r["chat"]["aiCall"]["provider"], "kimi",
        "the probe reached it: {r}"
    );
    let half = next_change(&mut ws).await;
    assert_eq!(half["breaker"], "HALF_OPEN", "{half}");
    let closed = next_change(&mut ws).await;
    assert_eq!(closed["breaker"], "CLOSED", "{closed}");
    assert_eq!(breaker_of(&app, &admin).await["state"], "CLOSED");
    let r = app
        .gql_ok(Some(&user), CHAT, ask(WITHOUT_FALLBACK, "all good"))
        .await;
    assert_eq!(r["chat"]["aiCall"]["status"], "SUCCEEDED", "{r}");
    // And the alert resolves.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let alerts = app
            .gql_ok(
                Some(&admin),
                "{ alerts { edges { node { state } } } }",
                json!({}),
            )
            .await;
        if alerts["alerts"]["edges"][0]["node"]["state"] == "RESOLVED" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the alert never resolved: {alerts}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_probe_opens_it_again_and_bad_input_never_counts() {
    let upstream = Upstream::start(Dialect::Kimi).await;
    let hook = HttpReceiver::start(200, "ok").await;
    let app = app_with(&upstream, &hook).await;
    let admin = app.admin_token().await;
    let (user, _, _) = app.register("probe@example.com", "probe-password").await;
    // Bad input is the caller's fault, not the provider's: many of them leave it closed.
    for _ in 0..5 {
        let bad = json!({"input": {"provider": "kimi", "model": WITHOUT_FALLBACK, "message": "x", "temperature": 5.0}});
        let r = app.gql(Some(&user), CHAT, bad).await;
        assert_eq!(error_code(&r), "BAD_USER_INPUT", "{r}");
    }
    assert_eq!(breaker_of(&app, &admin).await["state"], "CLOSED");

    upstream.fail_next(1000, 500);
    for n in 0..3 {
        let r = app
            .gql(
                Some(&user),
                CHAT,
                ask(WITHOUT_FALLBACK, &format!("fail {n}")),
            )
            .await;
        assert_eq!(error_code(&r), "UPSTREAM_FAILED", "{r}");
    }
    assert_eq!(breaker_of(&app, &admin).await["state"], "OPEN");
    tokio::time::sleep(Duration::from_secs(OPEN_SECS) + Duration::from_millis(200)).await;
    let before = upstream.seen().len();
    let r = app
        .gql(Some(&user), CHAT, ask(WITHOUT_FALLBACK, "probe"))
        .await;
    assert_eq!(
        error_code(&r),
        "UPSTREAM_FAILED",
        "the probe reached it and failed: {r}"
    );
    assert!(upstream.seen().len() > before);
    let breaker = breaker_of(&app, &admin).await;
    assert_eq!(breaker["state"], "OPEN", "open again: {breaker}");
    refused(&app, &user, ask(WITHOUT_FALLBACK, "still down")).await;
}
