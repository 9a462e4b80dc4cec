//! Replies in OpenAI's shapes: a `chat.completion`, `chat.completion.chunk`s over server-sent
//! events ending in `[DONE]`, and the model list. `../shared/specs/openai-chat-subset.yaml`
//! (copied into `tests/openai-sdk/`) is the reference; the SDK tests validate against it.

use std::convert::Infallible;

use axum::response::sse::Event;
use cloudbase_schema::db::models::AiCall;
use cloudbase_schema::services::chat::{ChatChunk, ChatOutcome};
use serde::Serialize;
use serde_json::{Value, json};

use super::error::ApiError;

/// What every chunk of one stream repeats.
#[derive(Debug, Clone)]
pub struct Frame {
    /// `chatcmpl-<call id>`.
    pub id: String,
    /// Unix seconds of the call's start.
    pub created: i64,
    /// The model name the client sent.
    pub model: String,
    /// End with a usage chunk.
    pub include_usage: bool,
    /// For an internal error's message.
    pub request_id: String,
}

impl Frame {
    /// The frame of `call`'s stream.
    pub fn new(
        call_id: &str,
        started_unix: i64,
        model: &str,
        include_usage: bool,
        request_id: &str,
    ) -> Self {
        Self {
            id: completion_id(call_id),
            created: started_unix,
            model: model.to_owned(),
            include_usage,
            request_id: request_id.to_owned(),
        }
    }

    fn chunk(&self, choice: Option<ChunkChoice<'_>>, usage: Option<Usage>) -> Event {
        let chunk = Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: choice.as_slice(),
            usage,
        };
        Event::default().data(written(&chunk))
    }

    /// The first chunk: the assistant's role.
    pub fn opening(&self) -> Event {
        self.chunk(
            Some(ChunkChoice::with(Delta {
                role: Some("assistant"),
                content: Some(""),
            })),
            None,
        )
    }

    /// The events for one item of the chat stream.
    pub fn events(
        &self,
        item: Result<ChatChunk, cloudbase_schema::Error>,
    ) -> Vec<Result<Event, Infallible>> {
        let events = match item {
            Ok(ChatChunk::Delta { content, .. }) if content.is_empty() => Vec::new(),
            Ok(ChatChunk::Delta { content, .. }) => {
                let delta = Delta {
                    role: None,
                    content: Some(&content),
                };
                vec![self.chunk(Some(ChunkChoice::with(delta)), None)]
            }
            Ok(ChatChunk::Done(outcome)) => {
                let finish = finish_reason(outcome.finish_reason.as_deref());
                let last = ChunkChoice {
                    finish_reason: Some(finish),
                    ..ChunkChoice::with(Delta::default())
                };
                let mut events = vec![self.chunk(Some(last), None)];
                if self.include_usage {
                    events.push(self.chunk(None, Some(Usage::of(&outcome.call))));
                }
                events.push(Event::default().data("[DONE]"));
                events
            }
            // A failure after the stream started: OpenAI's SDKs raise an `error` event.
            Err(e) => {
                let error = ApiError::from_service(&e, &self.request_id);
                vec![Event::default().data(error.body_json().to_string())]
            }
        };
        events.into_iter().map(Ok).collect()
    }
}

/// The id of a completion: the call record's, recognisably.
pub fn completion_id(call_id: &str) -> String {
    format!("chatcmpl-{call_id}")
}

/// Unix seconds of a call's start.
pub fn created(call: &AiCall) -> i64 {
    call.started_at.and_utc().timestamp()
}

/// A finish reason OpenAI's clients know (`stop` for any other).
fn finish_reason(reason: Option<&str>) -> &'static str {
    match reason {
        Some("length") => "length",
        Some("content_filter") => "content_filter",
        _ => "stop",
    }
}

/// A reply as JSON text. What is written here (strings, numbers, `null`s) cannot fail to be.
fn written(reply: &impl Serialize) -> String {
    serde_json::to_string(reply).unwrap_or_default()
}

/// A `chat.completion.chunk`; with no choice, the usage chunk.
#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    choices: &'a [ChunkChoice<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

impl<'a> ChunkChoice<'a> {
    fn with(delta: Delta<'a>) -> Self {
        Self {
            index: 0,
            delta,
            logprobs: None,
            finish_reason: None,
        }
    }
}

/// What a chunk adds; the last chunk's is empty (`{}`).
#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
}

/// The usage of a finished call.
#[derive(Serialize)]
struct Usage {
    prompt_tokens: i64,
    completion_tokens: i64,
    total_tokens: i64,
    prompt_tokens_details: CachedTokens,
}

#[derive(Serialize)]
struct CachedTokens {
    cached_tokens: i64,
}

impl Usage {
    fn of(call: &AiCall) -> Self {
        Self {
            prompt_tokens: call.prompt_tokens,
            completion_tokens: call.completion_tokens,
            total_tokens: call.prompt_tokens + call.completion_tokens,
            prompt_tokens_details: CachedTokens {
                cached_tokens: call.cached_prompt_tokens,
            },
        }
    }
}

/// A whole `chat.completion`.
#[derive(Serialize)]
struct Completion<'a> {
    id: String,
    object: &'static str,
    created: i64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    usage: Usage,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: Message<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
    refusal: Option<()>,
}

/// A whole `chat.completion`, as JSON text.
pub fn completion(model: &str, outcome: &ChatOutcome) -> String {
    written(&Completion {
        id: completion_id(&outcome.call.id),
        object: "chat.completion",
        created: created(&outcome.call),
        model,
        choices: [Choice {
            index: 0,
            message: Message {
                role: "assistant",
                content: &outcome.content,
                refusal: None,
            },
            logprobs: None,
            finish_reason: finish_reason(outcome.finish_reason.as_deref()),
        }],
        usage: Usage::of(&outcome.call),
    })
}

/// One entry of `GET /v1/models`.
pub fn model(provider: &str, id: &str) -> Value {
    json!({
        "id": format!("{provider}/{id}"),
        "object": "model",
        // The gateway does not know when a provider made a model.
        "created": 0,
        "owned_by": provider,
    })
}
