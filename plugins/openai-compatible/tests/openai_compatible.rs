//! The `openai-compatible` plugin on recorded OpenAI-format responses (`tests/fixtures/`),
//! without network: request building, completions, streams and error mapping.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers: a failed unwrap is a failed test"
)]

use cloudbase_plugin_api::messages::*;
use cloudbase_plugin_api::traits::Provider;
use cloudbase_plugin_openai_compatible::OpenAiCompatible;
use serde_json::{Value, json};

fn provider(settings: Value, with_key: bool) -> OpenAiCompatible {
    let mut secrets = std::collections::BTreeMap::new();
    if with_key {
        secrets.insert("api_key".to_owned(), "sk-test".to_owned());
    }
    OpenAiCompatible::create(PluginConfig { settings, secrets }).unwrap()
}

fn deepseek() -> OpenAiCompatible {
    let settings = json!({
        "base_url": "https://api.deepseek.com/v1/",
        "models": [{"id": "deepseek-chat", "context_window": 131072}, {"id": "gpt-4o-mini"}]
    });
    provider(settings, true)
}

fn request(model: &str, stream: bool) -> ChatRequest {
    ChatRequest {
        model: model.into(),
        messages: vec![ChatMessage {
            role: ChatRole::User,
            content: "Hello".into(),
        }],
        temperature: Some(1.3),
        top_p: None,
        max_tokens: Some(256),
        stop: vec![],
        stream,
    }
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Splits an SSE body into events: blank lines separate events, `data:` lines are joined.
fn sse_events(body: &str) -> Vec<SseEvent> {
    body.replace("\r\n", "\n")
        .split("\n\n")
        .filter_map(|block| {
            let data: Vec<&str> = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            (!data.is_empty()).then(|| SseEvent {
                event: None,
                data: data.join("\n"),
            })
        })
        .collect()
}

#[test]
fn builds_the_request() {
    let req = deepseek()
        .build_request(&request("deepseek-chat", true))
        .unwrap();
    assert_eq!(req.url, "https://api.deepseek.com/v1/chat/completions");
    assert_eq!(
        header(&req, "authorization"),
        Some("Bearer ${secret:api_key}")
    );
    assert_eq!(header(&req, "accept"), Some("text/event-stream"));
    let body: Value = serde_json::from_str(req.body.as_deref().unwrap()).unwrap();
    assert_eq!(body["temperature"], 1.3);
    assert_eq!(body["max_tokens"], 256);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
}

#[test]
fn local_servers_need_no_key_and_may_skip_stream_options() {
    let ollama = provider(
        json!({
            "base_url": "http://127.0.0.1:11434/v1",
            "models": [{"id": "qwen3:8b"}],
            "stream_usage": false,
            "extra_headers": {"X-Title": "CloudBase"}
        }),
        false,
    );
    let req = ollama.build_request(&request("qwen3:8b", true)).unwrap();
    assert_eq!(req.url, "http://127.0.0.1:11434/v1/chat/completions");
    assert_eq!(header(&req, "authorization"), None);
    assert_eq!(header(&req, "X-Title"), Some("CloudBase"));
    let body: Value = serde_json::from_str(req.body.as_deref().unwrap()).unwrap();
    assert!(body.get("stream_options").is_none());
}

#[test]
fn rejects_bad_parameters_and_unknown_models() {
    let p = deepseek();
    let cases = [
        (
            Some(2.5),
            None,
            "deepseek-chat",
            "temperature must be between 0 and 2",
        ),
        (
            Some(-1.0),
            None,
            "deepseek-chat",
            "temperature must be between 0 and 2",
        ),
        (
            None,
            Some(1.5),
            "deepseek-chat",
            "top_p must be between 0 and 1",
        ),
        (
            None,
            None,
            "deepseek-reasoner",
            "unknown model `deepseek-reasoner`",
        ),
    ];
    for (temperature, top_p, model, needle) in cases {
        let req = ChatRequest {
            temperature,
            top_p,
            ..request(model, false)
        };
        let err = p.build_request(&req).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadInput);
        assert!(err.message.contains(needle), "{}", err.message);
    }
    assert_eq!(p.models().len(), 2);
    assert_eq!(p.models()[0].context_window, Some(131072));
}

