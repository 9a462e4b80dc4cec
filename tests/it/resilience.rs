//! Resilience on the call path: retries with backoff before the first byte, fallbacks with the
//! attempt chain recorded, and the opt-in per-user response cache.

use serde_json::json;

use crate::chat::{CALL_FIELDS, expected_cost, stream_chat};
use crate::support::{TestApp, error_code, instance};
use crate::upstream::{Dialect, Upstream};

async fn app_with(upstream: &Upstream, fallback: bool) -> TestApp {
    let base = upstream.base_url();
    TestApp::spawn_with(move |c| {
        let mut kimi = instance("kimi", json!({"base_url": base}), &[("api_key", "HOME")]);
        kimi.retry_backoff_ms = 5;
        c.plugins.insert("kimi".into(), kimi);
        let mut cached = instance("mock", json!({}), &[]);
        cached.cache_ttl_secs = Some(60);
        c.plugins.insert("mock".into(), cached);
        if fallback {
            c.chat.fallbacks.insert(
                "kimi/kimi-k2-0905-preview".into(),
                vec!["nope/none".into(), "mock/mock-echo".into()],
            );
        }
    })
    .await
}

fn ask(message: &str) -> serde_json::Value {
    json!({"input": {"provider": "kimi", "model": "kimi-k2-0905-preview", "message": message}})
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_are_retried_then_fail_cleanly() {
    let upstream = Upstream::start(Dialect::Kimi).await;
    let app = app_with(&upstream, false).await;
    let (user, _, user_id) = app.register("retry@example.com", "retry-password").await;
    let q = format!(
        "mutation($input: ChatInput!) {{ chat(input: $input) {{ content aiCall {{ {CALL_FIELDS} attempts }} }} }}"
    );

    upstream.fail_next(2, 500);
    let ok = app.gql_ok(Some(&user), &q, ask("third time lucky")).await;
    assert_eq!(ok["chat"]["aiCall"]["status"], "SUCCEEDED");
    assert_eq!(
        ok["chat"]["aiCall"]["attempts"][0]["httpAttempts"], 3,
        "two retries, then success"
    );
    assert_eq!(upstream.seen().len(), 3);

    upstream.fail_next(10, 503);
    let failed = app.gql(Some(&user), &q, ask("never")).await;
    assert_eq!(error_code(&failed), "UPSTREAM_FAILED", "{failed}");
    assert_eq!(
        upstream.seen().len(),
        3 + 3,
        "bounded: one try and two retries"
    );
    let record = app
        .gql_ok(
            Some(&user),
            &format!("{{ aiCalls(first: 1) {{ edges {{ node {{ {CALL_FIELDS} }} }} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(record["aiCalls"]["edges"][0]["node"]["status"], "FAILED");
    assert_eq!(
        record["aiCalls"]["edges"][0]["node"]["errorCode"],
        "UPSTREAM_FAILED"
    );
    upstream.fail_next(0, 500);

    // A stream is retried before its first byte too.
    upstream.fail_next(1, 502);
    let before = upstream.seen().len();
    let input = ask("stream after a hiccup")["input"].clone();
    let (text, last, _) = stream_chat(&app, &user, input).await;
    assert!(text.starts_with("Upstream says"));
    assert_eq!(last["aiCall"]["status"], "SUCCEEDED");
    assert_eq!(upstream.seen().len(), before + 2);

    // Bad input is never retried.
    let before = upstream.seen().len();
    let long = app.gql(Some(&user), &q, ask("TOO_LONG")).await;
    assert_eq!(error_code(&long), "BAD_USER_INPUT");
    assert_eq!(upstream.seen().len(), before + 1);

    // Each chat mutation is audited once, with its own outcome (written in its call's finish
    // transaction, not a second time after the field); the stream is no mutation.
    let admin = app.admin_token().await;
    let log = app
        .gql_ok(
            Some(&admin),
            "{ auditLog(filter: {field: \"chat\"}, first: 10) { edges { node { outcome actorId } } } }",
            json!({}),
        )
        .await;
    let rows = log["auditLog"]["edges"].as_array().unwrap();
    let outcomes: Vec<&str> = rows
        .iter()
        .map(|e| e["node"]["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["BAD_USER_INPUT", "UPSTREAM_FAILED", "OK"]);
    assert!(rows.iter().all(|e| e["node"]["actorId"] == user_id));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_model_falls_back_and_the_chain_is_recorded() {
    let upstream = Upstream::start(Dialect::Kimi).await;
    let app = app_with(&upstream, true).await;
    let (user, _, _) = app
        .register("fallback@example.com", "fallback-password")
        .await;
    let q = format!(
        "mutation($input: ChatInput!) {{ chat(input: $input) {{ content aiCall {{ {CALL_FIELDS} attempts }} }} }}"
    );
    upstream.fail_next(100, 500);
    let data = app.gql_ok(Some(&user), &q, ask("anyone there?")).await;
    let call = &data["chat"]["aiCall"];
    assert_eq!(data["chat"]["content"], "Mock reply: anyone there?");
    assert_eq!(
        call["provider"], "mock",
        "the record names the model that answered"
    );
    assert_eq!(call["model"], "mock-echo");
    let chain = call["attempts"].as_array().unwrap();
    assert_eq!(chain.len(), 2, "the unknown fallback is skipped: {chain:?}");
    assert_eq!(chain[0]["provider"], "kimi");
    assert_eq!(chain[0]["outcome"], "UPSTREAM_FAILED");
    assert_eq!(chain[1]["outcome"], "SUCCEEDED");
    assert_eq!(
        call["costMicros"].as_str().unwrap().parse::<i64>().unwrap(),
        expected_cost(&app, &user, call).await,
        "priced as the model that answered"
    );

    // Bad input does not fall back: the caller must fix the request.
    upstream.fail_next(0, 500);
    let bad = app.gql(Some(&user), &q, ask("TOO_LONG")).await;
    assert_eq!(error_code(&bad), "BAD_USER_INPUT");
}

#[tokio::test(flavor = "multi_thread")]
async fn cached_replies_are_free_and_per_user() {
    let upstream = Upstream::start(Dialect::Kimi).await;
    let app = app_with(&upstream, false).await;
    let (alice, _, _) = app
        .register("cache-a@example.com", "cache-a-password")
        .await;
    let (bob, _, _) = app
        .register("cache-b@example.com", "cache-b-password")
        .await;
    let input =
        json!({"input": {"provider": "mock", "model": "mock-echo", "message": "same question"}});
    let q = format!(
        "mutation($input: ChatInput!) {{ chat(input: $input) {{ content aiCall {{ {CALL_FIELDS} cached }} }} }}"
    );

    let first = app.gql_ok(Some(&alice), &q, input.clone()).await["chat"].clone();
    assert_eq!(first["aiCall"]["cached"], false);
    assert!(first["aiCall"]["costMicros"].as_str().unwrap() != "0");
    let second = app.gql_ok(Some(&alice), &q, input.clone()).await["chat"].clone();
    assert_eq!(second["aiCall"]["cached"], true);
    assert_eq!(second["aiCall"]["costMicros"], "0");
    assert_eq!(
        second["aiCall"]["completionTokens"], 0,
        "no provider tokens were used"
    );
    assert_eq!(second["content"], first["content"]);
    assert_ne!(
        second["aiCall"]["id"], first["aiCall"]["id"],
        "a hit is still recorded"
    );

    let other_user = app.gql_ok(Some(&bob), &q, input.clone()).await["chat"].clone();
    assert_eq!(
        other_user["aiCall"]["cached"], false,
        "the cache is scoped per user"
    );
    let other_question = app.gql_ok(Some(&alice), &q, json!({"input": {"provider": "mock", "model": "mock-echo", "message": "another question"}})).await;
    assert_eq!(other_question["chat"]["aiCall"]["cached"], false);

    let (text, last, _) = stream_chat(&app, &alice, input["input"].clone()).await;
    assert_eq!(
        text,
        first["content"].as_str().unwrap(),
        "a streamed hit replays the reply"
    );
    assert_eq!(last["aiCall"]["costMicros"], "0");

    // Providers that did not opt in are never cached.
    let kimi_q = ask("not cached");
    let k1 = app.gql_ok(Some(&alice), &q, kimi_q.clone()).await;
    let k2 = app.gql_ok(Some(&alice), &q, kimi_q).await;
    assert_eq!(k1["chat"]["aiCall"]["cached"], false);
    assert_eq!(k2["chat"]["aiCall"]["cached"], false);
}
