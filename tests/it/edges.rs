//! The hardened edges: the client address behind proxies, users' webhooks that redirect, no
//! schema hints in production, and the playground's headers, switch and token storage.

use serde_json::{Value, json};

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cloudbase_server::config::{Config, Environment};

use crate::receivers::HttpReceiver;
use crate::support::{TestApp, error_code, instance};

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

fn load_error(toml: &str) -> String {
    let mut message = String::new();
    figment::Jail::expect_with(|jail| {
        jail.create_file("cloudbase.toml", toml)?;
        message = Config::load(Some(std::path::Path::new("cloudbase.toml")))
            .expect_err("config should be rejected")
            .to_string();
        Ok(())
    });
    message
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
        if deliveries.len() == 2 && deliveries.iter().all(|d| d["status"] != "PENDING") {
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

/// Misspelt names: a field, an argument and a type.
const MISSPELT: [&str; 3] = [
    "{ auditLgo { edges { cursor } } }",
    "{ users(fisrt: 1) { edges { cursor } } }",
    "query($f: AuditLogFiltr) { auditLog(filter: $f) { edges { cursor } } }",
];

async fn validation_messages(app: &TestApp, token: Option<&str>) -> Vec<String> {
    let mut messages = Vec::new();
    for query in MISSPELT {
        let body = app.gql(token, query, json!({})).await;
        assert_eq!(error_code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");
        messages.extend(
            body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["message"].as_str().unwrap().to_owned()),
        );
    }
    messages
}

#[tokio::test(flavor = "multi_thread")]
async fn production_suggests_no_names_and_dev_still_does() {
    let prod = TestApp::spawn_with(|c| c.env = Environment::Prod).await;
    let admin = prod.admin_token().await;
    for token in [None, Some(admin.as_str())] {
        let messages = validation_messages(&prod, token).await;
        assert!(
            messages.iter().all(|m| !m.contains("Did you mean")),
            "{messages:?}"
        );
    }
    let dev = TestApp::spawn().await;
    // async-graphql suggests field names only.
    let messages = validation_messages(&dev, None).await;
    assert!(
        messages
            .iter()
            .any(|m| m.contains("Did you mean \"auditLog\"")),
        "{messages:?}"
    );
}

/// The headers every playground response carries; returns the CSP.
fn assert_hardened(response: &reqwest::Response, what: &str) -> String {
    let headers = response.headers();
    let header = |name: &str| {
        headers
            .get(name)
            .unwrap_or_else(|| panic!("{what}: no {name}"))
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(header("x-frame-options"), "DENY", "{what}");
    assert_eq!(header("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(header("referrer-policy"), "no-referrer", "{what}");
    let csp = header("content-security-policy");
    for part in [
        "default-src 'self'",
        "script-src 'self';",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    ] {
        assert!(csp.contains(part), "{what}: {part} in {csp}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{what}: {csp}"
    );
    csp
}

/// The nonce in `style-src 'self' 'nonce-…'`.
fn style_nonce(csp: &str) -> String {
    let start = csp.find("'nonce-").expect("a style nonce") + "'nonce-".len();
    csp[start..].split('\'').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_playground_is_served_under_a_strict_policy() {
    let app = TestApp::spawn().await;
    let page = app.client.get(app.url("/playground")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = assert_hardened(&page, "page");
    let host = app.addr.to_string();
    assert!(
        csp.contains(&format!("connect-src 'self' ws://{host} wss://{host};")),
        "the GraphQL WebSocket on this origin: {csp}"
    );
    assert!(csp.contains("img-src 'self' data:") && csp.contains("font-src 'self' data:"));
    assert_eq!(page.headers()["cache-control"], "no-store");
    let nonce = style_nonce(&csp);
    assert!(nonce.len() >= 22, "{nonce}");
    let html = page.text().await.unwrap();
    assert!(
        html.contains(&format!(r#"<meta name="csp-nonce" content="{nonce}" />"#)),
        "the page carries the nonce of its policy: {html}"
    );
    // No inline script: every <script> has a src.
    for script in html.split("<script").skip(1) {
        let tag = script.split('>').next().unwrap();
        assert!(
            tag.contains("src=\"/playground/assets/"),
            "inline script: {tag}"
        );
    }
    // A new nonce for each page.
    let again = app.client.get(app.url("/playground")).send().await.unwrap();
    let again = style_nonce(&assert_hardened(&again, "page again"));
    assert_ne!(again, nonce);

    for path in [
        "/playground/assets/playground.js",
        "/playground/assets/playground.css",
        "/playground/assets/nope.js",
    ] {
        let asset = app.client.get(app.url(path)).send().await.unwrap();
        let csp = assert_hardened(&asset, path);
        assert!(!csp.contains("nonce"), "{path}: {csp}");
    }
}

async fn get_status(app: &TestApp, path: &str) -> (u16, Value) {
    let response = app.client.get(app.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_playground_is_off_when_configured_and_in_prod() {
    let off = TestApp::spawn_with(|c| c.http.playground = Some(false)).await;
    for path in [
        "/playground",
        "/playground/",
        "/playground/assets/playground.js",
    ] {
        let (status, body) = get_status(&off, path).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(error_code(&body), "NOT_FOUND", "{path}: {body}");
    }
    assert_eq!(
        get_status(&off, "/").await.0,
        404,
        "no redirect to it either"
    );
    assert_eq!(get_status(&off, "/healthz").await.0, 200);

    let prod = TestApp::spawn_with(|c| c.env = Environment::Prod).await;
    assert_eq!(
        get_status(&prod, "/playground").await.0,
        404,
        "off by default in prod"
    );
    let prod_on = TestApp::spawn_with(|c| {
        c.env = Environment::Prod;
        c.http.playground = Some(true);
    })
    .await;
    assert_eq!(
        get_status(&prod_on, "/playground").await.0,
        200,
        "explicit true wins"
    );

    figment::Jail::expect_with(|jail| {
        jail.set_env("CLOUDBASE_HTTP__PLAYGROUND", "false");
        assert!(!Config::load(None).unwrap().playground());
        Ok(())
    });
    let bad = load_error("[http]\nplayground = \"maybe\"");
    assert!(bad.contains("playground"), "{bad}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_playground_keeps_the_token_for_the_tab_only() {
    let app = TestApp::spawn().await;
    let js = app
        .client
        .get(app.url("/playground/assets/playground.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The token code: from where its key is defined to its last read or write.
    let key = "=\"cloudbase.accessToken\"";
    let defined = js.find(key).expect("the token key in the bundle");
    let name_start = js[..defined]
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
        .unwrap()
        + 1;
    let name = &js[name_start..defined];
    let last_use = [
        format!("getItem({name})"),
        format!("setItem({name},"),
        format!("removeItem({name})"),
    ]
    .iter()
    .map(|call| {
        js.rfind(call.as_str())
            .unwrap_or_else(|| panic!("no {call} in the bundle"))
    })
    .max()
    .unwrap();
    let token_code = &js[defined..last_use];
    assert!(token_code.contains("sessionStorage"), "{token_code}");
    assert!(!token_code.contains("localStorage"), "{token_code}");
    // And the source the bundle is built from never touches localStorage.
    let source = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../playground/src/index.jsx"),
    )
    .unwrap();
    assert!(!source.contains("localStorage"));
}
