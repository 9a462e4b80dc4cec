//! The playground: its headers and policy, its switch, and where it keeps the token.

use cloudbase_server::config::{Config, Environment};
use serde_json::Value;

use super::load_error;
use crate::support::{TestApp, error_code};

/// The headers every playground (and console) response carries; returns the CSP.
pub(super) fn assert_hardened(response: &reqwest::Response, what: &str) -> String {
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

pub(super) async fn get_status(app: &TestApp, path: &str) -> (u16, Value) {
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
