//! Users' webhooks that answer with a redirect: never followed, a failed delivery saying so.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::receivers::HttpReceiver;
use crate::support::{TestApp, instance};

/// A loopback endpoint that answers every POST with a redirect to `location`: `302 Found` on
/// `/found/…`, `307 Temporary Redirect` (which keeps the method and body) elsewhere. Counts them.
async fn redirector(location: String) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    use axum::http::{StatusCode, Uri, header};
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    let router = axum::Router::new().route(
        "/{*path}",
        axum::routing::post(move |uri: Uri| {
            counted.fetch_add(1, Ordering::SeqCst);
            let status = match uri.path().starts_with("/found/") {
                true => StatusCode::FOUND,
                false => StatusCode::TEMPORARY_REDIRECT,
            };
            let location = location.clone();
            async move { (status, [(header::LOCATION, location)]) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (addr, hits)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_users_webhook_that_redirects_is_a_failed_delivery() {
    // The service a redirect would lead to, and the admin's own channel.
    let internal = HttpReceiver::start(200, "ok").await;
    let ops = HttpReceiver::start(200, "ok").await;
    let (redirect, hits) = redirector(internal.url("/internal/admin")).await;
    let app = TestApp::spawn_with(|c| {
        c.plugins.insert(
            "ops-hook".into(),
            instance("webhook", json!({"url": ops.url("/alerts")}), &[]),
        );
        c.alerts.evaluate_interval_ms = 100;
        c.alerts.max_delivery_attempts = 1;
        // The receivers are on loopback; the redirect must not be followed even so.
        c.alerts.allow_private_targets = true;
    })
    .await;
    let admin = app.admin_token().await;
    let (user, _, user_id) = app
        .register("redirect@example.com", "redirect-password")
        .await;
    app.gql_ok(
        Some(&admin),
        "mutation($i: CreateBudgetInput!) { createBudget(input: $i) { id } }",
        json!({"i": {"userId": user_id, "period": "MONTH", "currency": "CNY", "limitMicros": "1000000000"}}),
    )
    .await;
    for (threshold, path) in [(50, "found/hook"), (55, "temporary/hook")] {
        app.gql_ok(
            Some(&user),
            "mutation($t: Int!, $a: String!) { createMyBudgetAlert(thresholdPercent: $t, channel: WEBHOOK, address: $a) { id } }",
            json!({"t": threshold, "a": format!("http://{redirect}/{path}")}),
        )
        .await;
    }
    app.sql("UPDATE budgets SET spent_micros = 600000000").await;

    let query = "{ alerts { edges { node { deliveries { status attempts lastError } } } } }";
    let mut deliveries = Vec::new();
    for _ in 0..150 {
        let data = app.gql_ok(Some(&user), query, json!({})).await;
        deliveries = data["alerts"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|e| e["node"]["deliveries"].as_array().unwrap().clone())
            .collect::<Vec<_>>();
        // Settled: neither waiting for an attempt nor in the middle of one.
        let settled = |d: &Value| d["status"] != "PENDING" && d["status"] != "SENDING";
        if deliveries.len() == 2 && deliveries.iter().all(settled) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(deliveries.len(), 2, "{deliveries:?}");
    let mut codes = Vec::new();
    for delivery in &deliveries {
        assert_eq!(delivery["status"], "FAILED", "{delivery}");
        let error = delivery["lastError"].as_str().unwrap_or_default();
        assert!(error.contains("redirects are not followed"), "{delivery}");
        codes.extend(
            ["302", "307"]
                .into_iter()
                .filter(|c| error.contains(&format!("HTTP {c}"))),
        );
    }
    codes.sort_unstable();
    assert_eq!(codes, ["302", "307"], "{deliveries:?}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "each webhook was called once"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        internal.received().is_empty(),
        "the redirect was not followed: {:?}",
        internal.received()
    );
}
