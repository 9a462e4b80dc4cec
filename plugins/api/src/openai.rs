//! Helpers for the OpenAI chat-completions wire format, which most providers speak (OpenAI,
//! Moonshot/Kimi, DeepSeek, Qwen's compatible mode, vLLM, Ollama, ...).
//!
//! They cover the sans-IO half of an HTTP provider: [`chat_request`] builds the upstream request
//! (its `authorization` header carries the `${secret:api_key}` placeholder, which the host
//! replaces, so the plugin never sees the key), [`parse_response`] turns a whole answer or an
//! error into a [`ChatResponse`] or a [`PluginError`], and [`parse_stream_event`] turns one SSE
//! chunk into [`StreamEvent`]s.

use serde::Deserialize;
use serde_json::{Map, Value, json};

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
    let messages: Vec<Value> = req
        .messages
        .iter()
        .map(|m| json!({ "role": role_name(m.role), "content": m.content }))
        .collect();
    let mut body = Map::new();
    body.insert("model".into(), json!(req.model));
    body.insert("messages".into(), Value::Array(messages));
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        body.insert("top_p".into(), json!(p));
    }
    if let Some(n) = req.max_tokens {
        body.insert("max_tokens".into(), json!(n));
    }
    if !req.stop.is_empty() {
        body.insert("stop".into(), json!(req.stop));
    }
    body.insert("stream".into(), json!(req.stream));
    if req.stream && stream_usage_option {
        body.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    Value::Object(body)
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
        body: Some(chat_body(req, stream_usage_option).to_string()),
    }
}

