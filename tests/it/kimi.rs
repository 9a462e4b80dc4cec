//! Kimi as Moonshot documents it, through the real server and the real `kimi` plugin against a
//! local upstream: each instance gets the list prices of its own platform (CNY on `cn`, USD on
//! `global`, whatever the instance is called), and a used-up balance is a billing failure with a
//! code of its own that is never retried and raises the `PROVIDER_FAILING` alert.

use std::time::Duration;

use serde_json::{Value, json};

use crate::chat::{chat_query, stream_query};
use crate::receivers::HttpReceiver;
use crate::support::{TestApp, error_code, instance};
use crate::upstream::{Dialect, Upstream};
use crate::ws::GqlWs;

const PRICES: &str = "query($p: String, $m: String) { prices(provider: $p, model: $m) { currency inputPerMtok cachedInputPerMtok outputPerMtok effectiveFrom note } }";

fn ask(provider: &str, message: &str) -> Value {
    json!({"input": {"provider": provider, "model": "kimi-k2-0905-preview", "message": message}})
}

#[tokio::test(flavor = "multi_thread")]
async fn each_instance_gets_the_list_prices_of_its_own_platform() {
    let upstream = Upstream::start(Dialect::Kimi).await;
    let base = upstream.base_url();
    let app = TestApp::spawn_with(move |c| {
        c.plugins.insert(
            "kimi".into(),
            instance("kimi", json!({"base_url": base}), &[("api_key", "HOME")]),
        );
        c.plugins.insert(
            "moonshot-intl".into(),
            instance(
                "kimi",
                json!({"region": "global", "base_url": base}),
                &[("api_key", "HOME")],
            ),
        );
    })
    .await;
    let admin = app.admin_token().await;
    let prices = |provider: &'static str| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let vars = json!({"p": provider, "m": "kimi-k2-0905-preview"});
            app.gql_ok(Some(&admin), PRICES, vars).await["prices"]
                .as_array()
                .unwrap()
                .clone()
        }
    };
    let cn = prices("kimi").await;
    assert_eq!(cn.len(), 1, "{cn:?}");
    assert_eq!(cn[0]["currency"], "CNY");
    assert_eq!(cn[0]["inputPerMtok"], "4000000");
    assert_eq!(cn[0]["outputPerMtok"], "16000000");
    let global = prices("moonshot-intl").await;
    assert_eq!(
        global.len(),
        1,
        "never the China platform's CNY rows: {global:?}"
    );
    assert_eq!(global[0]["currency"], "USD");
    assert_eq!(global[0]["inputPerMtok"], "600000");
    assert_eq!(global[0]["cachedInputPerMtok"], "150000");
    assert_eq!(global[0]["outputPerMtok"], "2500000");
    assert!(
        global[0]["note"]
            .as_str()
            .unwrap()
            .contains("platform.moonshot.ai"),
        "the row names its source: {global:?}"
    );

    // A call through the global instance is priced in USD.
    let (user, _, _) = app.register("intl@example.com", "intl-password").await;
    let call = app
        .gql_ok(Some(&user), &chat_query(), ask("moonshot-intl", "bonjour"))
        .await["chat"]["aiCall"]
        .clone();
    assert_eq!(call["priced"], true, "{call}");
    assert_eq!(call["currency"], "USD", "{call}");

    // Seeding again at the next start adds nothing.
    let before = app.sql_number("SELECT COUNT(*) AS n FROM prices").await;
    let mut app = app;
    app.restart_with(|_| {}).await;
    assert_eq!(
        app.sql_number("SELECT COUNT(*) AS n FROM prices").await,
        before
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_used_up_balance_is_a_billing_failure_never_retried_that_alerts() {
    let upstream = Upstream::start(Dialect::Kimi).await;
    let hook = HttpReceiver::start(200, "ok").await;
    let (base, hook_url) = (upstream.base_url(), hook.url("/alerts"));
    let app = TestApp::spawn_with(move |c| {
        let mut kimi = instance("kimi", json!({"base_url": base}), &[("api_key", "HOME")]);
        kimi.retries = 3;
        kimi.retry_backoff_ms = 1;
        c.plugins.insert("kimi".into(), kimi);
        c.plugins.insert(
            "ops-hook".into(),
            instance("webhook", json!({"url": hook_url}), &[]),
        );
        c.alerts.evaluate_interval_ms = 100;
    })
    .await;
    let admin = app.admin_token().await;
    // Five failures in a row would be needed for an outage; one billing refusal is enough.
    app.gql_ok(
        Some(&admin),
        "mutation($i: AlertRuleInput!) { createAlertRule(input: $i) { id } }",
        json!({"i": {
            "name": "Kimi down",
            "kind": "PROVIDER_FAILING",
            "params": {"consecutiveFailures": 5, "provider": "kimi"},
            "targets": [{"channel": "ops-hook"}],
            "cooldownSecs": 3600
        }}),
    )
    .await;
    let (user, _, _) = app.register("broke@example.com", "broke-password").await;

    let refused = app
        .gql(Some(&user), &chat_query(), ask("kimi", "NO_BALANCE hello"))
        .await;
    assert_eq!(error_code(&refused), "UPSTREAM_BILLING", "{refused}");
    let message = refused["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("exceeded_current_quota_error") && message.contains("account balance"),
        "Moonshot's type and words are kept: {message}"
    );
    assert_eq!(
        upstream.seen().len(),
        1,
        "a 429 for billing is not retried, though the instance retries 429s 3 times"
    );
    let failed = app
        .gql_ok(
            Some(&user),
            "{ aiCalls(filter: {status: FAILED}) { edges { node { errorCode } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        failed["aiCalls"]["edges"][0]["node"]["errorCode"],
        "UPSTREAM_BILLING"
    );

    // Streamed, the same: the host reads the 429 before any stream starts.
    let mut ws = GqlWs::connect(&app, Some(&user)).await.unwrap();
    ws.subscribe(
        "1",
        &stream_query(),
        json!({"input": {"provider": "kimi", "model": "kimi-k2-0905-preview", "message": "NO_BALANCE again"}}),
    )
    .await;
    let (items, error) = ws.collect("1").await;
    let seen = format!("{items:?} {error:?}");
    assert!(seen.contains("UPSTREAM_BILLING"), "{seen}");
    assert_eq!(upstream.seen().len(), 2, "not retried when streamed either");

    // The alert fires on the billing failure alone.
    for _ in 0..150 {
        if !hook.received().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent = hook.received();
    assert_eq!(sent.len(), 1, "one alert");
    assert!(sent[0].body.contains("billing"), "{}", sent[0].body);
}
