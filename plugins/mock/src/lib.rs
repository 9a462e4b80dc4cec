//! The `mock` AI provider: a MOCK, never a real model. It answers locally and deterministically,
//! plain or streamed, with real token counts, so demos and tests run without an upstream.
//!
//! - [`tokens`]: the mock's tokenizer and how a reply is cut into stream deltas.
//! - `tests`: unit tests (replies, streams, limits, fault models, settings, schema).
//!
//! # Behaviour
//!
//! - **Tokens**: a token is a maximal run of ASCII alphanumerics, or any single other
//!   non-whitespace character (each CJK character and each punctuation mark is one token).
//! - **Prompt tokens**: `sum over messages of (tokens(content) + 4) + 2`; `cached_prompt_tokens`
//!   is always 0. A prompt over the model's context window (32768) is `BadInput`.
//! - **Reply**: `"Mock reply: " + <last user message>`, cut after `min(max_tokens, 4096)` tokens
//!   when it is longer (finish reason `length`, else `stop`). Completion tokens are the tokens of
//!   the reply. Temperature, top-p and stop sequences are ignored.
//! - **Streaming**: one `Delta` per reply token, each carrying the whitespace before it (so the
//!   deltas concatenate to the reply exactly), then one `Usage` (the same as `chat.complete`
//!   reports), then `Done`. It stops as soon as the host stops listening.
//! - **Models**: `mock-echo` sleeps `delay_ms` between deltas (for demos); `mock-fast` never sleeps.
//!
//! # Settings
//!
//! `delay_ms` (integer ≥ 0, default 0), `fault_injection` (boolean, default false), `hang_ms`
//! (integer ≥ 0, default 30000). With `fault_injection` on, two more models exist for host
//! tests: `mock-fault-panic` panics inside `chat.complete`/`chat.stream` (the SDK's shims catch
//! it), and `mock-fault-hang` sleeps `hang_ms` before answering like `mock-echo`. With it off,
//! those names are unknown models.

#[cfg(test)]
mod tests;
pub mod tokens;

use std::thread::sleep;
use std::time::Duration;

use cloudbase_plugin_api::export_plugin;
use cloudbase_plugin_api::messages::{
    ChatRequest, ChatResponse, ChatRole, ErrorCode, Manifest, ModelInfo, PluginConfig, PluginError,
    PluginKind, StreamEvent, Transport, Usage,
};
use cloudbase_plugin_api::parse_settings;
use cloudbase_plugin_api::traits::Provider;
use serde::Deserialize;

use serde_json::json;

use crate::tokens::{count_tokens, delta_pieces, token_spans};

/// Context window of every mock model, in tokens.
const CONTEXT_WINDOW: u32 = 32_768;
/// Largest reply of every mock model, in tokens.
const MAX_OUTPUT_TOKENS: u32 = 4_096;
/// What every reply starts with.
const REPLY_PREFIX: &str = "Mock reply: ";

/// The instance settings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    delay_ms: u64,
    #[serde(default)]
    fault_injection: bool,
    #[serde(default = "default_hang_ms")]
    hang_ms: u64,
}

fn default_hang_ms() -> u64 {
    30_000
}

/// The models, by behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Model {
    Echo,
    Fast,
    FaultPanic,
    FaultHang,
}

impl Model {
    const ALL: [(Model, &'static str, &'static str); 4] = [
        (Model::Echo, "mock-echo", "Mock echo (not a real model)"),
        (Model::Fast, "mock-fast", "Mock fast (not a real model)"),
        (
            Model::FaultPanic,
            "mock-fault-panic",
            "Mock fault: panics (test only)",
        ),
        (
            Model::FaultHang,
            "mock-fault-hang",
            "Mock fault: hangs for hang_ms (test only)",
        ),
    ];

    fn is_fault(self) -> bool {
        matches!(self, Model::FaultPanic | Model::FaultHang)
    }
}

/// A reply worked out in full before anything is returned or streamed.
struct Answer {
    content: String,
    usage: Usage,
    finish_reason: &'static str,
    model: Model,
}

/// The mock provider instance.
#[derive(Debug)]
pub struct Mock {
    settings: Settings,
}

impl Mock {
    fn lookup(&self, id: &str) -> Result<Model, PluginError> {
        Model::ALL
            .iter()
            .find(|(model, name, _)| {
                *name == id && (!model.is_fault() || self.settings.fault_injection)
            })
            .map(|(model, _, _)| *model)
            .ok_or_else(|| bad_input(format!("unknown model `{id}`")))
    }

