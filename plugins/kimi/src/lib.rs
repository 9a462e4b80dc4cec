//! The `kimi` plugin: Moonshot AI's Kimi models through their OpenAI-compatible chat-completions
//! API, on the China (`api.moonshot.cn`) or global (`api.moonshot.ai`) endpoint. Its modules:
//!
//! - `catalogue`: the built-in models (context window, sampling rules, list prices per region);
//! - `errors`: Moonshot's error bodies, mapped by `error.type`;
//! - `tests`: unit tests of the settings and request shaping (the recorded-response tests are in
//!   `tests/kimi.rs`).
//!
//! Sans-IO like every HTTP provider: it builds requests (the API key travels as the
//! `${secret:api_key}` placeholder the host fills in) and parses answers with
//! [`cloudbase_plugin_api::openai`]. What is Kimi's own lives here:
//!
//! - the settings (`region`, `base_url`, `models`) and the built-in model list;
//! - list prices in the region's currency (CNY on `cn`, USD on `global`) on each [`ModelInfo`],
//!   which the host seeds as price rows for the instance;
//! - the parameter ranges Kimi accepts (`temperature` and `top_p` in `[0, 1]`, `max_tokens` up
//!   to the model's output cap), checked before any upstream call so the caller gets a
//!   `bad_input` error instead of a billed round trip;
//! - sampling the model fixes is not forwarded (`kimi-k2.5` rejects any `temperature` or `top_p`
//!   but its own; the thinking models get `temperature` 1.0);
//! - `max_tokens` is always sent: without it Moonshot stops answers at a small server default
//!   (about 1024 tokens), which cuts long and reasoning answers short;
//! - no `stream_options`: Kimi reports stream usage in `choices[0].usage` of the last chunk;
//! - a balance or quota failure (`exceeded_current_quota_error`) is a `billing` error, which the
//!   host never retries.

mod catalogue;
mod errors;
#[cfg(test)]
mod tests;

use catalogue::Sampling;
use cloudbase_plugin_api::messages::{
    ChatRequest, ChatResponse, ErrorCode, HttpRequest, HttpResponse, ListPrice, Manifest,
    ModelInfo, PluginConfig, PluginError, PluginKind, SecretSpec, SseEvent, StreamEvent, Transport,
};
use cloudbase_plugin_api::{Provider, export_plugin, openai, parse_settings};
use serde::Deserialize;
use serde_json::{Value, json};

/// The China endpoint (`region = "cn"`, the default).
pub const CN_BASE_URL: &str = "https://api.moonshot.cn/v1";
/// The global endpoint (`region = "global"`).
pub const GLOBAL_BASE_URL: &str = "https://api.moonshot.ai/v1";

/// Which Moonshot platform to use; it also decides the currency of the list prices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Region {
    /// China, billed in CNY.
    #[default]
    Cn,
    /// Global, billed in USD.
    Global,
}

/// The instance settings. Every key is optional, and `null` counts as absent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Which endpoint `base_url` defaults to, and which currency prices are in.
    region: Option<Region>,
    /// Overrides the region's endpoint.
    base_url: Option<String>,
    /// Replaces the built-in model list.
    models: Option<Vec<ModelInfo>>,
}

/// A Kimi instance: where to send requests, which models it serves (with list prices in its
/// region's currency), whether a key is set.
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
        let region = region.unwrap_or_default();
        let base_url = match base_url {
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => url,
            Some(url) => {
                return Err(invalid_setting(
                    "base_url",
                    format!("{url:?} must start with http:// or https://"),
                ));
            }
            None => match region {
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
        let models = models
            .into_iter()
            .map(|info| ModelInfo {
                price: list_price(&info.id, region),
                ..info
            })
            .collect();
        Ok(Self {
            base_url,
            models,
            has_api_key: false,
        })
    }

    /// Rejects what Kimi would refuse, before anything is sent, and returns the model asked for.
    fn validate(&self, req: &ChatRequest) -> Result<&ModelInfo, PluginError> {
        let bad = |msg: String| Err(PluginError::new(ErrorCode::BadInput, msg));
        for (name, value) in [("temperature", req.temperature), ("top_p", req.top_p)] {
            if value.is_some_and(|v| !(0.0..=1.0).contains(&v)) {
                return bad(format!("{name} must be between 0 and 1 for Kimi"));
            }
        }
        let Some(model) = self.models.iter().find(|m| m.id == req.model) else {
            let ids: Vec<&str> = self.models.iter().map(|m| m.id.as_str()).collect();
            return bad(format!(
                "unknown model `{}` for kimi (available: {})",
                req.model,
                ids.join(", ")
            ));
        };
        if let (Some(asked), Some(cap)) = (req.max_tokens, output_cap(model))
            && (asked == 0 || asked > cap)
        {
            return bad(format!(
                "max_tokens must be between 1 and {cap} for {}",
                model.id
            ));
        }
        Ok(model)
    }
}

