//! Unit tests of the webhook notifier (body, known-answer signature, settings); no network.

use cloudbase_plugin_api::messages::{HttpRequest, HttpResponse};
use serde_json::Value;

use super::*;

fn webhook(settings: Value, secret: Option<&str>) -> Result<Webhook, PluginError> {
    let secrets = secret.map(|s| ("signing_secret".to_owned(), s.to_owned()));
    Webhook::create(PluginConfig {
        settings,
        secrets: secrets.into_iter().collect(),
    })
}

fn alert() -> Notification {
    Notification {
        title: "GPU quota exceeded".into(),
        body: "Spend reached 95% of budget".into(),
        severity: Severity::Critical,
        timestamp_ms: 1_700_000_000_000,
        fields: vec![
            ("provider".into(), "kimi".into()),
            ("cost".into(), "12.50".into()),
        ],
        link: Some("https://cloudbase.example/alerts/1".into()),
        recipient: None,
    }
}

fn request(plugin: &Webhook, n: &Notification) -> HttpRequest {
    match plugin.build(n).unwrap() {
        Delivery::Http { request } => request,
        other => panic!("expected an HTTP delivery, got {other:?}"),
    }
}

fn header<'a>(request: &'a HttpRequest, name: &str) -> Option<&'a str> {
    request
        .headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

const BODY: &str = r#"{"source":"cloudbase-ai","title":"GPU quota exceeded","body":"Spend reached 95% of budget","severity":"critical","timestamp_ms":1700000000000,"fields":{"provider":"kimi","cost":"12.50"},"link":"https://cloudbase.example/alerts/1"}"#;

#[test]
fn posts_the_json_body() {
    let plugin = webhook(json!({"url": "https://hooks.example/in"}), None).unwrap();
    let req = request(&plugin, &alert());
    assert_eq!(
        (req.method.as_str(), req.url.as_str()),
        ("POST", "https://hooks.example/in")
    );
    assert_eq!(req.body.as_deref(), Some(BODY));
    assert_eq!(
        req.headers,
        [("content-type".to_owned(), "application/json".to_owned())]
    );

    let mut quiet = alert();
    quiet.fields.clear();
    quiet.link = None;
    quiet.severity = Severity::Resolved;
    let body: Value = serde_json::from_str(&request(&plugin, &quiet).body.unwrap()).unwrap();
    assert_eq!(body["severity"], "resolved");
    assert_eq!(body["fields"], json!({}));
    assert_eq!(body["link"], Value::Null);
}

#[test]
fn signature_matches_known_answer() {
    // Computed independently with:
    // python3 -c 'import hmac,hashlib,sys; print(hmac.new(b"whsec_test",
    //   ("1700000000000." + BODY).encode(), hashlib.sha256).hexdigest())'
    // where BODY is the exact body string above.
    const EXPECTED: &str = "2d8e03f6564cf06d78d243b68c6dbda89e70d97877fd29ed2333c47a426aa380";
    let plugin = webhook(
        json!({"url": "https://hooks.example/in"}),
        Some("whsec_test"),
    )
    .unwrap();
    let req = request(&plugin, &alert());
    assert_eq!(req.body.as_deref(), Some(BODY));
    assert_eq!(header(&req, "x-cloudbase-timestamp"), Some("1700000000000"));
    assert_eq!(
        header(&req, "x-cloudbase-signature"),
        Some(format!("v1={EXPECTED}").as_str())
    );
}

#[test]
fn configured_headers_are_sent() {
    let settings = json!({
        "url": "http://localhost:9000/hook",
        "headers": {"Authorization": "Bearer abc", "Content-Type": "application/json; charset=utf-8"}
    });
    let req = request(&webhook(settings, None).unwrap(), &alert());
    assert_eq!(header(&req, "Authorization"), Some("Bearer abc"));
    assert_eq!(header(&req, "content-type"), None);
    assert_eq!(
        header(&req, "Content-Type"),
        Some("application/json; charset=utf-8")
    );
}

#[test]
fn bad_settings_name_the_field() {
    for (settings, field) in [
        (json!({}), "url"),
        (json!({"url": "ftp://x"}), "url"),
        (json!({"url": "https://"}), "url"),
        (json!({"url": "https://a b"}), "url"),
        (json!({"url": 5}), "url"),
        (json!({"url": "https://x", "headers": []}), "headers"),
        (
            json!({"url": "https://x", "headers": {"a b": "x"}}),
            "headers",
        ),
        (
            json!({"url": "https://x", "headers": {"X-CloudBase-Signature": "x"}}),
            "headers",
        ),
        (
            json!({"url": "https://x", "headers": {"a": "x\r\nb: y"}}),
            "headers",
        ),
        (json!({"url": "https://x", "extra": 1}), "extra"),
    ] {
        let err = webhook(settings.clone(), None).unwrap_err();
        assert_eq!(err.code, ErrorCode::Config);
        assert!(
            err.message.contains(&format!("`{field}`")),
            "{settings}: {err}"
        );
    }
    assert!(webhook(json!({"url": "https://x"}), Some("")).is_err());
}

#[test]
fn schema_matches_create() {
    let manifest = Webhook::manifest();
    let schema = &manifest.config_schema;
    assert_eq!(schema["required"], json!(["url"]));
    assert_eq!(schema["additionalProperties"], false);
    let minimal = parse_settings::<Settings>(&json!({"url": "https://x"})).unwrap();
    let with_defaults = parse_settings::<Settings>(
        &json!({"url": "https://x", "headers": schema["properties"]["headers"]["default"]}),
    )
    .unwrap();
    assert_eq!(minimal, with_defaults);
    assert_eq!(
        schema["properties"]["headers"]["propertyNames"]["pattern"],
        TOKEN_PATTERN
    );
    assert_eq!(
        (manifest.name.as_str(), manifest.kind),
        ("webhook", PluginKind::Notifier)
    );
    assert!(!manifest.default_instance && !manifest.mock);
    assert_eq!(manifest.secrets[0].name, "signing_secret");
}

#[test]
fn any_2xx_is_delivered() {
    let plugin = webhook(json!({"url": "https://x"}), None).unwrap();
    let response = |status| HttpResponse {
        status,
        headers: vec![],
        body: String::new(),
    };
    assert!(plugin.parse_response(&response(204)).ok);
    assert!(!plugin.parse_response(&response(500)).ok);
}

#[test]
fn a_recipient_gets_the_message_without_the_configured_headers() {
    let plugin = webhook(
        json!({"url": "https://hooks.example/in", "headers": {"authorization": "Bearer ops-only", "content-type": "application/json; charset=utf-8"}}),
        Some("whsec_test"),
    )
    .unwrap();
    let configured = request(&plugin, &alert());
    assert_eq!(
        header(&configured, "authorization"),
        Some("Bearer ops-only")
    );

    let mut mine = alert();
    mine.recipient = Some("https://me.example/hook".into());
    let req = request(&plugin, &mine);
    assert_eq!(req.url, "https://me.example/hook");
    assert_eq!(
        header(&req, "authorization"),
        None,
        "credentials stay with the configured URL"
    );
    assert!(header(&configured, "x-cloudbase-signature").is_some());
    assert_eq!(
        header(&req, "x-cloudbase-signature"),
        None,
        "not signed for someone else"
    );
    assert_eq!(header(&req, "content-type"), Some("application/json"));
    assert_eq!(req.body.as_deref(), Some(BODY));

    mine.recipient = Some("ftp://me.example/hook".into());
    let err = plugin.build(&mine).unwrap_err();
    assert_eq!(err.code, ErrorCode::BadInput);
}
