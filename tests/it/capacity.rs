//! Capacity: overload is refused fast, with a status and a time to come back.

use serde_json::json;

use crate::support::{TestApp, instance};
use crate::ws::GqlWs;

const SLOW_STREAM: &str = "subscription { chatStream(input: {provider: \"slow\", model: \"mock-echo\", message: \"one two three four five six\"}) { delta done } }";
const CHAT: &str = "mutation { chat(input: {provider: \"mock\", model: \"mock-fast\", message: \"hi\"}) { content } }";

/// Past `[chat] max_calls_in_flight`, a call is refused at once with `UNAVAILABLE`, HTTP 503 and
/// `Retry-After`, and nothing is recorded for it; when a slot frees up, calls go through again.
#[tokio::test(flavor = "multi_thread")]
async fn calls_past_the_in_flight_limit_get_a_fast_503() {
    let app = TestApp::spawn_with(|c| {
        c.chat.max_calls_in_flight = 2;
        c.plugins
            .insert("mock".into(), instance("mock", json!({}), &[]));
        c.plugins.insert(
            "slow".into(),
            instance("mock", json!({"delay_ms": 400}), &[]),
        );
    })
    .await;
    let token = app.admin_token().await;
    let mut sockets = Vec::new();
    for id in ["a", "b"] {
        let mut socket = GqlWs::connect(&app, Some(&token)).await.unwrap();
        socket.subscribe(id, SLOW_STREAM, json!({})).await;
        // The first delta means the call is admitted and running.
        let first = socket.next_item(id).await;
        assert_eq!(first["type"], "next", "{first}");
        sockets.push((id, socket));
    }
    let response = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(&token)
        .json(&json!({ "query": CHAT }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "UNAVAILABLE",
        "{body}"
    );
    assert_eq!(body["errors"][0]["extensions"]["retryAfterMs"], 1000);
    // The streams finish; then a call goes through.
    for (id, mut socket) in sockets {
        let (_, error) = socket.collect(id).await;
        assert!(error.is_none(), "{error:?}");
    }
    let data = app.gql_ok(Some(&token), CHAT, json!({})).await;
    assert!(data["chat"]["content"].is_string());
    let calls = app
        .gql_ok(
            Some(&token),
            "{ aiCalls { edges { node { status } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        calls["aiCalls"]["edges"].as_array().unwrap().len(),
        3,
        "the refused call left no record: {calls}"
    );
}
