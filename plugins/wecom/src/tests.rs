//! Unit tests of the WeCom notifier, on recorded reply shapes; no network.

use cloudbase_plugin_api::messages::ErrorCode;
use serde_json::Value;

use super::*;
use cloudbase_plugin_api::channel::ELLIPSIS;
use cloudbase_plugin_api::messages::Severity;

const URL: &str = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=00000000-test";

fn wecom(settings: Value) -> Result<Wecom, PluginError> {
    Wecom::create(PluginConfig {
        settings,
        ..Default::default()
    })
}

fn alert() -> Notification {
    Notification {
        title: "GPU 配额超限".into(),
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

fn sent(plugin: &Wecom, n: &Notification) -> (HttpRequest, Value) {
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
    let (request, body) = sent(&wecom(json!({"webhook_url": URL})).unwrap(), &alert());
    assert_eq!(
        (request.method.as_str(), request.url.as_str()),
        ("POST", URL)
    );
    assert_eq!(body["msgtype"], "markdown");
    assert_eq!(
        body["markdown"]["content"],
        "**[CRITICAL] GPU 配额超限**\nSpend reached 95% of budget\n\n\
         > **provider**: kimi\n> **cost**: 12.50\n\n\
         [View details](https://cloudbase.example/alerts/1)"
    );
}

#[test]
fn mentions_switch_to_a_text_message() {
    let plugin =
        wecom(json!({"webhook_url": URL, "mentioned_mobile_list": ["13800001111", "@all"]}))
            .unwrap();
    let mut n = alert();
    n.severity = Severity::Resolved;
    n.fields.clear();
    n.link = None;
    let (_, body) = sent(&plugin, &n);
    assert_eq!(body["msgtype"], "text");
    assert_eq!(
        body["text"]["content"],
        "[RESOLVED] GPU 配额超限\nSpend reached 95% of budget"
    );
    assert_eq!(
        body["text"]["mentioned_mobile_list"],
        json!(["13800001111", "@all"])
    );
}

#[test]
fn long_bodies_are_cut_on_a_char_boundary() {
    let mut n = alert();
    n.body = "告警".repeat(3000);
    let (_, body) = sent(&wecom(json!({"webhook_url": URL})).unwrap(), &n);
    let content = body["markdown"]["content"].as_str().unwrap();
    assert!(content.len() <= MARKDOWN_LIMIT, "{}", content.len());
    assert!(content.contains("告…\n\n> **provider**"));
    assert!(content.ends_with("(https://cloudbase.example/alerts/1)"));

    n.title = "长".repeat(5000);
    let (_, body) = sent(&wecom(json!({"webhook_url": URL})).unwrap(), &n);
    let content = body["markdown"]["content"].as_str().unwrap();
    assert!(content.len() <= MARKDOWN_LIMIT && content.ends_with(ELLIPSIS));

    let plugin = wecom(json!({"webhook_url": URL, "mentioned_mobile_list": ["@all"]})).unwrap();
    let (_, body) = sent(&plugin, &n);
    assert!(body["text"]["content"].as_str().unwrap().len() <= TEXT_LIMIT);
}

#[test]
fn parse_response_needs_errcode_zero() {
    let plugin = wecom(json!({"webhook_url": URL})).unwrap();
    let ok = plugin.parse_response(&reply(200, r#"{"errcode":0,"errmsg":"ok"}"#));
    assert_eq!(
        ok,
        DeliveryReport {
            ok: true,
            detail: "ok".into()
        }
    );
    // Recorded shape of a WeCom failure: HTTP 200 with a non-zero errcode.
    let failed = plugin.parse_response(&reply(
        200,
        r#"{"errcode":93000,"errmsg":"invalid webhook url, hint: [1700000000_abc], from ip: 203.0.113.7"}"#,
    ));
    assert!(!failed.ok);
    assert!(
        failed.detail.contains("errcode 93000: invalid webhook url"),
        "{}",
        failed.detail
    );
    assert!(
        !plugin
            .parse_response(&reply(502, r#"{"errcode":0,"errmsg":"ok"}"#))
            .ok
    );
    let garbage = plugin.parse_response(&reply(200, "<html>bad gateway</html>"));
    assert!(!garbage.ok && garbage.detail.contains("unexpected reply"));
}

#[test]
fn bad_settings_name_the_field() {
    for (settings, field) in [
        (json!({}), "webhook_url"),
        (json!({"webhook_url": "qyapi.weixin.qq.com"}), "webhook_url"),
        (
            json!({"webhook_url": URL, "mentioned_mobile_list": "13800001111"}),
            "mentioned_mobile_list",
        ),
        (
            json!({"webhook_url": URL, "mentioned_mobile_list": [""]}),
            "mentioned_mobile_list",
        ),
        (json!({"webhook_url": URL, "key": "x"}), "key"),
    ] {
        let err = wecom(settings.clone()).unwrap_err();
        assert_eq!(err.code, ErrorCode::Config);
        assert!(
            err.message.contains(&format!("`{field}`")),
            "{settings}: {err}"
        );
        assert!(
            !err.message.contains("00000000-test"),
            "leaks the key: {err}"
        );
    }
}

#[test]
fn schema_matches_create() {
    let manifest = Wecom::manifest();
    let schema = &manifest.config_schema;
    assert_eq!(schema["required"], json!(["webhook_url"]));
    assert_eq!(schema["additionalProperties"], false);
    let defaults = json!({
        "webhook_url": URL,
        "mentioned_mobile_list": schema["properties"]["mentioned_mobile_list"]["default"]
    });
    assert_eq!(
        parse_settings::<Settings>(&defaults).unwrap(),
        parse_settings::<Settings>(&json!({"webhook_url": URL})).unwrap()
    );
    assert_eq!(
        (manifest.name.as_str(), manifest.kind),
        ("wecom", PluginKind::Notifier)
    );
}
