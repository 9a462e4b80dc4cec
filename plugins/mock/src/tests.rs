//! Unit tests of the mock provider.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use cloudbase_plugin_api::messages::{
    ChatMessage, ChatRequest, ChatRole, ErrorCode, PluginConfig, PluginKind, StreamEvent,
    Transport, Usage,
};
use cloudbase_plugin_api::traits::Provider;
use serde_json::{Value, json};

use crate::{Mock, Settings, parse_settings};

fn mock(settings: Value) -> Mock {
    Mock::create(PluginConfig {
        settings,
        ..Default::default()
    })
    .unwrap()
}

fn message(role: ChatRole, content: &str) -> ChatMessage {
    ChatMessage {
        role,
        content: content.into(),
    }
}

fn request(model: &str, messages: Vec<ChatMessage>) -> ChatRequest {
    ChatRequest {
        model: model.into(),
        messages,
        temperature: None,
        top_p: None,
        max_tokens: None,
        stop: vec![],
        stream: false,
    }
}

fn hello() -> ChatRequest {
    request(
        "mock-echo",
        vec![
            message(ChatRole::System, "Be brief."),
            message(ChatRole::User, "Hello, 世界!"),
        ],
    )
}

/// Streams `request` and returns every event.
fn stream_all(mock: &Mock, request: &ChatRequest) -> Vec<StreamEvent> {
    let mut events = vec![];
    mock.stream(request, &mut |e| {
        events.push(e);
        true
    })
    .unwrap();
    events
}

fn model_ids(mock: &Mock) -> Vec<String> {
    mock.models().into_iter().map(|m| m.id).collect()
}

#[test]
fn complete_replies_with_counted_tokens() {
    let response = mock(json!({})).complete(&hello()).unwrap();
    assert_eq!(response.content, "Mock reply: Hello, 世界!");
    assert_eq!(response.finish_reason.as_deref(), Some("stop"));
    assert_eq!(response.model.as_deref(), Some("mock-echo"));
    // "Be brief." = 3 tokens, "Hello, 世界!" = 5 tokens: (3 + 4) + (5 + 4) + 2.
    // Reply: Mock, reply, :, Hello, ",", 世, 界, ! = 8 tokens.
    let usage = Usage {
        prompt_tokens: 18,
        cached_prompt_tokens: 0,
        completion_tokens: 8,
    };
    assert_eq!(response.usage, Some(usage));
}

#[test]
fn stream_matches_complete() {
    let mock = mock(json!({}));
    for model in ["mock-echo", "mock-fast"] {
        let mut req = hello();
        req.model = model.into();
        req.messages.push(message(ChatRole::Assistant, "ok"));
        req.messages
            .push(message(ChatRole::User, "  two  spaces\nand a newline 🙂 "));
        let complete = mock.complete(&req).unwrap();
        let events = stream_all(&mock, &req);
        let deltas: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Delta { content, .. } => Some(content.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(deltas.concat(), complete.content);
        let usage = complete.usage.unwrap();
        assert_eq!(deltas.len() as u64, usage.completion_tokens);
        assert_eq!(&deltas[..3], ["Mock", " reply", ":"]);
        let tail = &events[deltas.len()..];
        assert_eq!(
            tail,
            [
                StreamEvent::Usage { usage },
                StreamEvent::Done {
                    finish_reason: Some("stop".into())
                }
            ]
        );
    }
}

#[test]
fn max_tokens_truncates_with_length() {
    let mock = mock(json!({}));
    let mut req = hello();
    req.max_tokens = Some(5);
    let response = mock.complete(&req).unwrap();
    assert_eq!(response.content, "Mock reply: Hello,");
    assert_eq!(response.finish_reason.as_deref(), Some("length"));
    assert_eq!(response.usage.unwrap().completion_tokens, 5);
    let events = stream_all(&mock, &req);
    assert_eq!(events.len(), 5 + 2);
    assert_eq!(
        events[6],
        StreamEvent::Done {
            finish_reason: Some("length".into())
        }
    );

    // Exactly enough room is not a truncation.
    req.max_tokens = Some(8);
    assert_eq!(
        mock.complete(&req).unwrap().finish_reason.as_deref(),
        Some("stop")
    );

    req.max_tokens = Some(0);
    let response = mock.complete(&req).unwrap();
    assert_eq!(
        (response.content.as_str(), response.finish_reason.as_deref()),
        ("", Some("length"))
    );
    assert_eq!(stream_all(&mock, &req).len(), 2);
}

#[test]
fn replies_are_capped_at_max_output_tokens() {
    let long = "word ".repeat(5_000);
    let req = request("mock-fast", vec![message(ChatRole::User, &long)]);
    let response = mock(json!({})).complete(&req).unwrap();
    assert_eq!(response.usage.unwrap().completion_tokens, 4_096);
    assert_eq!(response.finish_reason.as_deref(), Some("length"));
}

#[test]
fn prompt_over_the_context_window_is_bad_input() {
    let huge = "x ".repeat(40_000);
    let req = request("mock-echo", vec![message(ChatRole::User, &huge)]);
    let err = mock(json!({})).complete(&req).unwrap_err();
    assert_eq!(err.code, ErrorCode::BadInput);
    assert!(err.message.contains("context window"), "{err}");
}

#[test]
fn stream_stops_when_emit_returns_false() {
    let mock = mock(json!({}));
    let mut seen = 0;
    mock.stream(&hello(), &mut |_| {
        seen += 1;
        seen < 3
    })
    .unwrap();
    assert_eq!(seen, 3);
}

#[test]
fn delay_applies_between_echo_deltas_only() {
    let mock = mock(json!({"delay_ms": 40}));
    let started = Instant::now();
    stream_all(&mock, &hello());
    // 8 deltas, 7 pauses.
    assert!(started.elapsed() >= Duration::from_millis(7 * 40));

    let mut fast = hello();
    fast.model = "mock-fast".into();
    let started = Instant::now();
    stream_all(&mock, &fast);
    assert!(started.elapsed() < Duration::from_millis(7 * 40));
}

#[test]
fn bad_requests_are_bad_input() {
    let mock = mock(json!({}));
    let cases = [
        (
            request("gpt-4o", vec![message(ChatRole::User, "hi")]),
            "unknown model",
        ),
        (request("mock-echo", vec![]), "empty"),
        (
            request("mock-echo", vec![message(ChatRole::System, "hi")]),
            "no user message",
        ),
    ];
    for (req, expected) in cases {
        let err = mock.complete(&req).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadInput);
        assert!(err.message.contains(expected), "{err}");
        let err = mock.stream(&req, &mut |_| true).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadInput);
    }
}

