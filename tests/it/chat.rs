//! AI calls through the real server: plain and streamed, records and prices, validation,
//! cancellation, and isolation between users.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{TestApp, error_code, instance};
use crate::ws::GqlWs;

pub const CALL_FIELDS: &str = "id status startedAt provider model stream promptTokens cachedPromptTokens completionTokens usageSource costMicros currency priced latencyMs upstreamMs ttftMs errorCode errorMessage conversationId";

pub fn chat_query() -> String {
    format!(
        "mutation($input: ChatInput!) {{ chat(input: $input) {{ content reasoning finishReason aiCall {{ {CALL_FIELDS} }} }} }}"
    )
}

/// A `chat` with `variables`, posted as `token` to `url` on a task of its own: its answer.
pub fn spawn_chat(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    variables: Value,
) -> tokio::task::JoinHandle<Value> {
    let (client, url, token) = (client.clone(), url.to_owned(), token.to_owned());
    tokio::spawn(async move {
        client
            .post(url)
            .bearer_auth(token)
            .json(&json!({"query": chat_query(), "variables": variables}))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    })
}

pub fn stream_query() -> String {
    format!(
        "subscription($input: ChatInput!) {{ chatStream(input: $input) {{ aiCallId delta reasoningDelta done finishReason aiCall {{ {CALL_FIELDS} }} }} }}"
    )
}

/// The cost the price table says a record should have: the price in force when the call started,
/// (p - c)·in + c·cached + o·out per 1M tokens, rounded half up once; 0 with no price.
pub async fn expected_cost(app: &TestApp, token: &str, call: &Value) -> i64 {
    let prices = app
        .gql_ok(Some(token), "query($p: String, $m: String) { prices(provider: $p, model: $m) { inputPerMtok cachedInputPerMtok outputPerMtok effectiveFrom } }", json!({"p": call["provider"], "m": call["model"]}))
        .await;
    let started = call["startedAt"]
        .as_str()
        .expect("startedAt in the selection");
    let in_force = prices["prices"].as_array().unwrap().iter().find(|p| {
        // RFC 3339 UTC strings of one format compare in time order.
        p["effectiveFrom"].as_str().unwrap() <= started
    });
    let Some(price) = in_force else {
        assert_eq!(
            call["priced"], false,
            "no price in force, yet priced: {call}"
        );
        return 0;
    };
    let n = |v: &Value| v.as_str().unwrap().parse::<i128>().unwrap();
    let t = |k: &str| i128::from(call[k].as_i64().unwrap());
    let total = (t("promptTokens") - t("cachedPromptTokens")) * n(&price["inputPerMtok"])
        + t("cachedPromptTokens") * n(&price["cachedInputPerMtok"])
        + t("completionTokens") * n(&price["outputPerMtok"]);
    i64::try_from((total + 500_000) / 1_000_000).unwrap()
}

