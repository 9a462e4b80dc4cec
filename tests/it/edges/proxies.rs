//! The client address behind trusted proxies: what login limits and the audit trail see.

use cloudbase_server::Config;
use serde_json::{Value, json};

use super::load_error;
use crate::support::{TestApp, error_code};

const LOGIN: &str = "mutation($input: LoginInput!) { login(input: $input) { accessToken } }";

/// POSTs a GraphQL request with `X-Forwarded-For` headers (in order) and a request id.
async fn post_forwarded(
    app: &TestApp,
    token: Option<&str>,
    query: &str,
    variables: Value,
    forwarded: &[&str],
    request_id: &str,
) -> Value {
    let mut request = app
        .client
        .post(app.url("/graphql"))
        .header("x-request-id", request_id)
        .json(&json!({ "query": query, "variables": variables }));
    for value in forwarded {
        request = request.header("x-forwarded-for", *value);
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn login_forwarded(app: &TestApp, email: &str, password: &str, forwarded: &str) -> Value {
    let id = uuid::Uuid::now_v7().to_string();
    let input = json!({ "input": { "email": email, "password": password } });
    post_forwarded(app, None, LOGIN, input, &[forwarded], &id).await
}

/// The address the audit trail recorded for the request with `request_id`.
async fn audited_address(app: &TestApp, admin: &str, request_id: &str) -> Value {
    let data = app
        .gql_ok(
            Some(admin),
            "{ auditLog(first: 50) { edges { node { requestId clientIp } } } }",
            json!({}),
        )
        .await;
    data["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .find(|n| n["requestId"] == request_id)
        .unwrap_or_else(|| panic!("no audit row for {request_id}: {data}"))["clientIp"]
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn login_limits_count_the_hop_the_proxy_added() {
    // `trust_forwarded_for = true` is the older spelling of one trusted proxy.
    let app = TestApp::spawn_with(|c| {
        c.http.trust_forwarded_for = true;
        c.rate_limits.login_failures_per_account = 1000;
        // Only the per-address count is under test here, not the backoff per account and address.
        c.rate_limits.login_failures_before_backoff = 1000;
        c.rate_limits.login_failures_per_address = 5;
    })
    .await;
    app.register("victim@example.com", "victim-password").await;
    // The client writes a new address of its own each time; nginx appends the real one.
    for i in 0..5 {
        let body = login_forwarded(
            &app,
            "victim@example.com",
            "guess",
            &format!("6.6.6.{i}, 203.0.113.7"),
        )
        .await;
        assert_eq!(error_code(&body), "UNAUTHENTICATED", "{body}");
    }
    let limited = login_forwarded(
        &app,
        "victim@example.com",
        "victim-password",
        "7.7.7.7, 203.0.113.7",
    )
    .await;
    assert_eq!(
        error_code(&limited),
        "RATE_LIMITED",
        "five failures from 203.0.113.7, whatever the client wrote: {limited}"
    );
    // Another real address is not held back.
    let other = login_forwarded(
        &app,
        "victim@example.com",
        "victim-password",
        "7.7.7.7, 203.0.113.8",
    )
    .await;
    assert!(other.get("errors").is_none(), "{other}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_trail_records_the_real_hop_and_never_garbage() {
    let app = TestApp::spawn_with(|c| c.http.trusted_proxies = 2).await;
    let admin = app.admin_token().await;
    let (user, _, _) = app.register("hops@example.com", "hops-password-1").await;
    let rename = "mutation { updateProfile(input: { displayName: \"Hops\" }) { displayName } }";
    let cases: [(&[&str], &str, Value); 6] = [
        // The client's own entry, then the CDN's view, then nginx's view of the CDN.
        (
            &["6.6.6.6, 198.51.100.9, 10.0.0.2"],
            "two-hops",
            json!("198.51.100.9"),
        ),
        // Split over two headers, one list; an address with a port.
        (
            &["garbage-not-ip", "198.51.100.10:4711, 10.0.0.2"],
            "split",
            json!("198.51.100.10"),
        ),
        (
            &["[2001:db8::7]:443, 10.0.0.2"],
            "v6-port",
            json!("2001:db8::7"),
        ),
        // Fewer entries than proxies: what the proxies wrote, leftmost.
        (&["198.51.100.11"], "short", json!("198.51.100.11")),
        // The chosen entry is not an address: the peer is recorded.
        (&["garbage-not-ip, 10.0.0.2"], "garbage", json!("127.0.0.1")),
        (&[], "none", json!("127.0.0.1")),
    ];
    for (forwarded, name, expected) in cases {
        let id = format!("edges-{name}-{}", uuid::Uuid::now_v7().simple());
        let body = post_forwarded(&app, Some(&user), rename, json!({}), forwarded, &id).await;
        assert!(body.get("errors").is_none(), "{body}");
        assert_eq!(
            audited_address(&app, &admin, &id).await,
            expected,
            "{name}: {forwarded:?}"
        );
    }
}

#[test]
fn proxy_settings_load_and_name_the_key_when_wrong() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("CLOUDBASE_HTTP__TRUSTED_PROXIES", "2");
        jail.set_env(
            "CLOUDBASE_HTTP__PROXY_NETWORKS",
            r#"["10.0.0.0/8", "127.0.0.1", "2001:db8::/32"]"#,
        );
        let config = Config::load(None).unwrap();
        assert_eq!(config.http.proxy_hops(), 2);
        assert_eq!(config.http.proxy_networks().unwrap().len(), 3);
        Ok(())
    });
    figment::Jail::expect_with(|jail| {
        jail.set_env("CLOUDBASE_HTTP__TRUST_FORWARDED_FOR", "true");
        assert_eq!(Config::load(None).unwrap().http.proxy_hops(), 1);
        Ok(())
    });
    let bad = load_error("[http]\ntrusted_proxies = 1\nproxy_networks = [\"10.0.0.0/33\"]");
    assert!(
        bad.contains("http.proxy_networks") && bad.contains("10.0.0.0/33"),
        "{bad}"
    );
    let both = load_error("[http]\ntrusted_proxies = 2\ntrust_forwarded_for = true");
    assert!(both.contains("http.trust_forwarded_for"), "{both}");
    let negative = load_error("[http]\ntrusted_proxies = -1");
    assert!(negative.contains("trusted_proxies"), "{negative}");
}