    /// Checks the request, runs any injected fault, and works out the whole answer.
    fn answer(&self, request: &ChatRequest) -> Result<Answer, PluginError> {
        let model = self.lookup(&request.model)?;
        match model {
            Model::FaultPanic => panic!("mock fault injection: panic"),
            Model::FaultHang => sleep(Duration::from_millis(self.settings.hang_ms)),
            Model::Echo | Model::Fast => {}
        }
        if request.messages.is_empty() {
            return Err(bad_input("messages must not be empty"));
        }
        let last_user = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == ChatRole::User)
            .ok_or_else(|| bad_input("no user message"))?;
        let prompt_tokens = request
            .messages
            .iter()
            .map(|m| count_tokens(&m.content) + 4)
            .sum::<u64>()
            + 2;
        if prompt_tokens > u64::from(CONTEXT_WINDOW) {
            return Err(bad_input(format!(
                "prompt is {prompt_tokens} tokens, over the context window of {CONTEXT_WINDOW}"
            )));
        }
        let mut content = format!("{REPLY_PREFIX}{}", last_user.content);
        let limit = request
            .max_tokens
            .unwrap_or(MAX_OUTPUT_TOKENS)
            .min(MAX_OUTPUT_TOKENS) as usize;
        let spans = token_spans(&content);
        let finish_reason = if spans.len() > limit {
            let end = limit.checked_sub(1).map_or(0, |last| spans[last].end);
            content.truncate(end);
            "length"
        } else {
            "stop"
        };
        let usage = Usage {
            prompt_tokens,
            cached_prompt_tokens: 0,
            completion_tokens: count_tokens(&content),
        };
        Ok(Answer {
            content,
            usage,
            finish_reason,
            model,
        })
    }
}

impl Provider for Mock {
    const NAME: &'static str = "mock";

    fn manifest() -> Manifest {
        Manifest {
            name: Self::NAME.into(),
            kind: PluginKind::AiProvider,
            version: env!("CARGO_PKG_VERSION").into(),
            description:
                "MOCK provider: deterministic local replies for demos and tests; not a real model"
                    .into(),
            mock: true,
            config_schema: json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "properties": {
                    "delay_ms": {
                        "type": "integer", "minimum": 0, "default": 0,
                        "description": "Pause between streamed deltas of mock-echo, in milliseconds (for demos)."
                    },
                    "fault_injection": {
                        "type": "boolean", "default": false,
                        "description": "Expose mock-fault-panic and mock-fault-hang (for host tests only)."
                    },
                    "hang_ms": {
                        "type": "integer", "minimum": 0, "default": 30000,
                        "description": "How long mock-fault-hang sleeps before answering, in milliseconds."
                    }
                },
                "required": [],
                "additionalProperties": false
            }),
            secrets: vec![],
            default_instance: true,
            transport: Transport::Local,
        }
    }

    fn create(config: PluginConfig) -> Result<Self, PluginError> {
        Ok(Mock {
            settings: parse_settings(&config.settings)?,
        })
    }

    fn models(&self) -> Vec<ModelInfo> {
        Model::ALL
            .iter()
            .filter(|(model, _, _)| !model.is_fault() || self.settings.fault_injection)
            .map(|(_, id, display)| ModelInfo {
                id: (*id).into(),
                display_name: Some((*display).into()),
                context_window: Some(CONTEXT_WINDOW),
                max_output_tokens: Some(MAX_OUTPUT_TOKENS),
                price: None,
            })
            .collect()
    }

    fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, PluginError> {
        let answer = self.answer(request)?;
        Ok(ChatResponse {
            id: None,
            model: Some(request.model.clone()),
            content: answer.content,
            reasoning: None,
            finish_reason: Some(answer.finish_reason.into()),
            usage: Some(answer.usage),
        })
    }

    fn stream(
        &self,
        request: &ChatRequest,
        emit: &mut dyn FnMut(StreamEvent) -> bool,
    ) -> Result<(), PluginError> {
        let answer = self.answer(request)?;
        let delay = match answer.model {
            Model::Fast => Duration::ZERO,
            _ => Duration::from_millis(self.settings.delay_ms),
        };
        for (i, piece) in delta_pieces(&answer.content).into_iter().enumerate() {
            if i > 0 && !delay.is_zero() {
                sleep(delay);
            }
            let delta = StreamEvent::Delta {
                content: piece.into(),
                reasoning: String::new(),
            };
            if !emit(delta) {
                return Ok(());
            }
        }
        if !emit(StreamEvent::Usage {
            usage: answer.usage,
        }) {
            return Ok(());
        }
        emit(StreamEvent::Done {
            finish_reason: Some(answer.finish_reason.into()),
        });
        Ok(())
    }
}

fn bad_input(message: impl Into<String>) -> PluginError {
    PluginError::new(ErrorCode::BadInput, message)
}

export_plugin!(provider: Mock);
