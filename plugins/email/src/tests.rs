//! Unit tests of the email notifier (message, settings, schema); no network.

use cloudbase_plugin_api::messages::ErrorCode;
use serde_json::Value;

use super::*;
use cloudbase_plugin_api::messages::Severity;

fn minimal() -> Value {
    json!({"host": "smtp.example.com", "from": "alerts@example.com", "to": ["ops@example.com"]})
}

fn email(settings: Value, password: Option<&str>) -> Result<Email, PluginError> {
    let secrets = password.map(|p| ("password".to_owned(), p.to_owned()));
    Email::create(PluginConfig {
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

fn message(plugin: &Email, n: &Notification) -> EmailMessage {
    match plugin.build(n).unwrap() {
        Delivery::Email { email } => email,
        other => panic!("expected an email, got {other:?}"),
    }
}

#[test]
fn builds_the_email_with_defaults() {
    let msg = message(&email(minimal(), None).unwrap(), &alert());
    let smtp = SmtpTarget {
        host: "smtp.example.com".into(),
        port: 587,
        tls: SmtpTls::Starttls,
        username: None,
        password: None,
    };
    assert_eq!(msg.smtp, smtp);
    assert_eq!(msg.from, "alerts@example.com");
    assert_eq!(msg.to, ["ops@example.com"]);
    assert_eq!(msg.subject, "[CloudBase AI] CRITICAL GPU quota exceeded");
    assert_eq!(
        msg.text,
        "[CRITICAL] GPU quota exceeded\n\nSpend reached 95% of budget\n\n\
         provider: kimi\ncost: 12.50\n\nhttps://cloudbase.example/alerts/1\n"
    );
}

#[test]
fn uses_every_setting_and_the_password() {
    let settings = json!({
        "host": "mail.example.com", "port": 465, "tls": "tls", "username": "bot",
        "from": "CloudBase <bot@example.com>", "to": ["a@example.com", "b@example.com"],
        "subject_prefix": ""
    });
    let mut n = alert();
    n.severity = Severity::Resolved;
    n.title = "Quota\r\nback to normal".into();
    n.fields.clear();
    n.link = None;
    let msg = message(&email(settings, Some("hunter2")).unwrap(), &n);
    assert_eq!((msg.smtp.port, msg.smtp.tls), (465, SmtpTls::Tls));
    assert_eq!(msg.smtp.username.as_deref(), Some("bot"));
    assert_eq!(msg.smtp.password.as_deref(), Some("hunter2"));
    assert_eq!(msg.to.len(), 2);
    assert_eq!(msg.subject, "RESOLVED Quota  back to normal");
    assert_eq!(
        msg.text,
        "[RESOLVED] Quota\r\nback to normal\n\nSpend reached 95% of budget\n"
    );
}

#[test]
fn bad_settings_name_the_field() {
    let with = |key: &str, value: Value| {
        let mut s = minimal();
        s[key] = value;
        s
    };
    let without = |key: &str| {
        let mut s = minimal();
        s.as_object_mut().unwrap().remove(key);
        s
    };
    for (settings, field) in [
        (without("host"), "host"),
        (without("from"), "from"),
        (without("to"), "to"),
        (with("host", json!("")), "host"),
        (with("port", json!(0)), "port"),
        (with("port", json!(70000)), "port"),
        (with("tls", json!("ssl")), "tls"),
        (with("from", json!("nobody")), "from"),
        (with("to", json!([])), "to"),
        (with("to", json!(["ops@example.com", "oops"])), "to"),
        (with("to", json!("ops@example.com")), "to"),
        (
            with("subject_prefix", json!("a\nBcc: x@y")),
            "subject_prefix",
        ),
        (with("password", json!("x")), "password"),
    ] {
        let err = email(settings.clone(), None).unwrap_err();
        assert_eq!(err.code, ErrorCode::Config);
        assert!(
            err.message.contains(&format!("`{field}`")),
            "{settings}: {err}"
        );
    }
}

#[test]
fn schema_matches_create() {
    let manifest = Email::manifest();
    let schema = &manifest.config_schema;
    assert_eq!(schema["required"], json!(["host", "from", "to"]));
    assert_eq!(schema["additionalProperties"], false);
    let mut with_defaults = minimal();
    for (key, property) in schema["properties"].as_object().unwrap() {
        if let Some(default) = property.get("default") {
            with_defaults[key] = default.clone();
        }
    }
    assert_eq!(
        parse_settings::<Settings>(&with_defaults).unwrap(),
        parse_settings::<Settings>(&minimal()).unwrap()
    );
    assert_eq!(
        (manifest.name.as_str(), manifest.kind),
        ("email", PluginKind::Notifier)
    );
    assert!(!manifest.default_instance);
    assert_eq!(manifest.secrets[0].name, "password");
    assert!(!manifest.secrets[0].required);
}

#[test]
fn a_recipient_replaces_the_configured_addresses() {
    let plugin = email(minimal(), None).unwrap();
    let mut mine = alert();
    mine.recipient = Some("me@example.com".into());
    let msg = message(&plugin, &mine);
    assert_eq!(msg.to, ["me@example.com"]);
    assert_eq!(msg.from, "alerts@example.com");

    for bad in [
        "not-an-address",
        "a@example.com\r\nBcc: x@example.com",
        "a@example.com,b@example.com",
    ] {
        mine.recipient = Some(bad.into());
        let err = plugin.build(&mine).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadInput, "{bad:?}");
    }
}
