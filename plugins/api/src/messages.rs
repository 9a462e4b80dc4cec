//! The JSON messages that cross the boundary, as serde types.
//!
//! Providers are sans-IO: the host asks them to build an [`HttpRequest`], sends it itself (with its
//! own timeouts, retries, secrets and cancellation), then asks them to parse the [`HttpResponse`]
//! or each [`SseEvent`] of a stream. Notifiers build a [`Delivery`] the host performs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a plugin provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PluginKind {
    /// Chat completions.
    AiProvider,
    /// Alert and notification delivery.
    Notifier,
}

/// How a provider produces completions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// Builds HTTP requests the host sends (`chat.build_request`, `chat.parse_*`).
    #[default]
    Http,
    /// Answers in-process (`chat.complete`, and `chat.stream` through `call_stream`).
    Local,
}

/// A secret the plugin needs. The operator names an environment variable for it; the host reads
/// it and passes the value in `PluginConfig::secrets`. Secrets never appear in responses or logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretSpec {
    /// Key in `PluginConfig::secrets`, e.g. `api_key`.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Whether the instance can work without it.
    pub required: bool,
    /// The environment variable read when the operator names none, e.g. `MOONSHOT_API_KEY`.
    #[serde(default)]
    pub default_env: Option<String>,
}

/// Describes a plugin: returned by `manifest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Unique name, `[a-z0-9_-]+`; instances refer to it with `plugin = "<name>"`.
    pub name: String,
    /// Provider or notifier.
    pub kind: PluginKind,
    /// The plugin's own version (semver).
    pub version: String,
    /// One line for humans.
    pub description: String,
    /// A mock or test double, never a real model or channel; labelled as such wherever listed.
    #[serde(default)]
    pub mock: bool,
    /// JSON Schema of the instance `settings`.
    pub config_schema: Value,
    /// Secrets the instance reads.
    #[serde(default)]
    pub secrets: Vec<SecretSpec>,
    /// Create an instance named after the plugin, with empty settings, when the operator
    /// configures none.
    #[serde(default)]
    pub default_instance: bool,
    /// For providers: HTTP (sans-IO) or local.
    #[serde(default)]
    pub transport: Transport,
}

/// What `create` receives.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PluginConfig {
    /// The instance settings, already validated against `config_schema`.
    #[serde(default)]
    pub settings: Value,
    /// Secret values by name (only those that are set).
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
}

/// Deserializes instance `settings` (null counts as `{}`) into a plugin's settings type. A bad
/// value is reported as a `config` error naming the setting at fault, where it can be found.
pub fn parse_settings<T: serde::de::DeserializeOwned>(settings: &Value) -> Result<T, PluginError> {
    let object = match settings {
        Value::Null => serde_json::Map::new(),
        Value::Object(map) => map.clone(),
        _ => return Err(PluginError::config("settings must be an object")),
    };
    serde_json::from_value(Value::Object(object.clone())).map_err(|e| {
        // Find the key whose removal makes the error go away (or turn into "missing").
        let culprit = object.keys().find(|key| {
            let mut rest = object.clone();
            rest.remove(key.as_str());
            match serde_json::from_value::<T>(Value::Object(rest)) {
                Ok(_) => true,
                Err(e) => e.to_string().contains(&format!("missing field `{key}`")),
            }
        });
        match culprit {
            Some(key) => PluginError::config(format!("invalid setting `{key}`: {e}")),
            None => PluginError::config(format!("invalid settings: {e}")),
        }
    })
}

/// A model a provider instance serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The id sent upstream, e.g. `kimi-k2-0905-preview`.
    pub id: String,
    /// A name for people.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Context window in tokens.
    #[serde(default)]
    pub context_window: Option<u32>,
    /// Largest completion in tokens.
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
}

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatRole {
    /// Instructions.
    System,
    /// The person.
    User,
    /// The model.
    Assistant,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who said it.
    pub role: ChatRole,
    /// What was said.
    pub content: String,
}

/// A chat completion request, provider-neutral.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// Model id.
    pub model: String,
    /// The conversation so far (system prompt first, if any).
    pub messages: Vec<ChatMessage>,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default)]
    pub top_p: Option<f64>,
    /// Completion cap in tokens.
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Stop sequences.
    #[serde(default)]
    pub stop: Vec<String>,
    /// Whether the host will read the answer as a server-sent event stream.
    #[serde(default)]
    pub stream: bool,
}