#[derive(Deserialize)]
struct Completion {
    id: Option<String>,
    model: Option<String>,
    choices: Vec<Choice>,
    usage: Option<Value>,
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
    let invalid = |e: &dyn std::fmt::Display| {
        PluginError::upstream(format!("invalid response from provider: {e}"))
    };
    let value: Value = serde_json::from_str(&resp.body).map_err(|e| invalid(&e))?;
    if let Some(message) = error_message(&value) {
        return Err(PluginError::upstream(message));
    }
    let completion: Completion = serde_json::from_value(value).map_err(|e| invalid(&e))?;
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
        Value::String(s) => Some(s.as_str()),
        Value::Object(e) => e.get("message").and_then(Value::as_str),
        _ if v.get("choices").is_none() => v["message"].as_str(),
        _ => None,
    };
    message.filter(|m| !m.is_empty()).map(str::to_owned)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::ChatMessage;

    fn request(stream: bool) -> ChatRequest {
        ChatRequest {
            model: "m1".into(),
            messages: vec![
                ChatMessage {
                    role: ChatRole::System,
                    content: "be brief".into(),
                },
                ChatMessage {
                    role: ChatRole::User,
                    content: "hi".into(),
                },
            ],
            temperature: Some(0.3),
            top_p: None,
            max_tokens: Some(64),
            stop: vec![],
            stream,
        }
    }

    fn sse(data: &str) -> SseEvent {
        SseEvent {
            event: None,
            data: data.into(),
        }
    }

    fn http(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![],
            body: body.into(),
        }
    }

    #[test]
    fn body_has_only_the_set_options() {
        let body = chat_body(&request(false), true);
        assert_eq!(
            body,
            json!({
                "model": "m1",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "hi"}
                ],
                "temperature": 0.3,
                "max_tokens": 64,
                "stream": false
            })
        );
        let mut req = request(true);
        req.stop = vec!["END".into()];
        let body = chat_body(&req, true);
        assert_eq!(body["stop"], json!(["END"]));
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
        assert!(chat_body(&req, false).get("stream_options").is_none());
    }

    #[test]
    fn request_headers_and_url() {
        let extra = [("x-title".to_owned(), "cloudbase".to_owned())];
        let req = chat_request(
            "https://api.example.com/v1/",
            &request(true),
            true,
            false,
            &extra,
        );
        assert_eq!(req.method, "POST");
        assert_eq!(req.url, "https://api.example.com/v1/chat/completions");
        let h = |name: &str| {
            req.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(h("content-type"), Some("application/json"));
        assert_eq!(h("accept"), Some("text/event-stream"));
        assert_eq!(h("authorization"), Some("Bearer ${secret:api_key}"));
        assert_eq!(h("x-title"), Some("cloudbase"));
        let body: Value = serde_json::from_str(req.body.as_deref().unwrap()).unwrap();
        assert_eq!(body["stream"], json!(true));

        let req = chat_request(
            "http://127.0.0.1:11434/v1",
            &request(false),
            false,
            true,
            &[],
        );
        assert!(req.headers.iter().all(|(n, _)| n != "authorization"));
        assert!(
            req.headers
                .contains(&("accept".into(), "application/json".into()))
        );
    }

    #[test]
    fn usage_reads_both_cache_fields() {
        let kimi = json!({"prompt_tokens": 10, "completion_tokens": 5, "cached_tokens": 8});
        let openai = json!({"prompt_tokens": 10, "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 4}});
        let plain = json!({"prompt_tokens": 10, "completion_tokens": 5});
        let u = |p, c, k| {
            Some(Usage {
                prompt_tokens: p,
                cached_prompt_tokens: c,
                completion_tokens: k,
            })
        };
        assert_eq!(parse_usage(&kimi), u(10, 8, 5));
        assert_eq!(parse_usage(&openai), u(10, 4, 5));
        assert_eq!(parse_usage(&plain), u(10, 0, 5));
        assert_eq!(parse_usage(&Value::Null), None);
    }

    #[test]
    fn parses_a_completion() {
        let body = r#"{"id":"c1","model":"m1","choices":[{"index":0,
            "message":{"role":"assistant","content":null,"reasoning_content":"think"},
            "finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#;
        let resp = parse_response(&http(200, body)).unwrap();
        assert_eq!(resp.id.as_deref(), Some("c1"));
        assert_eq!(resp.content, "");
        assert_eq!(resp.reasoning.as_deref(), Some("think"));
        assert_eq!(resp.finish_reason.as_deref(), Some("length"));
        assert_eq!(resp.usage.map(|u| u.prompt_tokens), Some(3));
    }

    #[test]
    fn bad_2xx_bodies_are_upstream_errors() {
        for body in ["not json", r#"{"choices":[]}"#, r#"{"object":"list"}"#] {
            let err = parse_response(&http(200, body)).unwrap_err();
            assert_eq!(err.code, ErrorCode::Upstream);
            assert!(
                err.message.starts_with("invalid response from provider"),
                "{err}"
            );
        }
        let err = parse_response(&http(200, r#"{"error":{"message":"boom"}}"#)).unwrap_err();
        assert_eq!(err, PluginError::upstream("boom"));
    }

    #[test]
    fn maps_error_statuses() {
        let body = r#"{"error":{"message":"model not found","type":"invalid_request_error"}}"#;
        for status in [400, 404, 413, 422] {
            let err = parse_response(&http(status, body)).unwrap_err();
            assert_eq!(
                err,
                PluginError::new(ErrorCode::BadInput, "model not found")
            );
        }
        for status in [401, 403, 429, 500, 503, 302] {
            let err = parse_response(&http(status, body)).unwrap_err();
            assert_eq!(err.code, ErrorCode::Upstream);
            assert_eq!(err.message, format!("HTTP {status}: model not found"));
        }
        let ollama = parse_response(&http(404, r#"{"error":"model 'x' not found"}"#)).unwrap_err();
        assert_eq!(ollama.message, "model 'x' not found");
    }

    #[test]
    fn raw_error_bodies_are_truncated() {
        let long = "é".repeat(600);
        let err = parse_response(&http(502, &long)).unwrap_err();
        assert_eq!(err.message, format!("HTTP 502: {}", "é".repeat(500)));
        let err = parse_response(&http(500, "")).unwrap_err();
        assert_eq!(err.message, "HTTP 500: (empty body)");
    }

    #[test]
    fn stream_markers() {
        assert_eq!(parse_stream_event(&sse("")).unwrap(), vec![]);
        assert_eq!(parse_stream_event(&sse(": keep-alive")).unwrap(), vec![]);
        assert_eq!(
            parse_stream_event(&sse("[DONE]")).unwrap(),
            vec![StreamEvent::Done {
                finish_reason: None
            }]
        );
        let err = parse_stream_event(&sse("{oops")).unwrap_err();
        assert_eq!(err.code, ErrorCode::Upstream);
        assert!(err.message.starts_with("invalid stream chunk"));
        let err = parse_stream_event(&sse(r#"{"error":{"message":"overloaded"}}"#)).unwrap_err();
        assert_eq!(err, PluginError::upstream("overloaded"));
    }

    #[test]
    fn stream_chunks() {
        let role_only = r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}"#;
        assert_eq!(parse_stream_event(&sse(role_only)).unwrap(), vec![]);

        let last = r#"{"choices":[{"index":0,"delta":{"reasoning_content":"hm","content":"ok"},
            "finish_reason":"stop","usage":{"prompt_tokens":4,"completion_tokens":2,"cached_tokens":1}}]}"#;
        let usage = Usage {
            prompt_tokens: 4,
            cached_prompt_tokens: 1,
            completion_tokens: 2,
        };
        assert_eq!(
            parse_stream_event(&sse(last)).unwrap(),
            vec![
                StreamEvent::Delta {
                    content: "ok".into(),
                    reasoning: "hm".into()
                },
                StreamEvent::Usage { usage },
                StreamEvent::Done {
                    finish_reason: Some("stop".into())
                },
            ]
        );

        let openai_usage = r#"{"choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2,
            "prompt_tokens_details":{"cached_tokens":1}}}"#;
        assert_eq!(
            parse_stream_event(&sse(openai_usage)).unwrap(),
            vec![StreamEvent::Usage { usage }]
        );
    }
}
