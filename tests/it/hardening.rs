//! What an attacker sends: documents nested deep enough to overflow the parser, sockets that
//! outlive their credentials, sockets that break the protocol's limits, and slow clients.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{TestApp, error_code};
use crate::ws::GqlWs;

const DEPTH: usize = 2_500;
const CHAT: &str = "mutation { chat(input: {provider: \"mock\", model: \"mock-echo\", message: \"hi\"}) { content } }";
const CALLS: &str = "subscription { aiCallUpdated { id } }";

fn nested_lists() -> String {
    format!(
        "{{ __typename(x: {}1{}) }}",
        "[".repeat(DEPTH),
        "]".repeat(DEPTH)
    )
}

fn nested_objects() -> String {
    format!(
        "{{ __typename(x: {}1{}) }}",
        "{a:".repeat(DEPTH),
        "}".repeat(DEPTH)
    )
}

/// The server still answers.
async fn assert_serving(app: &TestApp) {
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let data = app.gql_ok(None, "{ __typename }", json!({})).await;
    assert_eq!(data["__typename"], "Query");
}

/// A document nested thousands deep overflowed the parser's stack and aborted the process. Every
/// entry point now refuses it before parsing: HTTP POST and GET with 400, both WebSocket protocols
/// with an `error` for the operation, and the server keeps serving.
#[tokio::test(flavor = "multi_thread")]
async fn deeply_nested_documents_are_refused_before_parsing() {
    let app = TestApp::spawn().await;
    for query in [nested_lists(), nested_objects()] {
        for accept in ["application/json", "application/graphql-response+json"] {
            let response = app
                .client
                .post(app.url("/graphql"))
                .header("accept", accept)
                .json(&json!({ "query": query }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 400, "POST with Accept {accept}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(error_code(&body), "GRAPHQL_PARSE_FAILED", "{body}");
        }
        let response = app
            .client
            .get(app.url("/graphql"))
            .query(&[("query", query.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "GET");
        assert_serving(&app).await;

        // graphql-transport-ws, anonymous (no credentials needed to reach the parser).
        let mut socket = GqlWs::connect(&app, None).await.unwrap();
        socket
            .subscribe("deep", &query.replacen('{', "subscription {", 1), json!({}))
            .await;
        let reply = socket.next().await;
        assert_eq!(reply["type"], "error", "{reply}");
        assert_eq!(
            reply["payload"][0]["extensions"]["code"],
            "GRAPHQL_PARSE_FAILED"
        );
        // The legacy protocol.
        let mut legacy = GqlWs::open(&app, "graphql-ws").await;
        legacy
            .send(json!({ "type": "connection_init", "payload": {} }))
            .await;
        assert_eq!(legacy.next().await["type"], "connection_ack");
        legacy
            .send(json!({ "id": "1", "type": "start", "payload": { "query": query } }))
            .await;
        let reply = legacy.next().await;
        assert_eq!(reply["type"], "data", "{reply}");
        assert_eq!(
            reply["payload"]["errors"][0]["extensions"]["code"],
            "GRAPHQL_PARSE_FAILED"
        );
        assert_serving(&app).await;
    }
    // Nesting within the limit still reaches the parser and runs.
    let within = format!("{{ __typename(x: {}1{}) }}", "[".repeat(40), "]".repeat(40));
    let data = app.gql_ok(None, &within, json!({})).await;
    assert_eq!(data["__typename"], "Query");
}

/// Reads until the socket closes with 4401; anything before that must be the operation refused
/// (`UNAUTHENTICATED`, or `FORBIDDEN` for a role that no longer allows it), never a result.
async fn refused_then_closed(socket: &mut GqlWs, ran: &str) {
    loop {
        let message = socket.next().await;
        let code = match message["type"].as_str() {
            Some("closed") => {
                assert_eq!(message["code"], 4401, "{message}");
                return;
            }
            Some("error") => message["payload"][0]["extensions"]["code"].clone(),
            Some("next") => message["payload"]["errors"][0]["extensions"]["code"].clone(),
            _ => continue,
        };
        assert!(
            code == "UNAUTHENTICATED" || code == "FORBIDDEN",
            "{ran}: {message}"
        );
    }
}

async fn user_socket(app: &TestApp, email: &str) -> (String, String, GqlWs) {
    let (token, _, id) = app.register(email, "correct horse battery 1").await;
    let socket = GqlWs::connect(app, Some(&token)).await.unwrap();
    (token, id, socket)
}

/// After logout the session's open socket is closed with 4401, and a socket opened with the
/// ended token is refused.
#[tokio::test(flavor = "multi_thread")]
async fn logout_closes_the_sessions_open_socket() {
    let app = TestApp::spawn().await;
    let (token, _, mut socket) = user_socket(&app, "leaving@example.com").await;
    socket.subscribe("calls", CALLS, json!({})).await;
    let data = app
        .gql_ok(Some(&token), "mutation { logout }", json!({}))
        .await;
    assert_eq!(data["logout"], true);
    let (code, reason) = socket.closed().await;
    assert_eq!(code, Some(4401), "{reason}");
    let refused = GqlWs::connect(&app, Some(&token)).await.err().unwrap();
    assert_eq!(refused.code, Some(4403));
}

/// Disabling a user closes their sockets; while it closes, an operation on it is refused (never
/// run and billed), and nothing was recorded for them after the disable.
#[tokio::test(flavor = "multi_thread")]
async fn disabling_a_user_closes_their_socket_and_refuses_its_operations() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token().await;
    let (_, id, mut socket) = user_socket(&app, "disabled@example.com").await;
    app.gql_ok(
        Some(&admin),
        "mutation($u: ID!) { disableUser(userId: $u) { disabled } }",
        json!({ "u": id }),
    )
    .await;
    socket
        .send(json!({ "id": "c", "type": "subscribe", "payload": { "query": CHAT } }))
        .await;
    // Either the close wins, or the chat is refused first and then the socket closes.
    refused_then_closed(&mut socket, "the chat ran for a disabled user").await;
    let calls = app
        .gql_ok(
            Some(&admin),
            "query($u: ID!) { aiCalls(filter: {userId: $u}) { edges { node { id } } } }",
            json!({ "u": id }),
        )
        .await;
    assert_eq!(calls["aiCalls"]["edges"], json!([]), "nothing was billed");
}

/// An admin demoted to USER loses admin powers on a socket opened before: the socket closes, an
/// admin operation sent on it is refused, and the audit trail never records them as ADMIN after.
#[tokio::test(flavor = "multi_thread")]
async fn a_demoted_admin_loses_admin_powers_on_an_open_socket() {
    let app = TestApp::spawn().await;
    let root = app.admin_token().await;
    let (token, id, _) = user_socket(&app, "second-admin@example.com").await;
    app.gql_ok(
        Some(&root),
        "mutation($u: ID!) { setUserRole(userId: $u, role: ADMIN) { role } }",
        json!({ "u": id }),
    )
    .await;
    let mut socket = GqlWs::connect(&app, Some(&token)).await.unwrap();
    socket
        .subscribe("u", "{ users { edges { node { id } } } }", json!({}))
        .await;
    let (items, _) = socket.collect("u").await;
    assert!(items[0]["data"]["users"].is_object(), "an admin at first");
    app.gql_ok(
        Some(&root),
        "mutation($u: ID!) { setUserRole(userId: $u, role: USER) { role } }",
        json!({ "u": id }),
    )
    .await;
    let promote = "mutation($u: ID!) { setUserRole(userId: $u, role: ADMIN) { role } }";
    socket
        .send(json!({ "id": "p", "type": "subscribe", "payload": { "query": promote, "variables": { "u": id } } }))
        .await;
    refused_then_closed(&mut socket, "a demoted admin promoted someone").await;
    let me = app.gql_ok(Some(&token), "{ me { role } }", json!({})).await;
    assert_eq!(me["me"]["role"], "USER", "the promotion did not happen");
}

/// When the access token expires, the socket closes with 4401: a mutation cannot outlive it.
#[tokio::test(flavor = "multi_thread")]
async fn a_socket_closes_when_its_access_token_expires() {
    let app = TestApp::spawn_with(|c| c.auth.access_token_ttl_secs = 2).await;
    let (_, _, mut socket) = user_socket(&app, "expiring@example.com").await;
    let started = std::time::Instant::now();
    let (code, reason) = socket.closed().await;
    assert_eq!(code, Some(4401));
    assert!(reason.contains("expired"), "{reason}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Logout on one instance closes the session's socket on another (through LISTEN/NOTIFY).
#[tokio::test(flavor = "multi_thread")]
async fn logout_on_one_instance_closes_the_socket_on_another() {
    if crate::support::skip_without_postgres("logout_on_one_instance_closes_the_socket_on_another")
    {
        return;
    }
    let (app, peers) = TestApp::spawn_cluster(2).await;
    let (token, _, _) = app
        .register("roaming@example.com", "correct horse battery 1")
        .await;
    let init = json!({ "type": "connection_init", "payload": { "Authorization": format!("Bearer {token}") } });
    let mut socket = GqlWs::connect_to(peers[0].addr, init).await.unwrap();
    socket.subscribe("calls", CALLS, json!({})).await;
    app.gql_ok(Some(&token), "mutation { logout }", json!({}))
        .await;
    let (code, reason) = socket.closed().await;
    assert_eq!(code, Some(4401), "{reason}");
}

/// Protocol limits: no `connection_init` in time is 4408, a running id reused is 4409, a
/// message over the body limit is 1009, and operations past the per-socket cap are refused
/// while the socket stays usable.
#[tokio::test(flavor = "multi_thread")]
async fn websocket_limits_hold() {
    let app = TestApp::spawn_with(|c| {
        c.http.ws_init_timeout_secs = 1;
        c.http.ws_max_operations = 3;
        c.http.max_body_bytes = 64 * 1024;
    })
    .await;
    let mut silent = GqlWs::open(&app, "graphql-transport-ws").await;
    assert_eq!(silent.closed().await.0, Some(4408));
    let mut legacy = GqlWs::open(&app, "graphql-ws").await;
    assert_eq!(legacy.closed().await.0, Some(4408));

    let mut early = GqlWs::open(&app, "graphql-transport-ws").await;
    early.subscribe("x", CALLS, json!({})).await;
    assert_eq!(early.closed().await.0, Some(4401), "subscribe before init");

    let token = app.admin_token().await;
    let mut socket = GqlWs::connect(&app, Some(&token)).await.unwrap();
    for id in ["1", "2", "3"] {
        socket.subscribe(id, CALLS, json!({})).await;
    }
    socket.subscribe("4", CALLS, json!({})).await;
    let refused = socket.next().await;
    assert_eq!(refused["id"], "4");
    assert_eq!(refused["type"], "error");
    assert_eq!(
        refused["payload"][0]["extensions"]["code"],
        "TOO_MANY_OPERATIONS"
    );
    socket.send(json!({ "id": "1", "type": "complete" })).await;
    socket
        .subscribe("5", "subscription { aiCallUpdated { id } }", json!({}))
        .await;
    // "5" now runs: a call shows up on it.
    app.gql_ok(Some(&token), CHAT, json!({})).await;
    let item = socket.next_item("5").await;
    assert_eq!(item["type"], "next", "{item}");
    socket.subscribe("2", CALLS, json!({})).await;
    assert_eq!(socket.closed().await.0, Some(4409), "a running id reused");

    let mut big = GqlWs::connect(&app, Some(&token)).await.unwrap();
    big.send_text(format!(
        r#"{{"id":"b","type":"subscribe","payload":{{"query":"{{ __typename }}","variables":{{"pad":"{}"}}}}}}"#,
        "x".repeat(128 * 1024)
    ))
    .await;
    assert_eq!(big.closed().await.0, Some(1009));
    assert_serving(&app).await;
}

/// Slow clients hold nothing but their own connections: silent sockets and trickled headers are
/// cut at the header-read timeout, a trickled body gets 408 at the body timeout, and the server
/// answers others meanwhile.
#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_are_cut_off_and_others_are_served() {
    let app = TestApp::spawn_with(|c| {
        c.http.header_read_timeout_secs = 1;
        c.http.body_read_timeout_secs = 1;
    })
    .await;
    let mut silent = Vec::new();
    let mut trickle_header = Vec::new();
    let mut trickle_body = Vec::new();
    for _ in 0..100 {
        silent.push(tokio::net::TcpStream::connect(app.addr).await.unwrap());
        let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        s.write_all(b"POST /graphql HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        trickle_header.push(s);
        let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        s.write_all(b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"query\":")
            .await
            .unwrap();
        trickle_body.push(s);
    }
    // Keep trickling: one byte per socket every 200 ms, for 3 s.
    let trickler = async {
        for _ in 0..15 {
            for s in trickle_header.iter_mut().chain(trickle_body.iter_mut()) {
                let _ = s.write_all(b" ").await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let healthy = async {
        for _ in 0..5 {
            assert_serving(&app).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    tokio::join!(trickler, healthy);
    // Every slow socket has been closed by the server by now.
    for s in silent.iter_mut().chain(trickle_header.iter_mut()) {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
        assert!(
            read.is_ok(),
            "a silent or header-trickling socket is still open"
        );
    }
    for s in &mut trickle_body {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "a body-trickling socket is still open");
        let text = String::from_utf8_lossy(&buf);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    }
    assert_serving(&app).await;
}