/// An HTTP request for the host to send. Header values may contain `${secret:NAME}`, which the
/// host replaces with the secret's value just before sending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Header name and value pairs.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Body text (usually JSON).
    #[serde(default)]
    pub body: Option<String>,
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header name and value pairs (names lower-case).
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub body: String,
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SseEvent {
    /// The `event:` field, if any.
    #[serde(default)]
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Token counts of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens, cached ones included.
    pub prompt_tokens: u64,
    /// Input tokens served from the provider's cache (billed at the cached rate).
    #[serde(default)]
    pub cached_prompt_tokens: u64,
    /// Output tokens, reasoning included.
    pub completion_tokens: u64,
}

/// A whole (non-streamed) completion.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The provider's id for the completion.
    #[serde(default)]
    pub id: Option<String>,
    /// The model that answered.
    #[serde(default)]
    pub model: Option<String>,
    /// The answer.
    pub content: String,
    /// Reasoning text, for models that expose it (`reasoning_content`).
    #[serde(default)]
    pub reasoning: Option<String>,
    /// Why generation stopped (`stop`, `length`, ...).
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Token counts, when the provider reports them.
    #[serde(default)]
    pub usage: Option<Usage>,
}

/// One step of a streamed completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// New text.
    Delta {
        /// Answer text.
        #[serde(default)]
        content: String,
        /// Reasoning text.
        #[serde(default)]
        reasoning: String,
    },
    /// Token counts; if several arrive, the last one counts.
    Usage {
        /// The counts.
        usage: Usage,
    },
    /// The stream is complete.
    Done {
        /// Why generation stopped.
        #[serde(default)]
        finish_reason: Option<String>,
    },
}

/// How urgent a notification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// For the record.
    Info,
    /// Needs a look.
    Warning,
    /// Needs action now.
    Critical,
    /// A problem went away.
    Resolved,
}

impl Severity {
    /// Upper-case label for message text: `INFO`, `WARNING`, `CRITICAL`, `RESOLVED`.
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warning => "WARNING",
            Severity::Critical => "CRITICAL",
            Severity::Resolved => "RESOLVED",
        }
    }
}

/// Something to tell people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Short headline.
    pub title: String,
    /// The message (plain text; channels that support Markdown may render it).
    pub body: String,
    /// How urgent.
    pub severity: Severity,
    /// When it happened, milliseconds since the Unix epoch (also used for request signing).
    pub timestamp_ms: i64,
    /// Extra key/value facts.
    #[serde(default)]
    pub fields: Vec<(String, String)>,
    /// A link for more detail.
    #[serde(default)]
    pub link: Option<String>,
    /// Where to send it instead of the instance's configured destination, for channels that
    /// support it: an email address (`email`) or an `http(s)://` URL (`webhook`). Set for a
    /// user's own alerts; channels without a per-message destination ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
}

/// How to reach an SMTP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmtpTarget {
    /// Host name.
    pub host: String,
    /// Port (25, 465, 587, ...).
    pub port: u16,
    /// `none`, `starttls` or `tls`.
    pub tls: SmtpTls,
    /// Login, if the server needs one.
    #[serde(default)]
    pub username: Option<String>,
    /// Password (from a secret).
    #[serde(default)]
    pub password: Option<String>,
}

/// Transport security for SMTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain text (only for a local relay).
    None,
    /// Upgrade with STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// An email for the host to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailMessage {
    /// The server.
    pub smtp: SmtpTarget,
    /// Sender address.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
}

/// What a notifier wants the host to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Delivery {
    /// Send this request; then `notify.parse_response` judges the answer.
    Http {
        /// The request.
        request: HttpRequest,
    },
    /// Send this email over SMTP.
    Email {
        /// The email.
        email: EmailMessage,
    },
}

/// Whether a delivery worked, as judged from the channel's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryReport {
    /// Delivered.
    pub ok: bool,
    /// The channel's own words.
    pub detail: String,
}

/// Why a plugin call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is wrong (bad parameter, context too long): the caller must change it.
    BadInput,
    /// The upstream service failed or refused (auth, quota, outage).
    Upstream,
    /// The instance configuration is wrong.
    Config,
    /// The method is not implemented by this plugin.
    Unsupported,
    /// A bug in the plugin.
    Internal,
}

/// A failure reported by a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginError {
    /// The kind of failure.
    pub code: ErrorCode,
    /// A message for the caller (the provider's own words where there are some).
    pub message: String,
}

impl PluginError {
    /// A failure of `code` with `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// A `config` error.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Config, message)
    }

    /// An `upstream` error.
    pub fn upstream(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Upstream, message)
    }

    /// An `unsupported` error for `method`.
    pub fn unsupported(method: &str) -> Self {
        Self::new(
            ErrorCode::Unsupported,
            format!("this plugin does not implement `{method}`"),
        )
    }
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for PluginError {}
