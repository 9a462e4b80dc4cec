//! The `webhook` notifier: POSTs each notification as JSON to a URL of the operator's choosing,
//! optionally signed with HMAC-SHA256. All of it is in this file; its one module is
//!
//! - `tests`: unit tests (body, known-answer signature, headers, recipients, settings, schema).
//!
//! # The request
//!
//! `POST <url>` with `content-type: application/json`, the configured `headers`, and the body
//!
//! ```json
//! {"source":"cloudbase-ai","title":"...","body":"...","severity":"critical",
//!  "timestamp_ms":1700000000000,"fields":{"provider":"kimi"},"link":null}
//! ```
//!
//! `severity` is one of `info`, `warning`, `critical`, `resolved`; `fields` keeps the
//! notification's order; `link` may be `null`.
//!
//! # Signing
//!
//! When the `signing_secret` secret is set, two headers are added:
//!
//! - `x-cloudbase-timestamp: <timestamp_ms>`
//! - `x-cloudbase-signature: v1=<hex>`, where `<hex>` is the lower-case hex of
//!   `HMAC-SHA256(key = secret, message = "<timestamp_ms>.<body>")` over the exact body bytes.
//!
//! A receiver verifies a delivery by:
//!
//! 1. reading the raw body bytes, before any JSON parsing or re-encoding;
//! 2. recomputing the HMAC over `x-cloudbase-timestamp`, a `.`, and those bytes, with its copy
//!    of the secret;
//! 3. comparing it with the `v1=` value in constant time (e.g. `hmac::Mac::verify_slice`,
//!    Python's `hmac.compare_digest`), rejecting on mismatch;
//! 4. rejecting timestamps too far from its own clock (say, more than 5 minutes), so that a
//!    captured request cannot be replayed later.
//!
//! # Settings and secrets
//!
//! `url` (required, `http://` or `https://`), `headers` (object of string values, default `{}`;
//! names must be HTTP tokens and may not start with `x-cloudbase-`; a `content-type` here
//! replaces the default one). Secret: `signing_secret` (optional).
//!
//! # Per-message recipients
//!
//! A notification with a `recipient` (a user's own webhook URL) is posted there instead, with
//! only `content-type`: neither the configured `headers` nor a signature, which belong to the
//! configured endpoint.

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use cloudbase_plugin_api::channel::check_url;
use cloudbase_plugin_api::export_plugin;
use cloudbase_plugin_api::messages::{
    Delivery, ErrorCode, HttpRequest, Manifest, Notification, PluginConfig, PluginError,
    PluginKind, SecretSpec, Severity, Transport,
};
use cloudbase_plugin_api::parse_settings;
use cloudbase_plugin_api::traits::Notifier;
use hmac::{Hmac, Mac};

use serde::{Deserialize, Serialize, Serializer};
use serde_json::json;
use sha2::Sha256;

/// Header names this plugin sets itself and the operator may not configure.
const RESERVED_PREFIX: &str = "x-cloudbase-";
/// The characters of an HTTP header name (RFC 9110 `token`), as a JSON Schema pattern.
const TOKEN_PATTERN: &str = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";

/// The instance settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// The webhook notifier instance.
#[derive(Debug)]
pub struct Webhook {
    settings: Settings,
    signing_secret: Option<String>,
}

/// The JSON body, in a fixed field order (the signature covers the exact bytes).
#[derive(Serialize)]
struct Payload<'a> {
    source: &'static str,
    title: &'a str,
    body: &'a str,
    severity: Severity,
    timestamp_ms: i64,
    fields: Fields<'a>,
    link: Option<&'a str>,
}

/// Notification fields as a JSON object, in their original order.
struct Fields<'a>(&'a [(String, String)]);

impl Serialize for Fields<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl Notifier for Webhook {
    const NAME: &'static str = "webhook";

