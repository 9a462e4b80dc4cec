//! Helpers for the OpenAI chat-completions wire format, which most providers speak (OpenAI,
//! Moonshot/Kimi, DeepSeek, Qwen's compatible mode, vLLM, Ollama, ...).
//!
//! They cover the sans-IO half of an HTTP provider: [`chat_request`] builds the upstream request
//! (its `authorization` header carries the `${secret:api_key}` placeholder, which the host
//! replaces, so the plugin never sees the key), [`parse_response`] turns a whole answer or an
//! error into a [`ChatResponse`] or a [`PluginError`], and [`parse_stream_event`] turns one SSE
//! chunk into [`StreamEvent`]s.
//!
//! - `tests`: unit tests, on hand-written bodies and chunks.

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::messages::{
    ChatRequest, ChatResponse, ChatRole, ErrorCode, HttpRequest, HttpResponse, PluginError,
    SseEvent, StreamEvent, Usage,
};

/// The `authorization` header value [`chat_request`] sends; the host substitutes the secret.
pub const BEARER_API_KEY: &str = "Bearer ${secret:api_key}";

/// How much of a non-JSON error body ends up in an error message, in characters.
const RAW_BODY_LIMIT: usize = 500;

/// The chat-completions request body for `req`: `model`, `messages`, the sampling options that
/// are set, `stop` when non-empty, and `stream`. When streaming and `stream_usage_option` is set,
/// adds `"stream_options": {"include_usage": true}` so that OpenAI-style servers report usage.
pub fn chat_body(req: &ChatRequest, stream_usage_option: bool) -> Value {
    // Only strings, numbers and booleans: nothing that `to_value` could refuse.
    serde_json::to_value(Body::of(req, stream_usage_option)).unwrap_or_default()
}

/// [`chat_body`] as it is written, without a [`Value`] built on the way: a `Value` was about a
/// tenth of a gateway call's work in this plugin.
#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    messages: Vec<BodyMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct BodyMessage<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

impl<'a> Body<'a> {
    fn of(req: &'a ChatRequest, stream_usage_option: bool) -> Self {
        Body {
            model: &req.model,
            messages: req
                .messages
                .iter()
                .map(|m| BodyMessage {
                    role: role_name(m.role),
                    content: &m.content,
                })
                .collect(),
            temperature: req.temperature,
            top_p: req.top_p,
            max_tokens: req.max_tokens,
            stop: &req.stop,
            stream: req.stream,
            stream_options: (req.stream && stream_usage_option).then_some(StreamOptions {
                include_usage: true,
            }),
        }
    }
}

fn role_name(role: ChatRole) -> &'static str {
    match role {
        ChatRole::System => "system",
        ChatRole::User => "user",
        ChatRole::Assistant => "assistant",
    }
}

/// A `POST {base_url}/chat/completions` request for `req` (a trailing `/` on `base_url` is
/// ignored), with `content-type` and `accept` headers, then `authorization:`
/// [`BEARER_API_KEY`] when `with_api_key`, then `extra_headers`. The body is [`chat_body`].
pub fn chat_request(
    base_url: &str,
    req: &ChatRequest,
    with_api_key: bool,
    stream_usage_option: bool,
    extra_headers: &[(String, String)],
) -> HttpRequest {
    let accept = if req.stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    let mut headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("accept".to_owned(), accept.to_owned()),
    ];
    if with_api_key {
        headers.push(("authorization".to_owned(), BEARER_API_KEY.to_owned()));
    }
    headers.extend_from_slice(extra_headers);
    HttpRequest {
        method: "POST".to_owned(),
        url: format!("{}/chat/completions", base_url.trim_end_matches('/')),
        headers,
        // As `chat_body`, which cannot fail.
        body: serde_json::to_string(&Body::of(req, stream_usage_option)).ok(),
    }
}