/// The built-in models, with the output cap their context window allows.
fn builtin_models() -> Vec<ModelInfo> {
    catalogue::MODELS
        .iter()
        .map(|spec| ModelInfo {
            id: spec.id.to_owned(),
            display_name: None,
            context_window: Some(spec.context_window),
            max_output_tokens: Some(catalogue::output_cap(spec.context_window)),
            price: None,
        })
        .collect()
}

/// The list price of model `id` in `region`'s currency, when the catalogue has one.
fn list_price(id: &str, region: Region) -> Option<ListPrice> {
    let spec = catalogue::spec(id)?;
    match region {
        Region::Cn => spec.cny.map(|p| catalogue::list_price(&p, "CNY")),
        Region::Global => spec.usd.map(|p| catalogue::list_price(&p, "USD")),
    }
}

/// The largest output `model` may be asked for: its `max_output_tokens`, else what its context
/// window allows ([`catalogue::output_cap`]), else no cap is known.
fn output_cap(model: &ModelInfo) -> Option<u32> {
    model
        .max_output_tokens
        .or(model.context_window.map(catalogue::output_cap))
}

/// What is sent for `req` to `model`: sampling the model fixes is dropped or pinned, and
/// `max_tokens` is set when the caller set none.
fn shape(req: &ChatRequest, model: &ModelInfo) -> ChatRequest {
    let mut sent = req.clone();
    match catalogue::spec(&model.id).map(|s| s.sampling) {
        Some(Sampling::Fixed) => {
            sent.temperature = None;
            sent.top_p = None;
        }
        Some(Sampling::Thinking) => sent.temperature = Some(1.0),
        Some(Sampling::Free) | None => {}
    }
    if sent.max_tokens.is_none() {
        sent.max_tokens = default_max_tokens(req, model);
    }
    sent
}

/// The `max_tokens` sent when the caller set none: the model's output cap, lowered to the room
/// the context window leaves after the prompt. The prompt is counted as its UTF-8 bytes plus a
/// few per message, never fewer than its tokens, so input plus output stays within the window
/// (Moonshot refuses a request whose prompt and `max_tokens` together exceed it). `None` when no
/// cap is known or the prompt leaves no room (Moonshot then reports the length itself).
fn default_max_tokens(req: &ChatRequest, model: &ModelInfo) -> Option<u32> {
    let cap = output_cap(model)?;
    let Some(window) = model.context_window else {
        return Some(cap);
    };
    let prompt: u64 = req
        .messages
        .iter()
        .map(|m| m.content.len() as u64 + 8)
        .sum::<u64>()
        + 8;
    let room = u32::try_from(u64::from(window).saturating_sub(prompt)).unwrap_or(u32::MAX);
    (room > 0).then(|| cap.min(room))
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
        let model = self.validate(request)?;
        // No `stream_options`: Kimi puts stream usage in `choices[0].usage` of the last chunk.
        Ok(openai::chat_request(
            &self.base_url,
            &shape(request, model),
            self.has_api_key,
            false,
            &[],
        ))
    }

    fn parse_response(&self, response: &HttpResponse) -> Result<ChatResponse, PluginError> {
        if !(200..300).contains(&response.status) {
            return Err(errors::http_error(response.status, &response.body));
        }
        openai::parse_response(response)
    }

    fn parse_stream_event(&self, event: &SseEvent) -> Result<Vec<StreamEvent>, PluginError> {
        let error = serde_json::from_str::<Value>(event.data.trim())
            .ok()
            .and_then(|chunk| errors::stream_error(&chunk));
        match error {
            Some(error) => Err(error),
            None => openai::parse_stream_event(event),
        }
    }
}

/// The JSON Schema of the instance settings.
fn config_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "region": {
                "description": "cn: https://api.moonshot.cn/v1, prices in CNY; global: https://api.moonshot.ai/v1, prices in USD",
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
