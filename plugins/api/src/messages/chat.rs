//! Chat completions, provider-neutral: the request, the whole answer, the steps of a streamed
//! one, and token counts.

use serde::{Deserialize, Serialize};

/// A model a provider instance serves. Build one with [`ModelInfo::new`] and set what you know,
/// or with `..Default::default()` after the fields you give, so that fields added later (as
/// `price` was) do not break the plugin's source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// The provider's list price for this model, for this instance (its region decides the
    /// currency). The host seeds it as a price row when none exists yet for the instance, the
    /// model and `effective_from`. Optional: plugins built before this field existed omit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<ListPrice>,
}

impl ModelInfo {
    /// A model known by its id alone.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            ..Self::default()
        }
    }
}

/// A list price as the provider publishes it. Amounts are exact decimal strings (`"0.60"`, at
/// most 6 decimals) in `currency` per 1M tokens: no floats cross the boundary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListPrice {
    /// Per 1M uncached input tokens.
    pub input: String,
    /// Per 1M input tokens served from the provider's cache.
    pub cached_input: String,
    /// Per 1M output tokens (reasoning included).
    pub output: String,
    /// ISO 4217 code, such as `CNY` or `USD`.
    pub currency: String,
    /// When the price took effect, RFC 3339 in UTC (`2025-11-06T00:00:00Z`).
    pub effective_from: String,
    /// Where the price comes from and when that source was read.
    #[serde(default)]
    pub note: Option<String>,
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
