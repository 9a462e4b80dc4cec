//! The `email` notifier: turns each notification into a plain-text email the host sends over
//! SMTP. All of it is in this file; its one module is
//!
//! - `tests`: unit tests (message, recipients, settings, schema).
//!
//! The subject is `<subject_prefix> <SEVERITY> <title>`. The text opens with `[SEVERITY] title`,
//! then the body, then the fields as `key: value` lines, then the link.
//!
//! Settings: `host` (required), `port` (1–65535, default 587), `tls` (`starttls` (default),
//! `tls` or `none`), `username` (optional), `from` (required), `to` (required, at least one
//! address), `subject_prefix` (default `[CloudBase AI]`). Addresses must contain `@`; none of the
//! header values may contain a line break. Secret: `password` (optional).

#[cfg(test)]
mod tests;

use cloudbase_plugin_api::export_plugin;
use cloudbase_plugin_api::messages::{
    Delivery, EmailMessage, ErrorCode, Manifest, Notification, PluginConfig, PluginError,
    PluginKind, SecretSpec, SmtpTarget, SmtpTls, Transport,
};
use cloudbase_plugin_api::parse_settings;
use cloudbase_plugin_api::traits::Notifier;
use serde::Deserialize;

use serde_json::json;

/// A string holding an `@` and no line break, as a JSON Schema pattern.
const ADDRESS_PATTERN: &str = "^[^\\r\\n]*@[^\\r\\n]*$";
/// A string with no line break, as a JSON Schema pattern.
const ONE_LINE_PATTERN: &str = "^[^\\r\\n]*$";

/// The instance settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    host: String,
    #[serde(default = "default_port")]
    port: u16,
    #[serde(default = "default_tls")]
    tls: SmtpTls,
    #[serde(default)]
    username: Option<String>,
    from: String,
    to: Vec<String>,
    #[serde(default = "default_subject_prefix")]
    subject_prefix: String,
}

fn default_port() -> u16 {
    587
}

fn default_tls() -> SmtpTls {
    SmtpTls::Starttls
}

fn default_subject_prefix() -> String {
    "[CloudBase AI]".into()
}

/// The email notifier instance.
#[derive(Debug)]
pub struct Email {
    settings: Settings,
    password: Option<String>,
}

impl Notifier for Email {
    const NAME: &'static str = "email";

    fn manifest() -> Manifest {
        Manifest {
            name: Self::NAME.into(),
            kind: PluginKind::Notifier,
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Email over SMTP: plain-text alerts to a list of addresses".into(),
            mock: false,
            config_schema: json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {
                    "host": {
                        "type": "string", "minLength": 1, "pattern": ONE_LINE_PATTERN,
                        "description": "SMTP server host name."
                    },
                    "port": {
                        "type": "integer", "minimum": 1, "maximum": 65535, "default": 587,
                        "description": "SMTP port (587 for STARTTLS, 465 for TLS, 25 for a relay)."
                    },
                    "tls": {
                        "enum": ["starttls", "tls", "none"], "default": "starttls",
                        "description": "Transport security."
                    },
                    "username": {
                        "type": "string", "pattern": ONE_LINE_PATTERN,
                        "description": "SMTP login, if the server needs one (password from the `password` secret)."
                    },
                    "from": {
                        "type": "string", "pattern": ADDRESS_PATTERN,
                        "description": "Sender address, e.g. `CloudBase AI <alerts@example.com>`."
                    },
                    "to": {
                        "type": "array", "minItems": 1,
                        "items": { "type": "string", "pattern": ADDRESS_PATTERN },
                        "description": "Recipient addresses."
                    },
                    "subject_prefix": {
                        "type": "string", "pattern": ONE_LINE_PATTERN, "default": "[CloudBase AI]",
                        "description": "Put before every subject."
                    }
                },
                "required": ["host", "from", "to"],
                "additionalProperties": false
            }),
            secrets: vec![SecretSpec {
                name: "password".into(),
                description: "SMTP password for `username`".into(),
                required: false,
                default_env: None,
            }],
            default_instance: false,
            transport: Transport::Http,
        }
    }

    fn create(config: PluginConfig) -> Result<Self, PluginError> {
        let settings: Settings = parse_settings(&config.settings)?;
        let s = &settings;
        if s.host.is_empty() {
            return Err(PluginError::config("`host` must not be empty"));
        }
        if s.port == 0 {
            return Err(PluginError::config("`port` must be between 1 and 65535"));
        }
        if s.to.is_empty() {
            return Err(PluginError::config("`to` must list at least one address"));
        }
        let one_line = [("host", &s.host), ("subject_prefix", &s.subject_prefix)];
        let username = s.username.iter().map(|u| ("username", u));
        for (field, value) in one_line.into_iter().chain(username) {
            if value.contains(['\r', '\n']) {
                return Err(PluginError::config(format!(
                    "`{field}` must not contain a line break"
                )));
            }
        }
        for (field, address) in
            std::iter::once(("from", &s.from)).chain(s.to.iter().map(|a| ("to", a)))
        {
            if !address.contains('@') || address.contains(['\r', '\n']) {
                return Err(PluginError::config(format!(
                    "`{field}`: {address:?} is not an email address"
                )));
            }
        }
        let password = config.secrets.get("password").cloned();
        Ok(Email { settings, password })
    }

    fn build(&self, n: &Notification) -> Result<Delivery, PluginError> {
        let s = &self.settings;
        let to = match &n.recipient {
            Some(address) if !address.contains('@') || address.contains(['\r', '\n', ',']) => {
                return Err(PluginError::new(
                    ErrorCode::BadInput,
                    format!("recipient {address:?} is not an email address"),
                ));
            }
            Some(address) => vec![address.clone()],
            None => s.to.clone(),
        };
        let email = EmailMessage {
            smtp: SmtpTarget {
                host: s.host.clone(),
                port: s.port,
                tls: s.tls,
                username: s.username.clone(),
                password: self.password.clone(),
            },
            from: s.from.clone(),
            to,
            subject: subject(&s.subject_prefix, n),
            text: text(n),
        };
        Ok(Delivery::Email { email })
    }
}

/// `<prefix> <SEVERITY> <title>`, on one line whatever the title holds.
fn subject(prefix: &str, n: &Notification) -> String {
    let title: String = n
        .title
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    [prefix, n.severity.label(), title.trim()]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The plain-text body: headline, body, fields, link, separated by blank lines.
fn text(n: &Notification) -> String {
    let mut text = format!("[{}] {}\n\n{}\n", n.severity.label(), n.title, n.body);
    if !n.fields.is_empty() {
        text.push('\n');
        for (key, value) in &n.fields {
            text.push_str(&format!("{key}: {value}\n"));
        }
    }
    if let Some(link) = &n.link {
        text.push_str(&format!("\n{link}\n"));
    }
    text
}

export_plugin!(notifier: Email);
