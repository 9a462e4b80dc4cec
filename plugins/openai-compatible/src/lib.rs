//! The `openai-compatible` plugin: any server that speaks OpenAI's chat-completions API, such as
//! DeepSeek, Qwen (DashScope compatible mode), OpenRouter, vLLM or Ollama. All of it is in this
//! file; its one module is
//!
//! - `tests`: unit tests of the settings (the recorded-response tests are in
//!   `tests/openai_compatible.rs`).
//!
//! Sans-IO like every HTTP provider: it builds requests and parses answers with
//! [`cloudbase_plugin_api::openai`]. Each instance names its endpoint and models, so there is no
//! default instance. The `api_key` secret is optional (local servers need none); when set, it is
//! sent as `authorization: Bearer ${secret:api_key}`, a placeholder the host fills in.
//!
//! Settings: `base_url` and `models` (required), `stream_usage` (send
//! `stream_options.include_usage`, default on; turn it off for servers that reject it) and
//! `extra_headers` (e.g. OpenRouter's `HTTP-Referer`; values may use `${secret:api_key}`).

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use cloudbase_plugin_api::messages::{
    ChatRequest, ChatResponse, ErrorCode, HttpRequest, HttpResponse, Manifest, ModelInfo,
    PluginConfig, PluginError, PluginKind, SecretSpec, SseEvent, StreamEvent, Transport,
};
use cloudbase_plugin_api::{Provider, export_plugin, openai, parse_settings};
use serde::Deserialize;
use serde_json::{Value, json};

/// Headers the plugin sets itself; `extra_headers` may not override them.
const RESERVED_HEADERS: &[&str] = &["content-type", "accept", "authorization"];

/// An instance: one endpoint and the models it serves.
#[derive(Debug, Clone)]
pub struct OpenAiCompatible {
    base_url: String,
    models: Vec<ModelInfo>,
    stream_usage: bool,
    extra_headers: Vec<(String, String)>,
    has_api_key: bool,
}

/// The instance settings; `null` counts as absent. `base_url` and `models` are required, checked
/// in [`OpenAiCompatible::from_settings`] rather than by serde: for a missing `models`,
/// [`parse_settings`] would name the `base_url` that is present.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The API root; `/chat/completions` is appended.
    base_url: Option<String>,
    /// The models this instance serves.
    models: Option<Vec<ModelInfo>>,
    /// Send `stream_options.include_usage` when streaming (default on).
    stream_usage: Option<bool>,
    /// Headers added to every request.
    extra_headers: Option<BTreeMap<String, String>>,
}

/// A `config` error about setting `name`, worded like those of [`parse_settings`].
fn invalid_setting(name: &str, problem: impl std::fmt::Display) -> PluginError {
    PluginError::config(format!("invalid setting `{name}`: {problem}"))
}

fn check_header(name: &str, value: &str) -> Result<(), PluginError> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(invalid_setting(
            "extra_headers",
            format!("{name:?} is not a header name"),
        ));
    }
    if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(invalid_setting(
            "extra_headers",
            format!("`{name}` is set by the plugin"),
        ));
    }
    if value.contains(['\r', '\n']) {
        return Err(invalid_setting(
            "extra_headers",
            format!("the value of `{name}` has a line break"),
        ));
    }
    Ok(())
}

