//! Unit tests of the OpenAI wire-format helpers, on hand-written bodies and chunks.

use super::*;
use serde_json::json;

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
    // The body sent is `chat_body`'s, option for option.
    let mut with_all = request(true);
    with_all.top_p = Some(0.9);
    with_all.stop = vec!["END".into(), "\"quoted\"\n".into()];
    for usage_option in [false, true] {
        let sent = chat_request("http://u", &with_all, false, usage_option, &[]);
        let sent: Value = serde_json::from_str(sent.body.as_deref().unwrap()).unwrap();
        assert_eq!(sent, chat_body(&with_all, usage_option));
    }

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
fn the_typed_pass_reads_bodies_as_the_value_pass_does() {
    let bodies = [
        r#"{"id":"c1","model":"m1","choices":[{"message":{"content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"cached_tokens":1}}"#,
        r#"{"choices":[{"message":{"content":"hi"}}],"error":{"message":"boom"}}"#,
        r#"{"choices":[{"message":{"content":"hi"}}],"error":"flat"}"#,
        r#"{"choices":[{"message":{"content":"hi"}}],"error":{"message":""}}"#,
        r#"{"choices":[{"message":{"content":"hi"}}],"error":null,"message":"ignored"}"#,
        r#"{"choices":[{"message":{"content":"hi"}}],"error":{"code":5}}"#,
        r#"{"choices":[{"message":{"content":"a"}}],"choices":[{"message":{"content":"b"}}]}"#,
        r#"{"choices":null,"message":"with null choices"}"#,
        r#"{"message":"no choices"}"#,
        r#"{"choices":[{"message":{"content":7}}],"error":"typed read fails, error wins"}"#,
        r#"{"id":5,"choices":[{"message":{"content":"hi"}}]}"#,
        r#"{"choices":[{"message":{"content":"hi"}}],"usage":null}"#,
    ];
    for body in bodies {
        let by_value = completion_of_value(body).and_then(|completion| {
            let choice = completion.choices.into_iter().next().ok_or_else(|| {
                PluginError::upstream("invalid response from provider: no choices")
            })?;
            Ok((
                completion.id,
                choice.message.content,
                completion.usage.as_ref().and_then(parse_usage),
            ))
        });
        let typed = parse_response(&http(200, body))
            .map(|r| (r.id, Some(r.content).filter(|c| !c.is_empty()), r.usage));
        match (&typed, &by_value) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{body}"),
            (Err(a), Err(b)) => {
                assert_eq!(a.code, b.code, "{body}");
                // Where the typed read fails, the message is the value pass's own.
                assert_eq!(a.message, b.message, "{body}");
            }
            _ => panic!("{body}: typed {typed:?}, by value {by_value:?}"),
        }
    }
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
