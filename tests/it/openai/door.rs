//! `/v1` itself: errors in OpenAI's shape with the status each SDK expects, model names
//! (`provider/model`, bare ids, aliases), a key's model list and rate limits, upstream failures,
//! and what an attacker sends (no key, huge bodies, deep JSON, slow bodies).

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::{ask, complete, create_key, refused};
use crate::support::{TestApp, instance};
use crate::upstream::{Dialect, Upstream};

#[tokio::test(flavor = "multi_thread")]
async fn requests_are_refused_in_openai_shape_with_the_expected_status() {
    let app = TestApp::spawn_with(|c| {
        c.chat
            .model_aliases
            .insert("gpt-4o-mini".into(), "mock/mock-fast".into());
        // A second mock instance: `mock-fast` alone is then ambiguous.
        c.plugins
            .insert("mock".into(), instance("mock", json!({}), &[]));
        c.plugins
            .insert("twin".into(), instance("mock", json!({}), &[]));
    })
    .await;
    let (user, _, _) = app.register("door@example.com", "door-user-password").await;
    let (key, _) = create_key(&app, &user, json!({"name": "door"})).await;

    // No key, and a key that is not one.
    let none = app
        .client
        .post(app.url("/v1/chat/completions"))
        .json(&ask("mock/mock-fast", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused(none, 401).await["code"], "invalid_api_key");
    let bad = complete(&app, "cb-not-a-key", ask("mock/mock-fast", "hi")).await;
    assert_eq!(refused(bad, 401).await["code"], "invalid_api_key");

    // What cannot be honoured is a 400 naming the parameter.
    let mut two = ask("mock/mock-fast", "hi");
    two["n"] = json!(2);
    assert_eq!(
        refused(complete(&app, &key, two).await, 400).await["param"],
        "n"
    );
    let mut tools = ask("mock/mock-fast", "hi");
    tools["tools"] = json!([{"type": "function", "function": {"name": "f"}}]);
    assert_eq!(
        refused(complete(&app, &key, tools).await, 400).await["param"],
        "tools"
    );
    let mut hot = ask("mock/mock-fast", "hi");
    hot["temperature"] = json!(3.5);
    let e = refused(complete(&app, &key, hot).await, 400).await;
    assert_eq!(
        e["param"], "temperature",
        "the service's check, named the OpenAI way: {e}"
    );
    let image = json!({"model": "mock/mock-fast", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://127.0.0.1/x.png"}}]}]});
    assert_eq!(
        refused(complete(&app, &key, image).await, 400).await["param"],
        "messages[0].content[0]"
    );
    let broken = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(refused(broken, 400).await["type"], "invalid_request_error");

    // Model names: unknown (404), ambiguous bare id (400), unique bare id, alias.
    let unknown = complete(&app, &key, ask("nope/nope", "hi")).await;
    assert_eq!(refused(unknown, 404).await["code"], "model_not_found");
    let ambiguous = refused(complete(&app, &key, ask("mock-fast", "hi")).await, 400).await;
    assert!(
        ambiguous["message"]
            .as_str()
            .unwrap()
            .contains("twin/mock-fast"),
        "{ambiguous}"
    );
    let alias = complete(&app, &key, ask("gpt-4o-mini", "hi")).await;
    assert_eq!(alias.status(), 200);
    let call_id = alias.headers()["x-cloudbase-call-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let cost = alias.headers()["x-cloudbase-cost-micros"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = alias.json().await.unwrap();
    assert_eq!(body["model"], "gpt-4o-mini", "the name the client sent");
    assert_eq!(body["choices"][0]["message"]["content"], "Mock reply: hi");
    assert_eq!(body["id"], format!("chatcmpl-{call_id}"));
    let stored = app
        .gql_ok(
            Some(&user),
            "query($id: ID!) { aiCall(id: $id) { provider model costMicros } }",
            json!({"id": call_id}),
        )
        .await;
    assert_eq!(
        stored["aiCall"]["provider"], "mock",
        "the alias's target answered"
    );
    assert_eq!(stored["aiCall"]["model"], "mock-fast");
    assert_eq!(
        stored["aiCall"]["costMicros"],
        cost.as_str(),
        "the header is the record's cost"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_keys_models_and_rate_limits_hold_on_v1() {
    let app = TestApp::spawn().await;
    let (user, _, _) = app
        .register("limits@example.com", "limits-user-password")
        .await;
    let (key, record) = create_key(
        &app,
        &user,
        json!({"name": "narrow", "allowedModels": ["mock/mock-fast"], "requestsPerMinute": 2}),
    )
    .await;
    assert_eq!(record["allowedModels"], json!(["mock/mock-fast"]));

    let listed: Value = app
        .client
        .get(app.url("/v1/models"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["object"], "list");
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["mock/mock-fast"], "only what the key may call");
    let other = app
        .client
        .get(app.url("/v1/models/mock/mock-echo"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(refused(other, 404).await["code"], "model_not_found");

    let forbidden = complete(&app, &key, ask("mock/mock-echo", "hi")).await;
    assert_eq!(refused(forbidden, 403).await["code"], "model_not_allowed");

    // Two requests a minute for this key (the refused one above was not admitted).
    for _ in 0..2 {
        assert_eq!(
            complete(&app, &key, ask("mock/mock-fast", "hi"))
                .await
                .status(),
            200
        );
    }
    let limited = complete(&app, &key, ask("mock/mock-fast", "hi")).await;
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(refused(limited, 429).await["code"], "rate_limit_exceeded");

    // The key's limit is the key's, not its owner's: the owner's session still chats.
    let own = app
        .gql(
            Some(&user),
            "mutation { chat(input: {provider: \"mock\", model: \"mock-fast\", message: \"hi\"}) { content } }",
            json!({}),
        )
        .await;
    assert!(own.get("errors").is_none(), "{own}");
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_failures_are_502_and_recorded() {
    let upstream = Upstream::start(Dialect::OpenAi).await;
    let base = upstream.base_url();
    let app = TestApp::spawn_with(move |c| {
        let mut local = instance(
            "openai-compatible",
            json!({"base_url": base, "models": [{"id": "up-model"}]}),
            &[],
        );
        local.retry_backoff_ms = 5;
        c.plugins.insert("local".into(), local);
    })
    .await;
    let (user, _, _) = app.register("fail@example.com", "fail-user-password").await;
    let (key, _) = create_key(&app, &user, json!({"name": "fail"})).await;
    upstream.fail_next(10, 503);
    let plain = complete(&app, &key, ask("local/up-model", "hi")).await;
    let call_id = plain.headers().get("x-cloudbase-call-id").cloned();
    assert!(call_id.is_none(), "no record id on a refusal header");
    assert_eq!(refused(plain, 502).await["code"], "upstream_error");
    let mut streamed = ask("local/up-model", "hi");
    streamed["stream"] = json!(true);
    let failed = complete(&app, &key, streamed).await;
    assert_eq!(
        refused(failed, 502).await["type"],
        "api_error",
        "a stream that fails before its first byte is a plain error"
    );
    upstream.fail_next(0, 500);
    let calls = app
        .gql_ok(
            Some(&user),
            "{ aiCalls(first: 5) { edges { node { status errorCode apiKeyId } } } }",
            json!({}),
        )
        .await;
    let edges = calls["aiCalls"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 2);
    for e in edges {
        assert_eq!(e["node"]["status"], "FAILED");
        assert_eq!(e["node"]["errorCode"], "UPSTREAM_FAILED");
        assert!(e["node"]["apiKeyId"].is_string());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn what_an_attacker_sends_to_v1_is_refused_cleanly() {
    let app = TestApp::spawn_with(|c| {
        c.http.max_body_bytes = 64 * 1024;
        c.http.body_read_timeout_secs = 1;
    })
    .await;
    let (user, _, _) = app
        .register("attack@example.com", "attack-user-password")
        .await;
    let (key, _) = create_key(&app, &user, json!({"name": "attack"})).await;

    // Too large: 413, before anything is parsed.
    let huge = ask("mock/mock-fast", &"x".repeat(100 * 1024));
    assert_eq!(complete(&app, &key, huge).await.status(), 413);
    // Deep JSON: the parser's depth limit, a 400.
    let deep = format!(
        r#"{{"model":"mock/mock-fast","messages":[{{"role":"user","content":"x"}}],"metadata":{}{}}}"#,
        "[".repeat(20_000),
        "]".repeat(20_000)
    );
    let response = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused(response, 400).await["type"],
        "invalid_request_error"
    );
    // A stale key and a key-shaped token that is not one get the same 401.
    let stale = complete(&app, &format!("{key}x"), ask("mock/mock-fast", "hi")).await;
    assert_eq!(refused(stale, 401).await["message"], "invalid API key");

    // A slow body: 408 after the body deadline, and the server serves others meanwhile.
    let mut slow = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"model\""
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let ok = complete(&app, &key, ask("mock/mock-fast", "meanwhile")).await;
    assert_eq!(ok.status(), 200);
    let mut answer = vec![0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        use tokio::io::AsyncReadExt;
        slow.read(&mut answer).await
    })
    .await
    .expect("answered within the body deadline")
    .unwrap();
    let text = String::from_utf8_lossy(&answer[..read]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"error\""), "in OpenAI's shape: {text}");

    // No record was left by any refused request: only the one call that was made.
    let calls = app
        .gql_ok(
            Some(&user),
            "{ aiCalls(first: 10) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(calls["aiCalls"]["edges"].as_array().unwrap().len(), 1);
}
