//! The `wecom` notifier: posts alerts to a WeCom (企业微信) group robot webhook. All of it is in
//! this file; its one module is
//!
//! - `tests`: unit tests (markdown and text messages, replies, settings, schema).
//!
//! The message is `{"msgtype":"markdown","markdown":{"content":"..."}}`: the severity and title
//! in bold, the body, the fields as quoted `key: value` lines, and the link. WeCom caps markdown
//! content at 4096 bytes, so a long body is cut on a character boundary (ending in `…`).
//!
//! WeCom only honours `mentioned_mobile_list` on **text** messages, so when that list is not
//! empty the plugin sends `{"msgtype":"text","text":{"content":"...","mentioned_mobile_list":[..]}}`
//! instead (plain text, capped at WeCom's 2048 bytes); `"@all"` mentions everyone.
//!
//! WeCom answers HTTP 200 even on failure; a delivery worked only if the status is 2xx and the
//! JSON reply has `errcode == 0`.
//!
//! Settings: `webhook_url` (required, http(s); real ones look like
//! `https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...`, and the key is a credential),
//! `mentioned_mobile_list` (array of strings, default `[]`). No secrets.

#[cfg(test)]
mod tests;

use cloudbase_plugin_api::channel::{self, check_url, truncate};
use cloudbase_plugin_api::export_plugin;
use cloudbase_plugin_api::messages::{
    Delivery, DeliveryReport, HttpRequest, HttpResponse, Manifest, Notification, PluginConfig,
    PluginError, PluginKind, Transport,
};
use cloudbase_plugin_api::parse_settings;
use cloudbase_plugin_api::traits::Notifier;
use serde::Deserialize;

use serde_json::json;

/// WeCom's limit on markdown content, in bytes.
const MARKDOWN_LIMIT: usize = 4096;
/// WeCom's limit on text content, in bytes.
const TEXT_LIMIT: usize = 2048;

/// The instance settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    webhook_url: String,
    #[serde(default)]
    mentioned_mobile_list: Vec<String>,
}

/// The WeCom notifier instance.
#[derive(Debug)]
pub struct Wecom {
    settings: Settings,
}

impl Notifier for Wecom {
    const NAME: &'static str = "wecom";

    fn manifest() -> Manifest {
        Manifest {
            name: Self::NAME.into(),
            kind: PluginKind::Notifier,
            version: env!("CARGO_PKG_VERSION").into(),
            description: "WeCom (企业微信) group robot: markdown alerts to a group chat".into(),
            mock: false,
            config_schema: json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {
                    "webhook_url": {
                        "type": "string", "pattern": "^https?://[^\\s]+$",
                        "description": "The robot's webhook, https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=... (keep it secret)."
                    },
                    "mentioned_mobile_list": {
                        "type": "array", "items": { "type": "string", "minLength": 1 }, "default": [],
                        "description": "Mobile numbers to @-mention (\"@all\" for everyone); switches to text messages."
                    }
                },
                "required": ["webhook_url"],
                "additionalProperties": false
            }),
            secrets: vec![],
            default_instance: false,
            transport: Transport::Http,
        }
    }

    fn create(config: PluginConfig) -> Result<Self, PluginError> {
        let settings: Settings = parse_settings(&config.settings)?;
        check_url("webhook_url", &settings.webhook_url)?;
        if settings.mentioned_mobile_list.iter().any(String::is_empty) {
            return Err(PluginError::config(
                "`mentioned_mobile_list` holds an empty entry",
            ));
        }
        Ok(Wecom { settings })
    }

    fn build(&self, n: &Notification) -> Result<Delivery, PluginError> {
        let mentions = &self.settings.mentioned_mobile_list;
        let body = if mentions.is_empty() {
            json!({"msgtype": "markdown", "markdown": {"content": markdown(n)}})
        } else {
            json!({"msgtype": "text", "text": {"content": text(n), "mentioned_mobile_list": mentions}})
        };
        let request = HttpRequest {
            method: "POST".into(),
            url: self.settings.webhook_url.clone(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: Some(body.to_string()),
        };
        Ok(Delivery::Http { request })
    }

    fn parse_response(&self, response: &HttpResponse) -> DeliveryReport {
        channel::report_from_code(response, &[("errcode", "errmsg")])
    }
}

/// The markdown message: bold headline, body, quoted fields, link.
fn markdown(n: &Notification) -> String {
    let head = format!("**[{}] {}**\n", n.severity.label(), n.title);
    let mut tail = String::new();
    for (key, value) in &n.fields {
        tail.push_str(&format!("> **{key}**: {value}\n"));
    }
    if let Some(link) = &n.link {
        tail.push_str(&format!("\n[View details]({link})"));
    }
    fit(&head, &n.body, &tail, MARKDOWN_LIMIT)
}

/// The plain-text message (used with mentions): headline, body, fields, link.
fn text(n: &Notification) -> String {
    let head = format!("[{}] {}\n", n.severity.label(), n.title);
    let mut tail = String::new();
    for (key, value) in &n.fields {
        tail.push_str(&format!("{key}: {value}\n"));
    }
    if let Some(link) = &n.link {
        tail.push_str(&format!("\n{link}"));
    }
    fit(&head, &n.body, &tail, TEXT_LIMIT)
}

/// `head`, `body`, a blank line and `tail`, within `limit` bytes: the body is cut first, so the
/// fields and link survive; the whole is cut only if even they do not fit.
fn fit(head: &str, body: &str, tail: &str, limit: usize) -> String {
    let room = limit.saturating_sub(head.len() + tail.len() + 2);
    let whole = format!("{head}{}\n\n{tail}", truncate(body, room));
    truncate(whole.trim_end(), limit).into_owned()
}

export_plugin!(notifier: Wecom);
