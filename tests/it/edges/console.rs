//! The console: served from the binary under a strict policy with no inline style, `/` leading
//! to it whatever else is on, and `[http] console_dir` (dev only) serving a folder read afresh.

use cloudbase_server::config::Environment;
use reqwest::redirect::Policy;

use super::load_error;
use super::playground::{assert_hardened, get_status};
use crate::support::TestApp;

#[tokio::test(flavor = "multi_thread")]
async fn the_console_is_served_from_the_binary_under_a_strict_policy() {
    let app = TestApp::spawn().await;
    for path in ["/console", "/console/"] {
        let page = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(page.status(), 200, "{path}");
        let csp = assert_hardened(&page, path);
        assert!(
            csp.contains("style-src 'self';") && !csp.contains("nonce"),
            "no inline style at all: {csp}"
        );
        let host = app.addr.to_string();
        assert!(
            csp.contains(&format!("connect-src 'self' ws://{host} wss://{host};")),
            "{csp}"
        );
        assert_eq!(page.headers()["cache-control"], "no-store");
        let html = page.text().await.unwrap();
        assert!(html.contains(r#"<div id="root">"#), "{html}");
        for script in html.split("<script").skip(1) {
            let tag = script.split('>').next().unwrap();
            assert!(
                tag.contains(r#"src="/console/assets/"#),
                "inline script: {tag}"
            );
        }
        assert!(
            !html.contains("https://") && !html.contains("http://"),
            "{html}"
        );
    }
    for (path, kind, least) in [
        ("/console/assets/console.js", "text/javascript", 50_000),
        ("/console/assets/console.css", "text/css", 1_000),
    ] {
        let asset = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(asset.status(), 200, "{path}");
        assert_hardened(&asset, path);
        assert!(
            asset.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind),
            "{path}"
        );
        assert!(
            asset.bytes().await.unwrap().len() > least,
            "{path} is embedded"
        );
    }
    for path in [
        "/console/assets/nope.js",
        "/console/assets/..%2F..%2FCargo.toml",
        "/console/assets/%2Fetc%2Fpasswd",
    ] {
        let missing = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(missing.status(), 404, "{path}");
        assert_hardened(&missing, path);
    }
}

/// Where `/` leads, without following it.
async fn root_leads_to(app: &TestApp) -> (u16, String) {
    let client = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let response = client.get(app.url("/")).send().await.unwrap();
    let location = response
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (response.status().as_u16(), location)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_root_leads_to_the_console_in_dev_in_prod_and_without_the_playground() {
    let dev = TestApp::spawn().await;
    assert_eq!(root_leads_to(&dev).await, (307, "/console".to_owned()));
    let prod = TestApp::spawn_with(|c| c.env = Environment::Prod).await;
    assert_eq!(root_leads_to(&prod).await, (307, "/console".to_owned()));
    assert_eq!(get_status(&prod, "/console").await.0, 200, "served in prod");
    let off = TestApp::spawn_with(|c| c.http.playground = Some(false)).await;
    assert_eq!(root_leads_to(&off).await, (307, "/console".to_owned()));
}

#[tokio::test(flavor = "multi_thread")]
async fn in_dev_a_console_folder_is_served_and_read_afresh() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("assets")).unwrap();
    std::fs::write(dir.path().join("index.html"), "<p>first</p>").unwrap();
    std::fs::write(dir.path().join("assets/console.js"), "let v = 1;").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "outside assets").unwrap();
    let folder = dir.path().to_owned();
    let app = TestApp::spawn_with(move |c| c.http.console_dir = Some(folder)).await;
    let get = |path: &'static str| {
        let app = &app;
        async move {
            let response = app.client.get(app.url(path)).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    assert_eq!(get("/console").await, (200, "<p>first</p>".into()));
    assert_eq!(
        get("/console/assets/console.js").await,
        (200, "let v = 1;".into())
    );
    std::fs::write(dir.path().join("assets/console.js"), "let v = 2;").unwrap();
    assert_eq!(
        get("/console/assets/console.js").await,
        (200, "let v = 2;".into()),
        "a rebuilt bundle shows without a restart"
    );
    assert_eq!(get("/console/assets/..%2Fsecret.txt").await.0, 404);
    assert_eq!(get("/console/assets/nope.js").await.0, 404);

    let refused = load_error(
        "env = \"prod\"\nmaster_key = \"0123456789abcdef0123456789abcdef0123456789A\"\n[http]\nconsole_dir = \"console/dist\"",
    );
    assert!(refused.contains("http.console_dir"), "{refused}");
}
