//! Unit tests of the Feishu notifier, on recorded reply shapes; no network.

use super::*;
use cloudbase_plugin_api::messages::Severity;
use serde_json::Value;

const URL: &str = "https://open.feishu.cn/open-apis/bot/v2/hook/00000000-test";

fn feishu(settings: Value, secret: Option<&str>) -> Result<Feishu, PluginError> {
    let secrets = secret.map(|s| ("sign_secret".to_owned(), s.to_owned()));
    Feishu::create(PluginConfig {
        settings,
        secrets: secrets.into_iter().collect(),
    })
}

fn alert() -> Notification {
    Notification {
        title: "GPU quota exceeded".into(),
        body: "Spend reached 95% of budget".into(),
        severity: Severity::Critical,
        timestamp_ms: 1_700_000_000_999,
        fields: vec![
            ("provider".into(), "kimi".into()),
            ("model".into(), "kimi-k2".into()),
        ],
        link: Some("https://cloudbase.example/alerts/1".into()),
        recipient: None,
    }
}

fn sent(plugin: &Feishu, n: &Notification) -> (HttpRequest, Value) {
    match plugin.build(n).unwrap() {
        Delivery::Http { request } => {
            let body = serde_json::from_str(request.body.as_deref().unwrap()).unwrap();
            (request, body)
        }
        other => panic!("expected an HTTP delivery, got {other:?}"),
    }
}

fn reply(status: u16, body: &str) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![],
        body: body.into(),
    }
}

#[test]
fn builds_a_text_message() {
    let (request, body) = sent(
        &feishu(json!({"webhook_url": URL}), None).unwrap(),
        &alert(),
    );
    assert_eq!(
        (request.method.as_str(), request.url.as_str()),
        ("POST", URL)
    );
    assert_eq!(
        body,
        json!({"msg_type": "text", "content": {"text":
            "[CRITICAL] GPU quota exceeded\nSpend reached 95% of budget\n\n\
             provider: kimi\nmodel: kimi-k2\n\nhttps://cloudbase.example/alerts/1"}})
    );
}

#[test]
fn sign_matches_known_answer() {
    // Computed independently with:
    // python3 -c 'import hmac,hashlib,base64; print(base64.b64encode(hmac.new(
    //   "1700000000\nfeishu-secret".encode(), digestmod=hashlib.sha256).digest()).decode())'
    const EXPECTED: &str = "OrBzY1Y01Gq+HgJsl+7OfWcMVwc7YocohQm5iiZwjhU=";
    assert_eq!(sign("feishu-secret", 1_700_000_000).unwrap(), EXPECTED);

    let plugin = feishu(json!({"webhook_url": URL}), Some("feishu-secret")).unwrap();
    let (request, body) = sent(&plugin, &alert());
    assert_eq!(request.url, URL);
    assert_eq!(body["timestamp"], "1700000000");
    assert_eq!(body["sign"], EXPECTED);
    assert_eq!(body["msg_type"], "text");
}

#[test]
fn long_bodies_are_cut_on_a_char_boundary() {
    let mut n = alert();
    n.severity = Severity::Resolved;
    n.body = "告警".repeat(8000);
    let (_, body) = sent(&feishu(json!({"webhook_url": URL}), None).unwrap(), &n);
    let text = body["content"]["text"].as_str().unwrap();
    assert!(text.len() <= TEXT_LIMIT);
    assert!(text.starts_with("[RESOLVED] GPU quota exceeded\n告警"));
    assert!(text.contains("…\n\nprovider: kimi"));
}

#[test]
fn parse_response_accepts_code_or_status_code_zero() {
    let plugin = feishu(json!({"webhook_url": URL}), None).unwrap();
    let ok = plugin.parse_response(&reply(200, r#"{"code":0,"data":{},"msg":"success"}"#));
    assert_eq!(
        ok,
        DeliveryReport {
            ok: true,
            detail: "success".into()
        }
    );
    let old = plugin.parse_response(&reply(
        200,
        r#"{"Extra":null,"StatusCode":0,"StatusMessage":"success"}"#,
    ));
    assert_eq!(
        old,
        DeliveryReport {
            ok: true,
            detail: "success".into()
        }
    );
    // Recorded shape of a Feishu signing failure: HTTP 200 with a non-zero code.
    let failed = plugin.parse_response(&reply(
        200,
        r#"{"code":19021,"data":{},"msg":"sign match fail or timestamp is not within one hour from current time"}"#,
    ));
    assert!(
        !failed.ok && failed.detail.contains("code 19021: sign match fail"),
        "{}",
        failed.detail
    );
    assert!(
        !plugin
            .parse_response(&reply(400, r#"{"code":0,"msg":"success"}"#))
            .ok
    );
    assert!(!plugin.parse_response(&reply(200, r#"{"ok":true}"#)).ok);
}

#[test]
fn bad_settings_name_the_field() {
    for (settings, field) in [
        (json!({}), "webhook_url"),
        (json!({"webhook_url": "open.feishu.cn/hook"}), "webhook_url"),
        (json!({"webhook_url": null}), "webhook_url"),
        (json!({"webhook_url": URL, "msg_type": "post"}), "msg_type"),
    ] {
        let err = feishu(settings.clone(), None).unwrap_err();
        assert_eq!(err.code, ErrorCode::Config);
        assert!(
            err.message.contains(&format!("`{field}`")),
            "{settings}: {err}"
        );
    }
    assert!(feishu(json!({"webhook_url": URL}), Some("")).is_err());
}

#[test]
fn schema_matches_create() {
    let manifest = Feishu::manifest();
    assert_eq!(manifest.config_schema["required"], json!(["webhook_url"]));
    assert_eq!(manifest.config_schema["additionalProperties"], false);
    assert_eq!(
        (manifest.name.as_str(), manifest.kind),
        ("feishu", PluginKind::Notifier)
    );
    assert_eq!(manifest.secrets[0].name, "sign_secret");
    assert!(!manifest.secrets[0].required);
}
