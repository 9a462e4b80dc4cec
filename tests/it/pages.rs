//! The embedded playground and the health probes.

use crate::support::TestApp;

#[tokio::test(flavor = "multi_thread")]
async fn playground_is_served_from_the_binary() {
    let app = TestApp::spawn().await;
    let page = app.client.get(app.url("/playground")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("/playground/assets/playground.js"), "{html}");
    assert!(
        !html.contains("cdn") && !html.contains("https://"),
        "no third-party assets: {html}"
    );

    let js = app
        .client
        .get(app.url("/playground/assets/playground.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert!(
        js.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(
        js.bytes().await.unwrap().len() > 100_000,
        "the GraphiQL bundle is embedded"
    );
    let css = app
        .client
        .get(app.url("/playground/assets/playground.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), 200);

    let missing = app
        .client
        .get(app.url("/playground/assets/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let escape = app
        .client
        .get(app.url("/playground/assets/..%2F..%2FCargo.toml"))
        .send()
        .await
        .unwrap();
    assert_eq!(escape.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn health_probes() {
    let app = TestApp::spawn().await;
    let live = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    let ready: serde_json::Value = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
}