#[test]
fn fault_models_are_hidden_unless_enabled() {
    let off = mock(json!({}));
    assert_eq!(model_ids(&off), ["mock-echo", "mock-fast"]);
    for model in ["mock-fault-panic", "mock-fault-hang"] {
        let mut req = hello();
        req.model = model.into();
        let err = off.complete(&req).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadInput);
        assert!(err.message.contains("unknown model"));
    }

    let on = mock(json!({"fault_injection": true, "hang_ms": 20}));
    assert_eq!(
        model_ids(&on),
        [
            "mock-echo",
            "mock-fast",
            "mock-fault-panic",
            "mock-fault-hang"
        ]
    );
    assert!(
        on.models()
            .iter()
            .all(|m| m.display_name.as_deref().unwrap().contains("Mock"))
    );
}

#[test]
fn fault_panic_panics_in_complete_and_stream() {
    let on = mock(json!({"fault_injection": true}));
    let mut req = hello();
    req.model = "mock-fault-panic".into();
    let panic = catch_unwind(AssertUnwindSafe(|| on.complete(&req))).unwrap_err();
    assert_eq!(
        panic.downcast_ref::<&str>(),
        Some(&"mock fault injection: panic")
    );
    assert!(catch_unwind(AssertUnwindSafe(|| on.stream(&req, &mut |_| true))).is_err());
}

#[test]
fn fault_hang_sleeps_then_answers() {
    let on = mock(json!({"fault_injection": true, "hang_ms": 30}));
    let mut req = hello();
    req.model = "mock-fault-hang".into();
    let started = Instant::now();
    let response = on.complete(&req).unwrap();
    assert!(started.elapsed() >= Duration::from_millis(30));
    assert_eq!(response.content, "Mock reply: Hello, 世界!");
}

#[test]
fn manifest_labels_the_mock() {
    let manifest = Mock::manifest();
    assert_eq!(manifest.name, Mock::NAME);
    assert_eq!(manifest.kind, PluginKind::AiProvider);
    assert_eq!(manifest.transport, Transport::Local);
    assert!(manifest.mock && manifest.default_instance && manifest.secrets.is_empty());
    assert!(manifest.description.starts_with("MOCK provider"));
    assert_eq!(manifest.version, env!("CARGO_PKG_VERSION"));
}

#[test]
fn schema_defaults_match_create() {
    let schema = Mock::manifest().config_schema;
    let defaults: serde_json::Map<String, Value> = schema["properties"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v["default"].clone()))
        .collect();
    let from_schema: Settings = parse_settings(&Value::Object(defaults)).unwrap();
    assert_eq!(from_schema, parse_settings::<Settings>(&json!({})).unwrap());
    assert_eq!(
        from_schema,
        parse_settings::<Settings>(&Value::Null).unwrap()
    );
    assert_eq!(schema["additionalProperties"], false);
}

#[test]
fn bad_settings_name_the_field() {
    for (settings, field) in [
        (json!({"delay_ms": -1}), "delay_ms"),
        (json!({"hang_ms": "soon"}), "hang_ms"),
        (json!({"fault_injection": 1}), "fault_injection"),
        (json!({"delay": 5}), "delay"),
    ] {
        let err = Mock::create(PluginConfig {
            settings,
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::Config);
        assert!(err.message.contains(&format!("`{field}`")), "{err}");
    }
}