#[derive(Deserialize)]
struct Completion {
    id: Option<String>,
    model: Option<String>,
    choices: Vec<Choice>,
    usage: Option<Value>,
    /// Read by the typed pass only ([`parse_response`]); the other pass reads it from the value.
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    content: Option<String>,
    reasoning_content: Option<String>,
}

/// Turns a whole upstream response into a completion or an error.
///
/// - 2xx: `id`, `model`, `choices[0].message.content` (`null` becomes `""`),
///   `choices[0].message.reasoning_content` as `reasoning`, `choices[0].finish_reason` and
///   [`parse_usage`]. Any other shape is an `Upstream` "invalid response from provider" error.
/// - 400, 404, 413 and 422 are the caller's fault (bad parameter, context too long, unknown
///   model): `BadInput` with the provider's `error.message`.
/// - Anything else (401, 403, 429, 5xx, ...) is `Upstream`, with the message prefixed by
///   `HTTP <status>: `. Without a JSON error message, the first 500 characters of the body are
///   used instead.
pub fn parse_response(resp: &HttpResponse) -> Result<ChatResponse, PluginError> {
    if !(200..300).contains(&resp.status) {
        return Err(http_error(resp.status, &resp.body));
    }
    // One typed pass reads the usual body without building a `Value` of it first (a tree of
    // maps and strings, about half the plugin's work on a call). A body it cannot read (no
    // `choices`, a field of another type, a key twice) goes the way that also reads odd bodies,
    // with the same outcome as before: a typed read succeeds only where that one would.
    let completion = match serde_json::from_str::<Completion>(&resp.body) {
        Ok(completion) => {
            // With `choices` read, only `error` can make this an error ([`error_message`]).
            let message = completion.error.as_ref().and_then(error_field_message);
            if let Some(message) = message.filter(|m| !m.is_empty()) {
                return Err(PluginError::upstream(message));
            }
            completion
        }
        Err(_) => completion_of_value(&resp.body)?,
    };
    let invalid = |e: &dyn std::fmt::Display| {
        PluginError::upstream(format!("invalid response from provider: {e}"))
    };
    let Some(choice) = completion.choices.into_iter().next() else {
        return Err(invalid(&"no choices"));
    };
    Ok(ChatResponse {
        id: completion.id,
        model: completion.model,
        content: choice.message.content.unwrap_or_default(),
        reasoning: choice.message.reasoning_content.filter(|r| !r.is_empty()),
        finish_reason: choice.finish_reason,
        usage: completion.usage.as_ref().and_then(parse_usage),
    })
}

/// A 2xx `body` read as any JSON first: its error if it carries one ([`error_message`]), else
/// the completion it holds, or why it holds none.
fn completion_of_value(body: &str) -> Result<Completion, PluginError> {
    let invalid = |e: &dyn std::fmt::Display| {
        PluginError::upstream(format!("invalid response from provider: {e}"))
    };
    let value: Value = serde_json::from_str(body).map_err(|e| invalid(&e))?;
    if let Some(message) = error_message(&value) {
        return Err(PluginError::upstream(message));
    }
    serde_json::from_value(value).map_err(|e| invalid(&e))
}

/// The error for a non-2xx `status` with `body`.
fn http_error(status: u16, body: &str) -> PluginError {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| error_message(&v))
        .unwrap_or_else(|| match body.trim() {
            "" => "(empty body)".to_owned(),
            raw => raw.chars().take(RAW_BODY_LIMIT).collect(),
        });
    match status {
        400 | 404 | 413 | 422 => PluginError::new(ErrorCode::BadInput, message),
        _ => PluginError::upstream(format!("HTTP {status}: {message}")),
    }
}

/// The message of an error body: `{"error": {"message": ..}}` (OpenAI and most others),
/// `{"error": ".."}` (Ollama) or `{"message": ..}` without `choices`.
fn error_message(v: &Value) -> Option<String> {
    let message = match &v["error"] {
        error @ (Value::String(_) | Value::Object(_)) => error_field_message(error),
        _ if v.get("choices").is_none() => v["message"].as_str(),
        _ => None,
    };
    message.filter(|m| !m.is_empty()).map(str::to_owned)
}

