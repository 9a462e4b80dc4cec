//! The official SDKs as clients, unchanged but for the base URL and the key: the `openai` npm
//! package (whose raw bodies are also validated against OpenAI's own OpenAPI schema), the
//! `openai` PyPI package, and every example `docs/openai-compatible.md` shows (Python, Node, curl
//! and LangChain). Then the records their calls left: priced exactly, streamed equal to plain,
//! and a stream closed midway `CANCELLED`.

use std::time::Duration;

use serde_json::{Value, json};

use super::create_key;
use crate::chat::{CALL_FIELDS, expected_cost};
use crate::support::{
    TestApp, harness_dir, instance, npm_install, python_venv, run_harness, run_node_harness,
};
use crate::upstream::{Dialect, Upstream};

/// A server with the mock provider and an OpenAI-compatible instance `local` on a local
/// upstream, both priced.
async fn app_with_upstream(upstream: &Upstream) -> TestApp {
    let base = upstream.base_url();
    let app = TestApp::spawn_with(move |c| {
        // mock-echo streams a delta every 40 ms, so a stream can be closed midway.
        c.plugins.insert(
            "mock".into(),
            instance("mock", json!({"delay_ms": 40}), &[]),
        );
        c.plugins.insert(
            "local".into(),
            instance(
                "openai-compatible",
                json!({"base_url": base, "models": [{"id": "up-model"}]}),
                &[],
            ),
        );
    })
    .await;
    let admin = app.admin_token().await;
    app.gql_ok(
        Some(&admin),
        "mutation($i: AddPriceInput!) { addPrice(input: $i) { id } }",
        json!({"i": {"provider": "local", "model": "up-model", "input": "2.00", "cachedInput": "0.50", "output": "8.00", "currency": "CNY", "effectiveFrom": "2020-01-01T00:00:00Z"}}),
    )
    .await;
    app
}

/// The `RESULT {...}` line a harness printed.
fn result_line(stdout: &str) -> Value {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line in\n{stdout}"));
    serde_json::from_str(line).unwrap()
}

async fn record(app: &TestApp, token: &str, id: &str) -> Value {
    app.gql_ok(
        Some(token),
        &format!("query($id: ID!) {{ aiCall(id: $id) {{ {CALL_FIELDS} apiKeyId }} }}"),
        json!({ "id": id }),
    )
    .await["aiCall"]
        .clone()
}

/// Every call a harness reported is recorded with the key, priced at the price in force for the
/// usage the client saw; streamed costs what plain costs; the stream closed midway is
/// `CANCELLED`.
async fn check_records(app: &TestApp, token: &str, key_id: &str, result: &Value) {
    let calls = result["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 4, "plain and streamed, two models: {result}");
    let mut cost_by_model = std::collections::BTreeMap::new();
    for call in calls {
        let r = record(app, token, call["id"].as_str().unwrap()).await;
        assert_eq!(r["status"], "SUCCEEDED", "{r}");
        assert_eq!(r["apiKeyId"], key_id);
        assert_eq!(r["stream"], call["mode"] == "stream");
        assert_eq!(r["promptTokens"], call["usage"]["prompt_tokens"], "{r}");
        assert_eq!(
            r["completionTokens"], call["usage"]["completion_tokens"],
            "{r}"
        );
        assert_eq!(
            r["cachedPromptTokens"], call["usage"]["cached_tokens"],
            "{r}"
        );
        let cost: i64 = r["costMicros"].as_str().unwrap().parse().unwrap();
        assert!(cost > 0, "{r}");
        assert_eq!(cost, expected_cost(app, token, &r).await, "{r}");
        let previous = cost_by_model.insert(call["model"].as_str().unwrap().to_owned(), cost);
        if let Some(plain) = previous {
            assert_eq!(plain, cost, "streamed costs what plain costs: {r}");
        }
    }
    let cancelled = result["cancelled"].as_str().expect("a cancelled call id");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = record(app, token, cancelled).await;
        if r["status"] == "CANCELLED" {
            assert_eq!(r["apiKeyId"], key_id);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a stream closed midway ends CANCELLED: {r}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_official_sdks_and_the_documented_examples_work_unchanged() {
    let upstream = Upstream::start(Dialect::OpenAi).await;
    let app = app_with_upstream(&upstream).await;
    let (user, _, _) = app.register("sdk@example.com", "sdk-user-password").await;
    let (key, record) = create_key(&app, &user, json!({"name": "sdk"})).await;
    let key_id = record["id"].as_str().unwrap().to_owned();
    let (poor, _) = create_key(
        &app,
        &user,
        json!({"name": "poor", "budget": {"period": "MONTH", "currency": "CNY", "limitMicros": "1"}}),
    )
    .await;
    let config = json!({
        "baseURL": app.url("/v1"),
        "key": key,
        "poorKey": poor,
        "badKey": "cb-this-is-not-a-key",
        "models": ["mock/mock-fast", "local/up-model"],
        "slowModel": "mock/mock-echo",
    })
    .to_string();

    let node = run_node_harness("openai-sdk", "openai", "check.mjs", vec![config.clone()]).await;
    check_records(&app, &user, &key_id, &result_line(&node)).await;

    let dir = harness_dir("openai-sdk");
    let python = python_venv(&dir).await;
    let py = run_harness(&dir, python.clone(), vec!["check.py".into(), config]).await;
    check_records(&app, &user, &key_id, &result_line(&py)).await;

    // The guide's examples, as written but for the server's address.
    npm_install(&dir, "openai").await;
    let docs = harness_dir("../docs/openai-compatible.md");
    let base = format!("http://{}", app.addr);
    let ran = run_harness(
        &dir,
        python,
        vec!["run_docs.py".into(), docs.display().to_string(), base, key],
    )
    .await;
    for kind in ["(python)", "(node)", "(sh)"] {
        assert!(ran.contains(kind), "an example of each kind ran: {ran}");
    }
}
