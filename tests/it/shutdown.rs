//! Graceful shutdown (issue 17, item 5): a server **process** sent SIGTERM in the middle of calls
//! stops accepting at once, refuses new calls on connections it still has, lets a call that ends
//! within the grace period finish and answer, closes its WebSockets with 1001, records the call
//! still running at the deadline as `INTERRUPTED` (its reservation released), writes its queued
//! logs, and exits well before a supervisor's stop timeout.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{PeerProcess, TestApp};
use crate::ws::GqlWs;

const CHAT: &str = "mutation($input: ChatInput!) { chat(input: $input) { aiCall { id status } } }";

/// The grace period the server is given.
const GRACE_SECS: u64 = 3;

/// One plain chat on `addr` with `model`: the answer's body, or the transport error's text.
async fn chat(addr: std::net::SocketAddr, token: &str, model: &str) -> Result<Value, String> {
    let answer = reqwest::Client::new()
        .post(format!("http://{addr}/graphql"))
        .bearer_auth(token)
        .json(&json!({ "query": CHAT, "variables": { "input": {
            "provider": "mock", "model": model, "message": "take your time"
        }}}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    answer.json::<Value>().await.map_err(|e| e.to_string())
}

async fn pending(app: &TestApp) -> i64 {
    app.sql_number("SELECT COUNT(*) AS n FROM ai_calls WHERE status = 'PENDING'")
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_calls_closes_sockets_with_1001_and_records_the_rest_interrupted() {
    // The reservation lifetime is long: the sweeper is not what finishes the call cut off.
    let mut app = TestApp::spawn_with(|c| c.budgets.reservation_ttl_secs = 600).await;
    let admin = app.admin_token().await;
    let (token, _, user_id) = app.register("drain@example.com", "drain-password-1").await;
    app.gql_ok(
        Some(&admin),
        "mutation($i: CreateBudgetInput!) { createBudget(input: $i) { id } }",
        json!({"i": {"userId": user_id, "period": "TOTAL", "currency": "CNY", "limitMicros": "100000000000"}}),
    )
    .await;
    if !app.is_postgres() {
        app.stop().await;
    }
    let grace = GRACE_SECS.to_string();
    let mut server = PeerProcess::start_with(
        &app.config,
        &[
            ("CLOUDBASE_PLUGINS__MOCK__PLUGIN", "mock"),
            ("CLOUDBASE_PLUGINS__MOCK__SETTINGS__DELAY_MS", "100"),
            ("CLOUDBASE_PLUGINS__MOCK__SETTINGS__FAULT_INJECTION", "true"),
            ("CLOUDBASE_PLUGINS__MOCK__SETTINGS__HANG_MS", "30000"),
            ("CLOUDBASE_BUDGETS__RESERVATION_TTL_SECS", "600"),
            ("CLOUDBASE_HTTP__SHUTDOWN_GRACE_SECS", &grace),
        ],
    )
    .await;
    let addr = server.addr;
    let mut socket = GqlWs::connect_to(
        addr,
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}}),
    )
    .await
    .expect("a socket");
    socket
        .subscribe(
            "calls",
            "subscription { aiCallUpdated { id status } }",
            json!({}),
        )
        .await;
    // A socket to stream a chat on, and one to send a call on after the signal.
    let init =
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}});
    let mut streamer = GqlWs::connect_to(addr, init.clone())
        .await
        .expect("a socket");
    let mut late = GqlWs::connect_to(addr, init).await.expect("a socket");

    // A plain call far longer than the grace period (the mock hangs for 30 s), and a streamed
    // one that ends within it (about 1.7 s), both running when the signal comes.
    let long = tokio::spawn({
        let token = token.clone();
        async move { chat(addr, &token, "mock-fault-hang").await }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while pending(&app).await < 1 {
        if long.is_finished() {
            panic!("the long call ended at once: {:?}", long.await);
        }
        assert!(Instant::now() < deadline, "the long call never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let words = vec!["word"; 15].join(" ");
    streamer
        .subscribe(
            "short",
            &crate::chat::stream_query(),
            json!({"input": {"provider": "mock", "model": "mock-echo", "message": words}}),
        )
        .await;
    while pending(&app).await < 2 {
        assert!(Instant::now() < deadline, "the short call never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let signalled = Instant::now();
    server.terminate();

    // No longer accepting: a new connection is refused while the calls drain.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let fresh = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(
        fresh.is_err(),
        "a new connection was served while shutting down: {fresh:?}"
    );
    // A new call on a connection it still has is refused at once, with the code to retry on.
    late.subscribe(
        "late",
        "mutation($input: ChatInput!) { chat(input: $input) { aiCall { id } } }",
        json!({"input": {"provider": "mock", "model": "mock-echo", "message": "too late"}}),
    )
    .await;
    let refused = late.next().await;
    assert_eq!(refused["type"], "next", "{refused}");
    let error = &refused["payload"]["errors"][0];
    assert_eq!(error["extensions"]["code"], "UNAVAILABLE", "{refused}");
    assert!(
        error["extensions"]["retryAfterMs"].as_i64() > Some(0),
        "{refused}"
    );

    // The short call finished and its client has the whole answer, then its socket closes.
    let (items, error) = streamer.collect("short").await;
    assert!(error.is_none(), "{error:?}");
    let last = &items.last().expect("items")["data"]["chatStream"];
    assert_eq!(last["aiCall"]["status"], "SUCCEEDED", "{last}");
    assert_eq!(streamer.closed().await.0, Some(1001));
    // The subscription saw calls, then the socket closed with 1001.
    let mut seen_close = None;
    for _ in 0..20 {
        let message = socket.next().await;
        if message["type"] == "closed" {
            seen_close = Some(message);
            break;
        }
    }
    let closed = seen_close.expect("the socket was closed");
    assert_eq!(closed["code"], 1001, "{closed}");
    // The long call was cut off: its client got no answer.
    let long = long.await.unwrap();
    assert!(
        long.as_ref()
            .map_or(true, |body| body["data"]["chat"].is_null()),
        "the long call was answered: {long:?}"
    );
    let status = server
        .exited_within(Duration::from_secs(15))
        .await
        .expect("the server exited");
    let took = signalled.elapsed();
    assert!(status.success(), "a graceful exit: {status:?}");
    assert!(
        took < Duration::from_secs(10),
        "it exited within Docker's default stop timeout (took {took:?})"
    );
    assert!(
        took >= Duration::from_secs(GRACE_SECS),
        "it waited for the grace period before cutting the long call off (took {took:?})"
    );

    // Nothing left PENDING: the long call is INTERRUPTED, its reservation released, and the
    // money adds up.
    assert_eq!(pending(&app).await, 0);
    let codes = app
        .sql_texts("SELECT status || ':' || COALESCE(error_code, '') AS t FROM ai_calls ORDER BY started_at")
        .await;
    assert_eq!(codes, ["FAILED:INTERRUPTED", "SUCCEEDED:"], "{codes:?}");
    app.assert_budgets_settled().await;
    let sum = |q: &'static str| app.sql_number(q);
    assert_eq!(
        sum("SELECT COUNT(*) AS n FROM ai_calls").await,
        sum("SELECT CAST(COALESCE(SUM(requests), 0) AS BIGINT) AS n FROM usage_daily").await
    );
    // The log queue was written before the exit: the warning about the call cut off is stored.
    assert_eq!(
        sum("SELECT COUNT(*) AS n FROM system_logs WHERE message LIKE '%shutdown grace period were recorded as interrupted%'")
            .await,
        1
    );
}
