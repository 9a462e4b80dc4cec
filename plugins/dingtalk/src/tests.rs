//! Unit tests of the DingTalk notifier, on recorded reply shapes; no network.

use super::*;
use cloudbase_plugin_api::messages::Severity;
use serde_json::Value;

const URL: &str = "https://oapi.dingtalk.com/robot/send?access_token=test-token";

fn dingtalk(settings: Value, secret: Option<&str>) -> Result<Dingtalk, PluginError> {
    let secrets = secret.map(|s| ("sign_secret".to_owned(), s.to_owned()));
    Dingtalk::create(PluginConfig {
        settings,
        secrets: secrets.into_iter().collect(),
    })
}

fn alert() -> Notification {
    Notification {
        title: "GPU quota exceeded".into(),
        body: "预算已用 95%".into(),
        severity: Severity::Warning,
        timestamp_ms: 1_700_000_000_000,
        fields: vec![("provider".into(), "kimi".into())],
        link: Some("https://cloudbase.example/alerts/1".into()),
        recipient: None,
    }
}

fn sent(plugin: &Dingtalk, n: &Notification) -> (HttpRequest, Value) {
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
fn builds_a_markdown_message() {
    let (request, body) = sent(
        &dingtalk(json!({"webhook_url": URL}), None).unwrap(),
        &alert(),
    );
    assert_eq!(
        (request.method.as_str(), request.url.as_str()),
        ("POST", URL)
    );
    assert_eq!(body["msgtype"], "markdown");
    assert_eq!(body["markdown"]["title"], "[WARNING] GPU quota exceeded");
    assert_eq!(
        body["markdown"]["text"],
        "### [WARNING] GPU quota exceeded\n\n预算已用 95%\n\n- **provider**: kimi\n\n\
         [View details](https://cloudbase.example/alerts/1)"
    );
}

#[test]
fn sign_matches_known_answer() {
    // Computed independently with:
    // python3 -c 'import hmac,hashlib,base64,urllib.parse; s="SEC0123456789abcdef";
    //   d=base64.b64encode(hmac.new(s.encode(), ("1700000000000\n"+s).encode(),
    //   hashlib.sha256).digest()).decode(); print(d, urllib.parse.quote_plus(d))'
    const BASE64: &str = "TSZbRFUuvaSQaRKUpF970OPCb2/LcQAP3wOvwZIzBZk=";
    const ENCODED: &str = "TSZbRFUuvaSQaRKUpF970OPCb2%2FLcQAP3wOvwZIzBZk%3D";
    assert_eq!(
        sign("SEC0123456789abcdef", 1_700_000_000_000).unwrap(),
        BASE64
    );
    assert_eq!(percent_encode(BASE64), ENCODED);
    assert_eq!(percent_encode("a+b c"), "a%2Bb%20c");

    let plugin = dingtalk(json!({"webhook_url": URL}), Some("SEC0123456789abcdef")).unwrap();
    let (request, _) = sent(&plugin, &alert());
    assert_eq!(
        request.url,
        format!("{URL}&timestamp=1700000000000&sign={ENCODED}")
    );

    let bare = dingtalk(
        json!({"webhook_url": "http://127.0.0.1:8080/robot"}),
        Some("SEC0123456789abcdef"),
    );
    let (request, _) = sent(&bare.unwrap(), &alert());
    assert_eq!(
        request.url,
        format!("http://127.0.0.1:8080/robot?timestamp=1700000000000&sign={ENCODED}")
    );
}

#[test]
fn long_bodies_are_cut_on_a_char_boundary() {
    let mut n = alert();
    n.body = "告警".repeat(8000);
    let (_, body) = sent(&dingtalk(json!({"webhook_url": URL}), None).unwrap(), &n);
    let text = body["markdown"]["text"].as_str().unwrap();
    assert!(text.len() <= TEXT_LIMIT);
    assert!(text.contains("…\n\n- **provider**: kimi"));
}

#[test]
fn parse_response_needs_errcode_zero() {
    let plugin = dingtalk(json!({"webhook_url": URL}), None).unwrap();
    let ok = plugin.parse_response(&reply(200, r#"{"errcode":0,"errmsg":"ok"}"#));
    assert_eq!(
        ok,
        DeliveryReport {
            ok: true,
            detail: "ok".into()
        }
    );
    // Recorded shape of a DingTalk signing failure: HTTP 200 with a non-zero errcode.
    let failed = plugin.parse_response(&reply(
        200,
        r#"{"errcode":310000,"errmsg":"sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]"}"#,
    ));
    assert!(
        !failed.ok && failed.detail.contains("errcode 310000: sign not match"),
        "{}",
        failed.detail
    );
    assert!(
        !plugin
            .parse_response(&reply(500, r#"{"errcode":0,"errmsg":"ok"}"#))
            .ok
    );
    assert!(!plugin.parse_response(&reply(200, "")).ok);
}

#[test]
fn bad_settings_name_the_field() {
    for (settings, field) in [
        (json!({}), "webhook_url"),
        (
            json!({"webhook_url": "oapi.dingtalk.com/robot/send"}),
            "webhook_url",
        ),
        (json!({"webhook_url": ["x"]}), "webhook_url"),
        (json!({"webhook_url": URL, "secret": "x"}), "secret"),
    ] {
        let err = dingtalk(settings.clone(), None).unwrap_err();
        assert_eq!(err.code, ErrorCode::Config);
        assert!(
            err.message.contains(&format!("`{field}`")),
            "{settings}: {err}"
        );
    }
    assert!(dingtalk(json!({"webhook_url": URL}), Some("")).is_err());
}

#[test]
fn schema_matches_create() {
    let manifest = Dingtalk::manifest();
    assert_eq!(manifest.config_schema["required"], json!(["webhook_url"]));
    assert_eq!(manifest.config_schema["additionalProperties"], false);
    assert_eq!(
        (manifest.name.as_str(), manifest.kind),
        ("dingtalk", PluginKind::Notifier)
    );
    assert_eq!(manifest.secrets[0].name, "sign_secret");
    assert!(!manifest.secrets[0].required);
}
