//! Replies in OpenAI's shapes: a `chat.completion`, `chat.completion.chunk`s over server-sent
//! events ending in `[DONE]`, and the model list. `../shared/specs/openai-chat-subset.yaml`
//! (copied into `tests/openai-sdk/`) is the reference; the SDK tests validate against it.

use std::convert::Infallible;

use axum::response::sse::Event;
use cloudbase_schema::db::models::AiCall;
use cloudbase_schema::services::chat::{ChatChunk, ChatOutcome};
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

    fn chunk(&self, choices: Value, usage: Option<Value>) -> Event {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        });
        if let Some(usage) = usage {
            chunk["usage"] = usage;
        }
        Event::default().data(chunk.to_string())
    }

    fn choice(&self, delta: Value, finish_reason: Option<&str>) -> Value {
        json!([{ "index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason }])
    }

    /// The first chunk: the assistant's role.
    pub fn opening(&self) -> Event {
        self.chunk(
            self.choice(json!({ "role": "assistant", "content": "" }), None),
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
                vec![self.chunk(self.choice(json!({ "content": content }), None), None)]
            }
            Ok(ChatChunk::Done(outcome)) => {
                let finish = finish_reason(outcome.finish_reason.as_deref());
                let mut events = vec![self.chunk(self.choice(json!({}), Some(finish)), None)];
                if self.include_usage {
                    events.push(self.chunk(json!([]), Some(usage(&outcome.call))));
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

/// The usage of a finished call.
fn usage(call: &AiCall) -> Value {
    json!({
        "prompt_tokens": call.prompt_tokens,
        "completion_tokens": call.completion_tokens,
        "total_tokens": call.prompt_tokens + call.completion_tokens,
        "prompt_tokens_details": { "cached_tokens": call.cached_prompt_tokens },
    })
}

/// A whole `chat.completion`.
pub fn completion(model: &str, outcome: &ChatOutcome) -> Value {
    json!({
        "id": completion_id(&outcome.call.id),
        "object": "chat.completion",
        "created": created(&outcome.call),
        "model": model,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": outcome.content, "refusal": null },
            "logprobs": null,
            "finish_reason": finish_reason(outcome.finish_reason.as_deref()),
        }],
        "usage": usage(&outcome.call),
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
