//! The `feishu` notifier: posts alerts to a Feishu/Lark (飞书) custom bot webhook. All of it is
//! in this file; its one module is
//!
//! - `tests`: unit tests (message, known-answer signature, replies, settings, schema).
//!
//! The message is `{"msg_type":"text","content":{"text":"..."}}`: `[SEVERITY] title`, the body,
//! the fields as `key: value` lines and the link. A long body is cut on a character boundary
//! (ending in `…`) so the text stays within 18000 bytes, under Feishu's 20 KB request limit.
//!
//! With the `sign_secret` secret set (the bot's 签名校验 setting), the body also carries
//! `"timestamp": "<seconds>"` and `"sign": base64(HMAC-SHA256(key = "<seconds>\n<secret>",
//! message = ""))`: in Feishu's scheme the string is the HMAC *key* and the message is empty.
//! `<seconds>` is the notification's `timestamp_ms / 1000`; Feishu rejects one more than an hour
//! from its clock.
//!
//! Feishu answers HTTP 200 even on failure; a delivery worked only if the status is 2xx and the
//! JSON reply has `code == 0` (older deployments answer `StatusCode == 0`; either is accepted).
//!
//! Settings: `webhook_url` (required, http(s); real ones look like
//! `https://open.feishu.cn/open-apis/bot/v2/hook/<token>`, a credential). Secret: `sign_secret`
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

/// Our cap on the message text, in bytes (the whole request must stay under 20 KB).
const TEXT_LIMIT: usize = 18_000;

/// The instance settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    webhook_url: String,
}

/// The Feishu notifier instance.
#[derive(Debug)]
pub struct Feishu {
    settings: Settings,
    sign_secret: Option<String>,
}

impl Notifier for Feishu {
    const NAME: &'static str = "feishu";

    fn manifest() -> Manifest {
        Manifest {
            name: Self::NAME.into(),
            kind: PluginKind::Notifier,
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Feishu/Lark (飞书) custom bot: text alerts to a group chat".into(),
            mock: false,
            config_schema: json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {
                    "webhook_url": {
                        "type": "string", "pattern": "^https?://[^\\s]+$",
                        "description": "The bot's webhook, https://open.feishu.cn/open-apis/bot/v2/hook/... (keep it secret)."
                    }
                },
                "required": ["webhook_url"],
                "additionalProperties": false
            }),
            secrets: vec![SecretSpec {
                name: "sign_secret".into(),
                description:
                    "The bot's signing secret (签名校验), when that security setting is on".into(),
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
        Ok(Feishu {
            settings,
            sign_secret,
        })
    }

    fn build(&self, n: &Notification) -> Result<Delivery, PluginError> {
        let mut body = json!({"msg_type": "text", "content": {"text": text(n)}});
        if let Some(secret) = &self.sign_secret {
            let seconds = n.timestamp_ms.div_euclid(1000);
            body["timestamp"] = json!(seconds.to_string());
            body["sign"] = json!(sign(secret, seconds)?);
        }
        let request = HttpRequest {
            method: "POST".into(),
            url: self.settings.webhook_url.clone(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: Some(body.to_string()),
        };
        Ok(Delivery::Http { request })
    }

    fn parse_response(&self, response: &HttpResponse) -> DeliveryReport {
        // Current replies use `code`/`msg`; older ones `StatusCode`/`StatusMessage`.
        channel::report_from_code(
            response,
            &[("code", "msg"), ("StatusCode", "StatusMessage")],
        )
    }
}

/// `base64(HMAC-SHA256(key = "<seconds>\n<secret>", message = ""))`.
fn sign(secret: &str, seconds: i64) -> Result<String, PluginError> {
    let mac = Hmac::<Sha256>::new_from_slice(format!("{seconds}\n{secret}").as_bytes())
        .map_err(|e| PluginError::new(ErrorCode::Internal, format!("HMAC key: {e}")))?;
    Ok(STANDARD.encode(mac.finalize().into_bytes()))
}

/// The message text: headline, body, fields, link.
fn text(n: &Notification) -> String {
    let head = format!("[{}] {}\n", n.severity.label(), n.title);
    let mut tail = String::new();
    for (key, value) in &n.fields {
        tail.push_str(&format!("{key}: {value}\n"));
    }
    if let Some(link) = &n.link {
        tail.push_str(&format!("\n{link}"));
    }
    let room = TEXT_LIMIT.saturating_sub(head.len() + tail.len() + 2);
    let whole = format!("{head}{}\n\n{tail}", truncate(&n.body, room));
    truncate(whole.trim_end(), TEXT_LIMIT).into_owned()
}

export_plugin!(notifier: Feishu);
