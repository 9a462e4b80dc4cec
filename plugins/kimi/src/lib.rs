//! The `kimi` plugin: Moonshot AI's Kimi models through their OpenAI-compatible chat-completions
//! API, on the China (`api.moonshot.cn`) or global (`api.moonshot.ai`) endpoint. All of it is in
//! this file; its one module is
//!
//! - `tests`: unit tests of the settings (the recorded-response tests are in `tests/kimi.rs`).
//!
//! Sans-IO like every HTTP provider: it builds requests (the API key travels as the
//! `${secret:api_key}` placeholder the host fills in) and parses answers with
//! [`cloudbase_plugin_api::openai`]. What is Kimi's own lives here:
//!
//! - the settings (`region`, `base_url`, `models`) and the built-in model list;
//! - the parameter ranges Kimi accepts (`temperature` and `top_p` in `[0, 1]`), checked before
//!   any upstream call so the caller gets a `bad_input` error instead of a billed round trip;
//! - no `stream_options`: Kimi reports stream usage in `choices[0].usage` of the last chunk.

#[cfg(test)]
mod tests;

use cloudbase_plugin_api::messages::{
    ChatRequest, ChatResponse, ErrorCode, HttpRequest, HttpResponse, Manifest, ModelInfo,
    PluginConfig, PluginError, PluginKind, SecretSpec, SseEvent, StreamEvent, Transport,
};
use cloudbase_plugin_api::{Provider, export_plugin, openai, parse_settings};
use serde::Deserialize;
use serde_json::{Value, json};

/// The China endpoint (`region = "cn"`, the default).
pub const CN_BASE_URL: &str = "https://api.moonshot.cn/v1";
/// The global endpoint (`region = "global"`).
pub const GLOBAL_BASE_URL: &str = "https://api.moonshot.ai/v1";

/// The models served when the settings list none: id and context window in tokens.
const BUILTIN_MODELS: &[(&str, u32)] = &[
    ("kimi-k2-0905-preview", 262_144),
    ("kimi-k2-turbo-preview", 262_144),
    ("kimi-latest", 131_072),
    ("kimi-thinking-preview", 131_072),
    ("moonshot-v1-8k", 8_192),
    ("moonshot-v1-32k", 32_768),
    ("moonshot-v1-128k", 131_072),
];

/// Which Moonshot endpoint to use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Region {
    #[default]
    Cn,
    Global,
}

/// The instance settings. Every key is optional, and `null` counts as absent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Which endpoint `base_url` defaults to.
    region: Option<Region>,
    /// Overrides the region's endpoint.
    base_url: Option<String>,
    /// Replaces the built-in model list.
    models: Option<Vec<ModelInfo>>,
}

/// A Kimi instance: where to send requests, which models it serves, whether a key is set.
#[derive(Debug, Clone)]
pub struct Kimi {
    base_url: String,
    models: Vec<ModelInfo>,
    has_api_key: bool,
}

/// A `config` error about setting `name`, worded like those of [`parse_settings`].
fn invalid_setting(name: &str, problem: impl std::fmt::Display) -> PluginError {
    PluginError::config(format!("invalid setting `{name}`: {problem}"))
}

impl Kimi {
    fn from_settings(settings: &Value) -> Result<Self, PluginError> {
        let Settings {
            region,
            base_url,
            models,
        } = parse_settings(settings)?;
        let base_url = match base_url {
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => url,
            Some(url) => {
                return Err(invalid_setting(
                    "base_url",
                    format!("{url:?} must start with http:// or https://"),
                ));
            }
            None => match region.unwrap_or_default() {
                Region::Cn => CN_BASE_URL.to_owned(),
                Region::Global => GLOBAL_BASE_URL.to_owned(),
            },
        };
        let models = match models {
            Some(models) if models.is_empty() => {
                return Err(invalid_setting("models", "the list is empty"));
            }
            Some(models) => models,
            None => builtin_models(),
        };
        Ok(Self {
            base_url,
            models,
            has_api_key: false,
        })
    }

    /// Rejects what Kimi would refuse, before anything is sent.
    fn validate(&self, req: &ChatRequest) -> Result<(), PluginError> {
        let bad = |msg: String| Err(PluginError::new(ErrorCode::BadInput, msg));
        for (name, value) in [("temperature", req.temperature), ("top_p", req.top_p)] {
            if value.is_some_and(|v| !(0.0..=1.0).contains(&v)) {
                return bad(format!("{name} must be between 0 and 1 for Kimi"));
            }
        }
        if !self.models.iter().any(|m| m.id == req.model) {
            let ids: Vec<&str> = self.models.iter().map(|m| m.id.as_str()).collect();
            return bad(format!(
                "unknown model `{}` for kimi (available: {})",
                req.model,
                ids.join(", ")
            ));
        }
        Ok(())
    }
}

fn builtin_models() -> Vec<ModelInfo> {
    BUILTIN_MODELS
        .iter()
        .map(|&(id, context_window)| ModelInfo {
            id: id.to_owned(),
            display_name: None,
            context_window: Some(context_window),
            max_output_tokens: None,
        })
        .collect()
}

impl Provider for Kimi {
    const NAME: &'static str = "kimi";

    fn manifest() -> Manifest {
        Manifest {
            name: Self::NAME.into(),
            kind: PluginKind::AiProvider,
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Moonshot AI Kimi chat completions (China and global endpoints)".into(),
            mock: false,
            config_schema: config_schema(),
            secrets: vec![SecretSpec {
                name: "api_key".into(),
                description: "Moonshot API key".into(),
                required: true,
                default_env: Some("MOONSHOT_API_KEY".into()),
            }],
            default_instance: true,
            transport: Transport::Http,
        }
    }

    fn create(config: PluginConfig) -> Result<Self, PluginError> {
        let kimi = Self::from_settings(&config.settings)?;
        Ok(Self {
            has_api_key: config.secrets.contains_key("api_key"),
            ..kimi
        })
    }

    fn models(&self) -> Vec<ModelInfo> {
        self.models.clone()
    }

    fn build_request(&self, request: &ChatRequest) -> Result<HttpRequest, PluginError> {
        self.validate(request)?;
        // No `stream_options`: Kimi puts stream usage in `choices[0].usage` of the last chunk.
        Ok(openai::chat_request(
            &self.base_url,
            request,
            self.has_api_key,
            false,
            &[],
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
            "region": {
                "description": "cn: https://api.moonshot.cn/v1; global: https://api.moonshot.ai/v1",
                "enum": ["cn", "global"],
                "default": "cn"
            },
            "base_url": {
                "description": "Overrides the region's endpoint (a proxy, or a local mock in tests)",
                "type": "string",
                "pattern": "^https?://"
            },
            "models": {
                "description": "Replaces the built-in model list",
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
            }
        },
        "additionalProperties": false
    })
}

export_plugin!(provider: Kimi);