    fn manifest() -> Manifest {
        Manifest {
            name: Self::NAME.into(),
            kind: PluginKind::Notifier,
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Generic webhook: POSTs alerts as JSON, optionally HMAC-SHA256 signed"
                .into(),
            mock: false,
            config_schema: json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {
                    "url": {
                        "type": "string", "pattern": "^https?://[^\\s]+$",
                        "description": "Where to POST (http:// or https://)."
                    },
                    "headers": {
                        "type": "object",
                        "propertyNames": {
                            "pattern": TOKEN_PATTERN,
                            "not": { "pattern": "^[Xx]-[Cc][Ll][Oo][Uu][Dd][Bb][Aa][Ss][Ee]-" }
                        },
                        "additionalProperties": { "type": "string", "pattern": "^[^\\r\\n\\u0000]*$" },
                        "default": {},
                        "description": "Extra request headers (x-cloudbase-* are reserved)."
                    }
                },
                "required": ["url"],
                "additionalProperties": false
            }),
            secrets: vec![SecretSpec {
                name: "signing_secret".into(),
                description: "Signs each request (x-cloudbase-signature: v1=HMAC-SHA256 hex)"
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
        check_url("url", &settings.url)?;
        for (name, value) in &settings.headers {
            if name.is_empty() || !name.bytes().all(is_token_byte) {
                return Err(PluginError::config(format!(
                    "`headers`: {name:?} is not a valid header name"
                )));
            }
            if name.to_ascii_lowercase().starts_with(RESERVED_PREFIX) {
                return Err(PluginError::config(format!(
                    "`headers`: {name:?} is reserved (x-cloudbase-* headers are set by the plugin)"
                )));
            }
            if value.contains(['\r', '\n', '\0']) {
                return Err(PluginError::config(format!(
                    "`headers`: the value of {name:?} contains a line break"
                )));
            }
        }
        let signing_secret = config.secrets.get("signing_secret").cloned();
        if signing_secret.as_deref() == Some("") {
            return Err(PluginError::config("secret `signing_secret` is empty"));
        }
        Ok(Webhook {
            settings,
            signing_secret,
        })
    }

    fn build(&self, n: &Notification) -> Result<Delivery, PluginError> {
        let payload = Payload {
            source: "cloudbase-ai",
            title: &n.title,
            body: &n.body,
            severity: n.severity,
            timestamp_ms: n.timestamp_ms,
            fields: Fields(&n.fields),
            link: n.link.as_deref(),
        };
        let body = serde_json::to_string(&payload)
            .map_err(|e| PluginError::new(ErrorCode::Internal, format!("encoding body: {e}")))?;
        // A per-message recipient (a user's own webhook) never gets the configured headers:
        // they may carry credentials meant for the configured endpoint only.
        let url = match &n.recipient {
            Some(url) => {
                check_url("recipient", url)
                    .map_err(|e| PluginError::new(ErrorCode::BadInput, e.message))?;
                url.clone()
            }
            None => self.settings.url.clone(),
        };
        let configured = n.recipient.is_none().then_some(&self.settings.headers);
        let mut headers = Vec::new();
        if !configured.is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case("content-type"))) {
            headers.push(("content-type".to_owned(), "application/json".to_owned()));
        }
        headers.extend(
            configured
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        // Nor is such a message signed: the signing secret vouches to the configured endpoint,
        // and a signed copy in a user's hands could be replayed to it.
        if let Some(secret) = self
            .signing_secret
            .as_ref()
            .filter(|_| n.recipient.is_none())
        {
            let signature = sign(secret, n.timestamp_ms, &body)?;
            headers.push(("x-cloudbase-timestamp".into(), n.timestamp_ms.to_string()));
            headers.push(("x-cloudbase-signature".into(), format!("v1={signature}")));
        }
        let request = HttpRequest {
            method: "POST".into(),
            url,
            headers,
            body: Some(body),
        };
        Ok(Delivery::Http { request })
    }
}

/// Lower-case hex of `HMAC-SHA256(secret, "<timestamp_ms>.<body>")`.
fn sign(secret: &str, timestamp_ms: i64, body: &str) -> Result<String, PluginError> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .map_err(|e| PluginError::new(ErrorCode::Internal, format!("HMAC key: {e}")))?;
    mac.update(timestamp_ms.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    Ok(mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

export_plugin!(notifier: Webhook);
