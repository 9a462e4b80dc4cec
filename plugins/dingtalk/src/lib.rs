//! The `dingtalk` notifier: posts alerts to a DingTalk (钉钉) custom robot webhook. All of it is
//! in this file; its one module is
//!
//! - `tests`: unit tests (message, known-answer signature, replies, settings, schema).
//!
//! The message is `{"msgtype":"markdown","markdown":{"title":"[SEVERITY] title","text":"..."}}`,
//! the text holding a heading, the body, the fields as a list and the link. A long body is cut on
//! a character boundary (ending in `…`) so the text stays within 18000 bytes, a conservative cap
//! below the message size DingTalk accepts.
//!
//! With the `sign_secret` secret set (DingTalk's 加签 security setting, `SEC...`), the URL gets
//! `timestamp=<timestamp_ms>&sign=<sign>`, where `sign` is the URL-encoded
//! `base64(HMAC-SHA256(key = secret, message = "<timestamp_ms>\n<secret>"))`. DingTalk rejects a
//! timestamp more than an hour from its clock.
//!
//! DingTalk answers HTTP 200 even on failure; a delivery worked only if the status is 2xx and the
//! JSON reply has `errcode == 0`.
//!
//! Settings: `webhook_url` (required, http(s); real ones look like
//! `https://oapi.dingtalk.com/robot/send?access_token=...`, a credential). Secret: `sign_secret`
//! (optional).

#[cfg(test)]
mod tests;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use cloudbase_plugin_api::channel::{self, check_url, truncate};
use cloudbase_plugin_api::export_plugin;
use cloudbase_plugin_api::messages::{
    Delivery, DeliveryReport, ErrorCode, HttpRequest, HttpResponse, Manifest, Notification,
    PluginConfig, PluginError, PluginKind, SecretSpec, Transport,
};
use cloudbase_plugin_api::parse_settings;
use cloudbase_plugin_api::traits::Notifier;
use hmac::{Hmac, Mac};
use serde::Deserialize;

use serde_json::json;
use sha2::Sha256;

/// Our cap on the markdown text, in bytes (conservative; DingTalk's own limit is larger).
const TEXT_LIMIT: usize = 18_000;

/// The instance settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    webhook_url: String,
}

/// The DingTalk notifier instance.
#[derive(Debug)]
pub struct Dingtalk {
    settings: Settings,
    sign_secret: Option<String>,
}

impl Notifier for Dingtalk {
    const NAME: &'static str = "dingtalk";

    fn manifest() -> Manifest {
        Manifest {
            name: Self::NAME.into(),
            kind: PluginKind::Notifier,
            version: env!("CARGO_PKG_VERSION").into(),
            description: "DingTalk (钉钉) custom robot: markdown alerts to a group chat".into(),
            mock: false,
            config_schema: json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {
                    "webhook_url": {
                        "type": "string", "pattern": "^https?://[^\\s]+$",
                        "description": "The robot's webhook, https://oapi.dingtalk.com/robot/send?access_token=... (keep it secret)."
                    }
                },
                "required": ["webhook_url"],
                "additionalProperties": false
            }),
            secrets: vec![SecretSpec {
                name: "sign_secret".into(),
                description: "The robot's 加签 secret (SEC...), when that security setting is on"
                    .into(),
                required: false,
                default_env: None,
            }],
            default_instance: false,
            transport: Transport::Http,
        }
    }

    fn create(config: PluginConfig) -> Result<Self, PluginError> {
        let settings: Settings = parse_settings(&config.settings)?;
        check_url("webhook_url", &settings.webhook_url)?;
        let sign_secret = config.secrets.get("sign_secret").cloned();
        if sign_secret.as_deref() == Some("") {
            return Err(PluginError::config("secret `sign_secret` is empty"));
        }
        Ok(Dingtalk {
            settings,
            sign_secret,
        })
    }

    fn build(&self, n: &Notification) -> Result<Delivery, PluginError> {
        let mut url = self.settings.webhook_url.clone();
        if let Some(secret) = &self.sign_secret {
            let sign = percent_encode(&sign(secret, n.timestamp_ms)?);
            if !url.ends_with(['?', '&']) {
                url.push(if url.contains('?') { '&' } else { '?' });
            }
            url.push_str(&format!("timestamp={}&sign={sign}", n.timestamp_ms));
        }
        let title = format!("[{}] {}", n.severity.label(), n.title);
        let body =
            json!({"msgtype": "markdown", "markdown": {"title": title, "text": markdown(n)}});
        let request = HttpRequest {
            method: "POST".into(),
            url,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Some(body.to_string()),
        };
        Ok(Delivery::Http { request })
    }

    fn parse_response(&self, response: &HttpResponse) -> DeliveryReport {
        channel::report_from_code(response, &[("errcode", "errmsg")])
    }
}

/// `base64(HMAC-SHA256(key = secret, message = "<timestamp_ms>\n<secret>"))`, not yet URL-encoded.
fn sign(secret: &str, timestamp_ms: i64) -> Result<String, PluginError> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|e| PluginError::new(ErrorCode::Internal, format!("HMAC key: {e}")))?;
    mac.update(format!("{timestamp_ms}\n{secret}").as_bytes());
    Ok(STANDARD.encode(mac.finalize().into_bytes()))
}

/// Percent-encodes every byte except RFC 3986 unreserved characters (`+`, `/`, `=` included).
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The markdown text: heading, body, fields as a list, link.
fn markdown(n: &Notification) -> String {
    let head = format!("### [{}] {}\n\n", n.severity.label(), n.title);
    let mut tail = String::new();
    for (key, value) in &n.fields {
        tail.push_str(&format!("- **{key}**: {value}\n"));
    }
    if let Some(link) = &n.link {
        tail.push_str(&format!("\n[View details]({link})"));
    }
    let room = TEXT_LIMIT.saturating_sub(head.len() + tail.len() + 2);
    let whole = format!("{head}{}\n\n{tail}", truncate(&n.body, room));
    truncate(whole.trim_end(), TEXT_LIMIT).into_owned()
}

export_plugin!(notifier: Dingtalk);