#[test]
fn parses_a_completion_with_cached_tokens() {
    let body = include_str!("fixtures/completion.json");
    let resp = deepseek()
        .parse_response(&HttpResponse {
            status: 200,
            headers: vec![],
            body: body.into(),
        })
        .unwrap();
    assert_eq!(resp.content, "Hello! How can I help you today?");
    assert_eq!(resp.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
    assert_eq!(resp.finish_reason.as_deref(), Some("stop"));
    let usage = Usage {
        prompt_tokens: 2048,
        cached_prompt_tokens: 1920,
        completion_tokens: 9,
    };
    assert_eq!(resp.usage, Some(usage));
}

#[test]
fn stream_usage_arrives_after_the_finish_reason() {
    let p = deepseek();
    let events: Vec<StreamEvent> = sse_events(include_str!("fixtures/stream.sse"))
        .iter()
        .flat_map(|ev| p.parse_stream_event(ev).unwrap())
        .collect();
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Delta { content, .. } => Some(content.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "Hello! How can I help you today?");
    let usage = Usage {
        prompt_tokens: 2048,
        cached_prompt_tokens: 1920,
        completion_tokens: 9,
    };
    let tail = &events[events.len() - 3..];
    assert_eq!(
        tail,
        [
            StreamEvent::Done {
                finish_reason: Some("stop".into())
            },
            StreamEvent::Usage { usage },
            StreamEvent::Done {
                finish_reason: None
            },
        ],
        "the host must keep reading after the first Done to get usage"
    );
}

#[test]
fn maps_errors_and_keeps_the_providers_message() {
    let cases = [
        (
            404,
            include_str!("fixtures/errors/404_model_not_found.json"),
            ErrorCode::BadInput,
            "The model `gpt-5-nano-x` does not exist or you do not have access to it.",
        ),
        (
            404,
            include_str!("fixtures/errors/404_ollama.json"),
            ErrorCode::BadInput,
            "model \"llama3.2:1b\" not found, try pulling it first",
        ),
        (
            422,
            include_str!("fixtures/errors/422_deepseek.json"),
            ErrorCode::BadInput,
            "Failed to deserialize the JSON body into the target type: temperature: invalid type: string \"hot\", expected f32 at line 1 column 80",
        ),
        (
            401,
            include_str!("fixtures/errors/401_invalid_key.json"),
            ErrorCode::Upstream,
            "HTTP 401: Incorrect API key provided: sk-abc12***********************wxyz. You can find your API key at https://platform.openai.com/account/api-keys.",
        ),
        (
            429,
            include_str!("fixtures/errors/429_quota.json"),
            ErrorCode::Upstream,
            "HTTP 429: You exceeded your current quota, please check your plan and billing details.",
        ),
        (
            500,
            include_str!("fixtures/errors/500_server_error.json"),
            ErrorCode::Upstream,
            "HTTP 500: The server had an error while processing your request. Sorry about that!",
        ),
        (
            502,
            "upstream connect error",
            ErrorCode::Upstream,
            "HTTP 502: upstream connect error",
        ),
    ];
    let p = deepseek();
    for (status, body, code, message) in cases {
        let err = p.parse_response(&HttpResponse {
            status,
            headers: vec![],
            body: body.into(),
        });
        assert_eq!(err, Err(PluginError::new(code, message)));
    }
}

#[test]
fn manifest_needs_configuration() {
    let m = OpenAiCompatible::manifest();
    assert_eq!(m.name, "openai-compatible");
    assert!(!m.default_instance && !m.mock);
    assert_eq!(m.transport, Transport::Http);
    assert_eq!(m.secrets[0].name, "api_key");
    assert!(!m.secrets[0].required);
    assert_eq!(m.config_schema["required"], json!(["base_url", "models"]));
}