/// Runs `chatStream` over WebSocket and returns (concatenated text, last item, all items).
pub async fn stream_chat(app: &TestApp, token: &str, input: Value) -> (String, Value, Vec<Value>) {
    let mut ws = GqlWs::connect(app, Some(token)).await.expect("ws connect");
    ws.subscribe("1", &stream_query(), json!({ "input": input }))
        .await;
    let (items, error) = ws.collect("1").await;
    assert!(error.is_none(), "stream error: {error:?}");
    for item in &items {
        assert!(item.get("errors").is_none(), "stream item error: {item}");
    }
    let text: String = items
        .iter()
        .map(|i| {
            i["data"]["chatStream"]["delta"]
                .as_str()
                .unwrap_or_default()
        })
        .collect();
    let last = items.last().expect("at least one item")["data"]["chatStream"].clone();
    (text, last, items)
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_with_the_mock_is_recorded_and_priced() {
    let app = TestApp::spawn().await;
    let (token, _, user_id) = app
        .register("chatter@example.com", "chatter-password")
        .await;
    let data = app
        .gql_ok(Some(&token), &chat_query(), json!({"input": {"provider": "mock", "model": "mock-echo", "message": "hello there, 世界"}}))
        .await;
    let chat = &data["chat"];
    assert_eq!(chat["content"], "Mock reply: hello there, 世界");
    assert_eq!(chat["finishReason"], "stop");
    let call = &chat["aiCall"];
    assert_eq!(call["status"], "SUCCEEDED");
    assert_eq!(call["stream"], false);
    assert_eq!(call["usageSource"], "REPORTED");
    assert!(
        call["promptTokens"].as_i64().unwrap() > 0
            && call["completionTokens"].as_i64().unwrap() > 0
    );
    assert_eq!(call["priced"], true);
    assert_eq!(call["currency"], "CNY");
    let cost: i64 = call["costMicros"].as_str().unwrap().parse().unwrap();
    assert!(cost > 0, "the seeded mock price makes a visible cost");
    assert_eq!(cost, expected_cost(&app, &token, call).await);

    // The record is readable afterwards, by its owner.
    let id = call["id"].as_str().unwrap();
    let again = app
        .gql_ok(
            Some(&token),
            &format!("query($id: ID!) {{ aiCall(id: $id) {{ {CALL_FIELDS} userId }} }}"),
            json!({"id": id}),
        )
        .await;
    assert_eq!(again["aiCall"]["costMicros"], call["costMicros"]);
    assert_eq!(again["aiCall"]["userId"], user_id);
}

#[tokio::test(flavor = "multi_thread")]
async fn streamed_and_plain_calls_cost_the_same() {
    let app = TestApp::spawn().await;
    let (token, _, _) = app
        .register("streamer@example.com", "streamer-password")
        .await;
    let input = json!({"provider": "mock", "model": "mock-echo", "message": "count these tokens, please: one two three"});
    let plain = app
        .gql_ok(Some(&token), &chat_query(), json!({ "input": input }))
        .await["chat"]
        .clone();
    let (text, last, items) = stream_chat(&app, &token, input).await;
    assert!(items.len() > 3, "the reply arrives in several deltas");
    assert_eq!(
        text,
        plain["content"].as_str().unwrap(),
        "the deltas add up to the same reply"
    );
    assert_eq!(last["done"], true);
    let streamed = &last["aiCall"];
    assert_eq!(streamed["stream"], true);
    assert_eq!(streamed["status"], "SUCCEEDED");
    for key in [
        "promptTokens",
        "cachedPromptTokens",
        "completionTokens",
        "costMicros",
        "usageSource",
        "currency",
    ] {
        assert_eq!(
            streamed[key], plain["aiCall"][key],
            "{key} differs between streamed and plain"
        );
    }
    assert!(
        streamed["ttftMs"].is_i64(),
        "time to first token is recorded"
    );
    assert_eq!(
        items
            .iter()
            .map(|i| i["data"]["chatStream"]["aiCallId"].to_string())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        1,
        "every item names the same call"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_chat_input_is_refused_before_any_call() {
    let app = TestApp::spawn().await;
    let (token, _, _) = app
        .register("careless@example.com", "careless-password")
        .await;
    let cases = [
        (
            json!({"provider": "nope", "message": "hi"}),
            "input.provider",
        ),
        (
            json!({"provider": "mock", "model": "gpt-99", "message": "hi"}),
            "input.model",
        ),
        (
            json!({"provider": "mock", "model": "mock-echo", "message": "   "}),
            "input.message",
        ),
        (
            json!({"provider": "mock", "model": "mock-echo", "messages": []}),
            "input.messages",
        ),
        (
            json!({"provider": "mock", "model": "mock-echo", "message": "hi", "temperature": 3.5}),
            "input.temperature",
        ),
        (
            json!({"provider": "mock", "model": "mock-echo", "message": "hi", "topP": 0}),
            "input.topP",
        ),
        (
            json!({"provider": "mock", "model": "mock-echo", "message": "hi", "maxTokens": 0}),
            "input.maxTokens",
        ),
        (
            json!({"provider": "mock", "model": "mock-echo", "message": "hi", "stop": ["a", "b", "c", "d", "e"]}),
            "input.stop",
        ),
        (
            json!({"provider": "mock", "model": "mock-echo"}),
            "input.message",
        ),
    ];
    for (input, field) in cases {
        let body = app
            .gql(Some(&token), &chat_query(), json!({ "input": input }))
            .await;
        assert_eq!(error_code(&body), "BAD_USER_INPUT", "{input}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["field"], field,
            "{input}: {body}"
        );
    }
    let calls = app
        .gql_ok(
            Some(&token),
            "{ aiCalls { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        calls["aiCalls"]["edges"].as_array().unwrap().len(),
        0,
        "nothing was called or recorded"
    );
    let anonymous = app
        .gql(None, &chat_query(), json!({"input": {"message": "hi"}}))
        .await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
}

/// The user's latest call once it is no longer `PENDING` (waiting up to 10 s for it).
async fn latest_call_finished(app: &TestApp, token: &str, what: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let calls = app
            .gql_ok(
                Some(token),
                &format!("{{ aiCalls {{ edges {{ node {{ {CALL_FIELDS} }} }} }} }}"),
                json!({}),
            )
            .await;
        let node = calls["aiCalls"]["edges"][0]["node"].clone();
        if node["status"] != "PENDING" {
            return node;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} was never finished: {node}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_goes_away_leaves_a_cancelled_record() {
    let app = TestApp::spawn_with(|c| {
        c.plugins.insert(
            "slowmock".into(),
            instance("mock", json!({"delay_ms": 150}), &[]),
        );
    })
    .await;
    let (token, _, _) = app
        .register("quitter@example.com", "quitter-password")
        .await;
    let mut ws = GqlWs::connect(&app, Some(&token)).await.unwrap();
    let input = json!({"provider": "slowmock", "model": "mock-echo", "message": "a long answer that takes a while to stream out"});
    ws.subscribe("1", &stream_query(), json!({ "input": input }))
        .await;
    let first = ws.next().await;
    assert_eq!(first["type"], "next", "{first}");
    ws.drop_connection().await;

    let call = latest_call_finished(&app, &token, "the call").await;
    assert_eq!(call["status"], "CANCELLED");
    assert!(
        call["completionTokens"].as_i64().unwrap() > 0,
        "the part that was streamed is accounted: {call}"
    );
    assert_eq!(call["usageSource"], "ESTIMATED");
    assert_eq!(
        call["costMicros"].as_str().unwrap().parse::<i64>().unwrap(),
        expected_cost(&app, &token, &call).await
    );
}

/// A call whose client goes away before anything comes back (a plain call's HTTP request that
/// times out, a stream's socket dropped before its first event) is finished `CANCELLED` at once,
/// its prompt estimated and priced, and its budget reservation released: never left `PENDING`,
/// holding budget room, until the sweep of interrupted calls (15 minutes by default).
#[tokio::test(flavor = "multi_thread")]
async fn a_call_whose_client_leaves_before_any_answer_is_cancelled_and_frees_its_budget() {
    let app = TestApp::spawn_with(|c| {
        c.plugins.insert(
            "hangmock".into(),
            instance(
                "mock",
                json!({"fault_injection": true, "hang_ms": 4000}),
                &[],
            ),
        );
    })
    .await;
    let admin = app.admin_token().await;
    app.gql_ok(Some(&admin), "mutation($i: AddPriceInput!) { addPrice(input: $i) { id } }", json!({"i": {"provider": "hangmock", "model": "mock-fault-hang", "input": "3.00", "cachedInput": "1.00", "output": "7.00", "currency": "CNY", "effectiveFrom": "2020-01-01T00:00:00Z"}})).await;
    let (token, _, user_id) = app
        .register("leaver@example.com", "leaver-password-1")
        .await;
    app.gql_ok(
        Some(&admin),
        "mutation($i: CreateBudgetInput!) { createBudget(input: $i) { id } }",
        json!({"i": {"userId": user_id, "period": "TOTAL", "currency": "CNY", "limitMicros": "100000000"}}),
    )
    .await;
    let input = json!({"provider": "hangmock", "model": "mock-fault-hang", "message": "a question nobody waits for"});
    let pending = async || {
        app.sql_number("SELECT COUNT(*) AS n FROM ai_calls WHERE status = 'PENDING'")
            .await
    };
    // Once a call is `PENDING` (admitted, its budget reserved).
    let started = async || {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while pending().await == 0 {
            assert!(tokio::time::Instant::now() < deadline, "never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };

    // A plain call over HTTP whose client gives up while the provider hangs.
    let plain = tokio::spawn({
        let (url, token, input) = (app.url("/graphql"), token.clone(), input.clone());
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .timeout(Duration::from_millis(1500))
                .json(&json!({"query": "mutation($input: ChatInput!) { chat(input: $input) { content } }", "variables": {"input": input}}))
                .send()
                .await
        }
    });
    started().await;
    let call = latest_call_finished(&app, &token, "the plain call").await;
    assert!(plain.await.unwrap().is_err(), "the client gave up");
    // A stream whose socket is dropped before its first event.
    let mut ws = GqlWs::connect(&app, Some(&token)).await.unwrap();
    ws.subscribe("1", &stream_query(), json!({ "input": input }))
        .await;
    started().await;
    ws.drop_connection().await;
    let streamed = latest_call_finished(&app, &token, "the stream").await;

    for call in [&call, &streamed] {
        assert_eq!(call["status"], "CANCELLED", "{call}");
        assert_eq!(call["usageSource"], "ESTIMATED", "{call}");
        assert!(call["promptTokens"].as_i64().unwrap() > 0, "{call}");
        assert_eq!(call["completionTokens"], 0, "{call}");
        let cost = call["costMicros"].as_str().unwrap().parse::<i64>().unwrap();
        assert!(cost > 0, "its prompt is priced: {call}");
        assert_eq!(cost, expected_cost(&app, &token, call).await);
    }
    assert_eq!(streamed["stream"], true);
    // Nothing is left reserved, and the budget has spent exactly what the two records cost.
    app.assert_budgets_settled().await;
    assert_eq!(pending().await, 0);
}

/// On PostgreSQL a call's `PENDING` insert commits without waiting for the disk, so a database
/// crash mid-call can lose the row. Simulated here by deleting it while the call streams: the
/// finish writes it again, and the call ends recorded, priced and counted as if nothing happened.
#[tokio::test(flavor = "multi_thread")]
async fn a_call_whose_pending_record_was_lost_is_recorded_when_it_finishes() {
    let app = TestApp::spawn_with(|c| {
        c.plugins.insert(
            "slowmock".into(),
            instance("mock", json!({"delay_ms": 100}), &[]),
        );
    })
    .await;
    let admin = app.admin_token().await;
    app.gql_ok(Some(&admin), "mutation($i: AddPriceInput!) { addPrice(input: $i) { id } }", json!({"i": {"provider": "slowmock", "model": "mock-echo", "input": "3.00", "cachedInput": "1.00", "output": "7.00", "currency": "CNY", "effectiveFrom": "2020-01-01T00:00:00Z"}})).await;
    let (token, _, _) = app.register("lost@example.com", "lost-row-password").await;
    let mut ws = GqlWs::connect(&app, Some(&token)).await.unwrap();
    let input =
        json!({"provider": "slowmock", "model": "mock-echo", "message": "one two three four"});
    ws.subscribe("1", &stream_query(), json!({ "input": input }))
        .await;
    let first = ws.next().await;
    assert_eq!(first["type"], "next", "{first}");
    let call_id = first["payload"]["data"]["chatStream"]["aiCallId"]
        .as_str()
        .unwrap()
        .to_owned();
    app.sql(&format!("DELETE FROM ai_calls WHERE id = '{call_id}'"))
        .await;

    let (items, error) = ws.collect("1").await;
    assert!(error.is_none(), "the stream ended in an error: {error:?}");
    let done = &items.last().unwrap()["data"]["chatStream"];
    assert_eq!(done["done"], true, "{done}");
    let call = &done["aiCall"];
    assert_eq!(call["id"], call_id.as_str());
    assert_eq!(call["status"], "SUCCEEDED", "{call}");
    let cost = call["costMicros"].as_str().unwrap().parse::<i64>().unwrap();
    assert!(cost > 0, "{call}");
    assert_eq!(cost, expected_cost(&app, &token, call).await);
    let stored = app
        .gql_ok(
            Some(&token),
            &format!("{{ aiCalls {{ edges {{ node {{ {CALL_FIELDS} }} }} }} }}"),
            json!({}),
        )
        .await;
    let edges = stored["aiCalls"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 1, "{stored}");
    assert_eq!(edges[0]["node"]["status"], "SUCCEEDED");
    assert_eq!(edges[0]["node"]["startedAt"], call["startedAt"]);
    // The rollups counted it once.
    let today = chrono::Utc::now().date_naive();
    let range = json!({"from": (today - chrono::Duration::days(1)).to_string(), "to": (today + chrono::Duration::days(1)).to_string()});
    let usage = app
        .gql_ok(
            Some(&token),
            "query($r: DateRange!) { myUsage(range: $r, groupBy: []) { requests costMicros } }",
            json!({"r": range}),
        )
        .await;
    assert_eq!(usage["myUsage"][0]["requests"], 1, "{usage}");
    assert_eq!(usage["myUsage"][0]["costMicros"], cost.to_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn users_see_only_their_own_calls() {
    let app = TestApp::spawn().await;
    let (alice, _, alice_id) = app
        .register("alice.calls@example.com", "alice-password")
        .await;
    let (bob, _, _) = app.register("bob.calls@example.com", "bob-password").await;
    let alice_call = app
        .gql_ok(
            Some(&alice),
            &chat_query(),
            json!({"input": {"message": "mine"}}),
        )
        .await["chat"]["aiCall"]["id"]
        .clone();
    app.gql_ok(
        Some(&bob),
        &chat_query(),
        json!({"input": {"message": "his"}}),
    )
    .await;

    let bob_list = app
        .gql_ok(
            Some(&bob),
            "{ aiCalls { edges { node { id userId } } } }",
            json!({}),
        )
        .await;
    assert_eq!(bob_list["aiCalls"]["edges"].as_array().unwrap().len(), 1);
    let peek = app
        .gql(
            Some(&bob),
            "query($id: ID!) { aiCall(id: $id) { id } }",
            json!({"id": alice_call}),
        )
        .await;
    assert_eq!(error_code(&peek), "NOT_FOUND");
    let filter = app
        .gql(
            Some(&bob),
            "query($u: ID) { aiCalls(filter: {userId: $u}) { edges { node { id } } } }",
            json!({"u": alice_id}),
        )
        .await;
    assert_eq!(error_code(&filter), "FORBIDDEN");

    let admin = app.admin_token().await;
    let all = app
        .gql_ok(
            Some(&admin),
            "{ aiCalls { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(all["aiCalls"]["edges"].as_array().unwrap().len(), 2);
    let one = app
        .gql_ok(Some(&admin), "query($u: ID) { aiCalls(filter: {userId: $u, status: SUCCEEDED, provider: \"mock\"}) { edges { node { id } } } }", json!({"u": alice_id}))
        .await;
    assert_eq!(one["aiCalls"]["edges"][0]["node"]["id"], alice_call);
}

#[tokio::test(flavor = "multi_thread")]
async fn prices_are_effective_dated() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (user, _, _) = app.register("payer@example.com", "payer-password").await;
    let add =
        "mutation($i: AddPriceInput!) { addPrice(input: $i) { id inputPerMtok effectiveFrom } }";
    let future = json!({"provider": "mock", "model": "mock-echo", "input": "1000", "cachedInput": "0", "output": "1000", "currency": "CNY", "effectiveFrom": "2100-01-01T00:00:00Z"});
    let forbidden = app.gql(Some(&user), add, json!({"i": future})).await;
    assert_eq!(error_code(&forbidden), "FORBIDDEN");
    let added = app.gql_ok(Some(&admin), add, json!({"i": future})).await;
    assert_eq!(added["addPrice"]["inputPerMtok"], "1000000000");
    let dup = app.gql(Some(&admin), add, json!({"i": future})).await;
    assert_eq!(error_code(&dup), "CONFLICT");
    let bad = app.gql(Some(&admin), add, json!({"i": {"provider": "mock", "model": "mock-echo", "input": "1.2345678", "cachedInput": "0", "output": "1", "currency": "CNY", "effectiveFrom": "2100-01-01T00:00:00Z"}})).await;
    assert_eq!(error_code(&bad), "BAD_USER_INPUT");

    // A price that starts in 2100 does not apply to a call made now.
    let call = app
        .gql_ok(
            Some(&user),
            &chat_query(),
            json!({"input": {"message": "how much?"}}),
        )
        .await["chat"]["aiCall"]
        .clone();
    let cost: i64 = call["costMicros"].as_str().unwrap().parse().unwrap();
    let per_token_now = cost as f64
        / (call["promptTokens"].as_i64().unwrap() + call["completionTokens"].as_i64().unwrap())
            as f64;
    assert!(
        per_token_now < 100.0,
        "the 2100 price (1000 CNY per 1M) was not used: {call}"
    );

    // A provider with no price still works, unpriced and free.
    let unpriced = TestApp::spawn_with(|c| {
        c.plugins
            .insert("mock2".into(), instance("mock", json!({}), &[]));
    })
    .await;
    let (t2, _, _) = unpriced.register("free@example.com", "free-password").await;
    let free = unpriced
        .gql_ok(
            Some(&t2),
            &chat_query(),
            json!({"input": {"provider": "mock2", "model": "mock-echo", "message": "free?"}}),
        )
        .await;
    assert_eq!(free["chat"]["aiCall"]["priced"], false);
    assert_eq!(free["chat"]["aiCall"]["costMicros"], "0");
    assert_eq!(free["chat"]["aiCall"]["status"], "SUCCEEDED");
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_auth_is_checked_at_connection_init() {
    let app = TestApp::spawn().await;
    let refused = GqlWs::connect(&app, Some("not-a-token"))
        .await
        .err()
        .expect("a bad token is refused");
    assert_eq!(
        refused.code,
        Some(4403),
        "graphql-transport-ws closes with 4403 Forbidden: {refused:?}"
    );
    assert!(!refused.reason.is_empty());
    // A message the server cannot read is a bad request, not a refusal.
    let garbled = GqlWs::connect_sending(&app, json!({"type": "subscribe"}))
        .await
        .err()
        .expect("a malformed message closes the socket");
    assert_eq!(garbled.code, Some(4400), "{garbled:?}");

    // No credentials: the socket opens, but chat needs a viewer.
    let mut anonymous = GqlWs::connect(&app, None).await.unwrap();
    anonymous
        .subscribe("1", &stream_query(), json!({"input": {"message": "hi"}}))
        .await;
    let (items, error) = anonymous.collect("1").await;
    let code = error
        .map(|e| e[0]["extensions"]["code"].clone())
        .unwrap_or_else(|| items[0]["errors"][0]["extensions"]["code"].clone());
    assert_eq!(code, "UNAUTHENTICATED");

    // A `token` field works as well as an Authorization header.
    let (token, _, _) = app
        .register("ws-user@example.com", "ws-user-password")
        .await;
    let mut ws = GqlWs::connect_with(&app, json!({ "token": token }))
        .await
        .unwrap();
    ws.subscribe("2", &stream_query(), json!({"input": {"message": "hello"}}))
        .await;
    let (items, error) = ws.collect("2").await;
    assert!(error.is_none());
    assert_eq!(items.last().unwrap()["data"]["chatStream"]["done"], true);
}