impl OpenAiCompatible {
    fn from_settings(settings: &Value) -> Result<Self, PluginError> {
        let Settings {
            base_url,
            models,
            stream_usage,
            extra_headers,
        } = parse_settings(settings)?;
        let required = |name| invalid_setting(name, "required");
        let base_url = base_url.ok_or_else(|| required("base_url"))?;
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(invalid_setting(
                "base_url",
                format!("{base_url:?} must start with http:// or https://"),
            ));
        }
        let models = models.ok_or_else(|| required("models"))?;
        if models.is_empty() {
            return Err(invalid_setting("models", "the list is empty"));
        }
        let extra_headers = extra_headers.unwrap_or_default();
        for (name, value) in &extra_headers {
            check_header(name, value)?;
        }
        Ok(Self {
            base_url,
            models,
            stream_usage: stream_usage.unwrap_or(true),
            extra_headers: extra_headers.into_iter().collect(),
            has_api_key: false,
        })
    }

    /// Rejects out-of-range parameters and unknown models before anything is sent.
    fn validate(&self, req: &ChatRequest) -> Result<(), PluginError> {
        let bad = |msg: String| Err(PluginError::new(ErrorCode::BadInput, msg));
        if req.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
            return bad("temperature must be between 0 and 2".to_owned());
        }
        if req.top_p.is_some_and(|p| !(0.0..=1.0).contains(&p)) {
            return bad("top_p must be between 0 and 1".to_owned());
        }
        if !self.models.iter().any(|m| m.id == req.model) {
            let ids: Vec<&str> = self.models.iter().map(|m| m.id.as_str()).collect();
            return bad(format!(
                "unknown model `{}` (available: {})",
                req.model,
                ids.join(", ")
            ));
        }
        Ok(())
    }
}

impl Provider for OpenAiCompatible {
    const NAME: &'static str = "openai-compatible";

    fn manifest() -> Manifest {
        Manifest {
            name: Self::NAME.into(),
            kind: PluginKind::AiProvider,
            version: env!("CARGO_PKG_VERSION").into(),
            description:
                "Any OpenAI-compatible chat-completions server (DeepSeek, Qwen, vLLM, Ollama, ...)"
                    .into(),
            mock: false,
            config_schema: config_schema(),
            secrets: vec![SecretSpec {
                name: "api_key".into(),
                description: "API key, sent as a bearer token (local servers may need none)".into(),
                required: false,
                default_env: None,
            }],
            default_instance: false,
            transport: Transport::Http,
        }
    }

    fn create(config: PluginConfig) -> Result<Self, PluginError> {
        let provider = Self::from_settings(&config.settings)?;
        Ok(Self {
            has_api_key: config.secrets.contains_key("api_key"),
            ..provider
        })
    }

    fn models(&self) -> Vec<ModelInfo> {
        self.models.clone()
    }

    fn build_request(&self, request: &ChatRequest) -> Result<HttpRequest, PluginError> {
        self.validate(request)?;
        Ok(openai::chat_request(
            &self.base_url,
            request,
            self.has_api_key,
            self.stream_usage,
            &self.extra_headers,
        ))
    }

    fn parse_response(&self, response: &HttpResponse) -> Result<ChatResponse, PluginError> {
        openai::parse_response(response)
    }

    fn parse_stream_event(&self, event: &SseEvent) -> Result<Vec<StreamEvent>, PluginError> {
        openai::parse_stream_event(event)
    }
}

/// The JSON Schema of the instance settings.
fn config_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "base_url": {
                "description": "The API root, e.g. https://api.deepseek.com/v1 or http://127.0.0.1:11434/v1",
                "type": "string",
                "pattern": "^https?://"
            },
            "models": {
                "description": "The models this instance serves",
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {
                        "id": { "type": "string", "minLength": 1 },
                        "display_name": { "type": "string" },
                        "context_window": { "type": "integer", "minimum": 1 },
                        "max_output_tokens": { "type": "integer", "minimum": 1 }
                    },
                    "required": ["id"],
                    "additionalProperties": false
                }
            },
            "stream_usage": {
                "description": "Send stream_options.include_usage when streaming",
                "type": "boolean",
                "default": true
            },
            "extra_headers": {
                "description": "Extra request headers; values may use ${secret:api_key}",
                "type": "object",
                "additionalProperties": { "type": "string" }
            }
        },
        "required": ["base_url", "models"],
        "additionalProperties": false
    })
}

export_plugin!(provider: OpenAiCompatible);