/// The message an `error` field carries: the field itself when it is a string, else its
/// `message`.
fn error_field_message(error: &Value) -> Option<&str> {
    match error {
        Value::String(s) => Some(s),
        Value::Object(e) => e.get("message").and_then(Value::as_str),
        _ => None,
    }
}

/// Token counts from a `usage` object: `prompt_tokens`, `completion_tokens` (0 if absent) and
/// cached prompt tokens from `cached_tokens` (Moonshot/Kimi, at the top level of `usage`),
/// `prompt_tokens_details.cached_tokens` (OpenAI) or `prompt_cache_hit_tokens` (DeepSeek),
/// else 0. Cached tokens are capped at `prompt_tokens`. `None` when `v` is not a usage object
/// (for example `null`, which OpenAI sends in every chunk but the last).
pub fn parse_usage(v: &Value) -> Option<Usage> {
    let prompt_tokens = v.get("prompt_tokens")?.as_u64()?;
    let cached = v["cached_tokens"]
        .as_u64()
        .or_else(|| v["prompt_tokens_details"]["cached_tokens"].as_u64())
        .or_else(|| v["prompt_cache_hit_tokens"].as_u64())
        .unwrap_or(0);
    Some(Usage {
        prompt_tokens,
        cached_prompt_tokens: cached.min(prompt_tokens),
        completion_tokens: v["completion_tokens"].as_u64().unwrap_or(0),
    })
}

/// Turns one server-sent event of a streamed completion into stream events.
///
/// - `data: [DONE]` gives `[Done { finish_reason: None }]`; empty data and comments give `[]`.
/// - A chunk with a top-level `error` is an `Upstream` error with the provider's message.
/// - Otherwise, in this order: one `Delta` if `choices[0].delta.content` or
///   `choices[0].delta.reasoning_content` is non-empty; `Usage` from the top-level `usage`
///   (OpenAI with `stream_options.include_usage`, in a last chunk whose `choices` is empty) or
///   from `choices[0].usage` (Kimi, in the chunk carrying `finish_reason`); and `Done` when
///   `choices[0].finish_reason` is set.
///
/// A stream therefore usually yields **two** `Done` events: one from the `finish_reason` chunk
/// and one from `[DONE]`. The host treats the first as the end of the answer but keeps reading
/// the body until it ends, because OpenAI sends usage in a chunk *after* the `finish_reason` one.
///
/// Data that is not JSON is an `Upstream` "invalid stream chunk" error.
pub fn parse_stream_event(ev: &SseEvent) -> Result<Vec<StreamEvent>, PluginError> {
    let data = ev.data.trim();
    if data.is_empty() || data.starts_with(':') {
        return Ok(Vec::new());
    }
    if data == "[DONE]" {
        return Ok(vec![StreamEvent::Done {
            finish_reason: None,
        }]);
    }
    let chunk: Value = serde_json::from_str(data)
        .map_err(|e| PluginError::upstream(format!("invalid stream chunk: {e}")))?;
    if chunk.get("error").is_some_and(|e| !e.is_null()) {
        let message = error_message(&chunk).unwrap_or_else(|| chunk["error"].to_string());
        return Err(PluginError::upstream(message));
    }
    let choice = &chunk["choices"][0];
    let text = |key: &str| choice["delta"][key].as_str().unwrap_or_default().to_owned();
    let (content, reasoning) = (text("content"), text("reasoning_content"));
    let mut events = Vec::new();
    if !content.is_empty() || !reasoning.is_empty() {
        events.push(StreamEvent::Delta { content, reasoning });
    }
    if let Some(usage) = parse_usage(&chunk["usage"]).or_else(|| parse_usage(&choice["usage"])) {
        events.push(StreamEvent::Usage { usage });
    }
    if let Some(reason) = choice["finish_reason"].as_str() {
        events.push(StreamEvent::Done {
            finish_reason: Some(reason.to_owned()),
        });
    }
    Ok(events)
}
