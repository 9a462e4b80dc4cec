//! The `kimi` plugin on recorded Moonshot responses (`tests/fixtures/`, error bodies in the shape
//! Moonshot's error table documents), without network: request building (`max_tokens`, fixed
//! sampling), completions, streams, error mapping by `error.type`, and the C ABI entry point.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers: a failed unwrap is a failed test"
)]

use cloudbase_plugin_api::messages::*;
use cloudbase_plugin_api::traits::Provider;
use cloudbase_plugin_kimi::Kimi;
use serde_json::{Value, json};

fn kimi(settings: Value, with_key: bool) -> Kimi {
    let mut secrets = std::collections::BTreeMap::new();
    if with_key {
        secrets.insert("api_key".to_owned(), "sk-test".to_owned());
    }
    Kimi::create(PluginConfig { settings, secrets }).unwrap()
}

fn request(model: &str, stream: bool) -> ChatRequest {
    ChatRequest {
        model: model.into(),
        messages: vec![ChatMessage {
            role: ChatRole::User,
            content: "你好".into(),
        }],
        temperature: Some(0.6),
        top_p: None,
        max_tokens: None,
        stop: vec![],
        stream,
    }
}

fn ok(body: &str) -> HttpResponse {
    HttpResponse {
        status: 200,
        headers: vec![],
        body: body.into(),
    }
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

/// What a stream adds up to: answer text, reasoning text, last usage, `Done` reasons.
#[derive(Debug, Default)]
struct Streamed {
    content: String,
    reasoning: String,
    usage: Option<Usage>,
    done: Vec<Option<String>>,
}

fn run_stream(provider: &Kimi, body: &str) -> Streamed {
    let mut out = Streamed::default();
    for event in sse_events(body) {
        for ev in provider.parse_stream_event(&event).unwrap() {
            match ev {
                StreamEvent::Delta { content, reasoning } => {
                    out.content.push_str(&content);
                    out.reasoning.push_str(&reasoning);
                }
                StreamEvent::Usage { usage } => out.usage = Some(usage),
                StreamEvent::Done { finish_reason } => out.done.push(finish_reason),
            }
        }
    }
    out
}

#[test]
fn builds_the_request() {
    let req = kimi(json!({}), true)
        .build_request(&request("kimi-k2-0905-preview", true))
        .unwrap();
    assert_eq!(req.url, "https://api.moonshot.cn/v1/chat/completions");
    assert!(
        req.headers
            .contains(&("authorization".into(), "Bearer ${secret:api_key}".into()))
    );
    assert!(
        req.headers
            .contains(&("accept".into(), "text/event-stream".into()))
    );
    let body: Value = serde_json::from_str(req.body.as_deref().unwrap()).unwrap();
    assert_eq!(body["model"], "kimi-k2-0905-preview");
    assert_eq!(body["temperature"], 0.6);
    assert_eq!(body["stream"], true);
    assert!(
        body.get("stream_options").is_none(),
        "Kimi reports usage without stream_options"
    );
    assert_eq!(
        body["max_tokens"], 32_768,
        "without max_tokens Moonshot stops at its small server default"
    );

    let global = kimi(json!({"region": "global"}), false);
    let req = global
        .build_request(&request("moonshot-v1-8k", false))
        .unwrap();
    assert_eq!(req.url, "https://api.moonshot.ai/v1/chat/completions");
    assert!(req.headers.iter().all(|(name, _)| name != "authorization"));
}

#[test]
fn rejects_what_kimi_would_refuse() {
    let provider = kimi(json!({}), true);
    let cases = [
        (
            Some(1.5),
            None,
            "kimi-latest",
            "temperature must be between 0 and 1 for Kimi",
        ),
        (
            Some(-0.1),
            None,
            "kimi-latest",
            "temperature must be between 0 and 1 for Kimi",
        ),
        (
            None,
            Some(1.01),
            "kimi-latest",
            "top_p must be between 0 and 1 for Kimi",
        ),
        (None, None, "gpt-4o", "unknown model `gpt-4o`"),
    ];
    for (temperature, top_p, model, needle) in cases {
        let req = ChatRequest {
            temperature,
            top_p,
            ..request(model, false)
        };
        let err = provider.build_request(&req).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadInput);
        assert!(err.message.contains(needle), "{}", err.message);
    }
    let edges = ChatRequest {
        temperature: Some(1.0),
        top_p: Some(0.0),
        ..request("kimi-latest", false)
    };
    assert!(provider.build_request(&edges).is_ok());
}

#[test]
fn configured_models_replace_the_builtin_list() {
    let provider = kimi(
        json!({"models": [{"id": "kimi-k2-custom", "context_window": 65536}]}),
        true,
    );
    let models = provider.models();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0].context_window, Some(65536));
    assert!(
        provider
            .build_request(&request("kimi-k2-custom", false))
            .is_ok()
    );
    assert!(
        provider
            .build_request(&request("kimi-latest", false))
            .is_err()
    );
}

#[test]
fn parses_a_completion_with_cached_tokens() {
    let resp = kimi(json!({}), true).parse_response(&ok(include_str!("fixtures/completion.json")));
    let resp = resp.unwrap();
    assert_eq!(
        resp.id.as_deref(),
        Some("chatcmpl-68c9f2a1b3e4d5c6a7b8c9d0")
    );
    assert_eq!(resp.model.as_deref(), Some("kimi-k2-0905-preview"));
    assert!(resp.content.starts_with("你好！我是 Kimi"));
    assert_eq!(resp.reasoning, None);
    assert_eq!(resp.finish_reason.as_deref(), Some("stop"));
    let usage = Usage {
        prompt_tokens: 1042,
        cached_prompt_tokens: 1024,
        completion_tokens: 27,
    };
    assert_eq!(resp.usage, Some(usage));
}

#[test]
fn separates_reasoning_from_the_answer() {
    let body = include_str!("fixtures/thinking_completion.json");
    let resp = kimi(json!({}), true).parse_response(&ok(body)).unwrap();
    assert_eq!(resp.content, "1 + 1 = 2。");
    assert_eq!(
        resp.reasoning.as_deref(),
        Some("用户问 1+1 等于多少。这是基本的加法，答案是 2。")
    );
    let usage = Usage {
        prompt_tokens: 14,
        cached_prompt_tokens: 0,
        completion_tokens: 41,
    };
    assert_eq!(resp.usage, Some(usage));
}

#[test]
fn streams_text_and_usage_from_choices() {
    let out = run_stream(&kimi(json!({}), true), include_str!("fixtures/stream.sse"));
    assert_eq!(out.content, "你好！我是 Kimi，很高兴为你服务。");
    assert_eq!(out.reasoning, "");
    let usage = Usage {
        prompt_tokens: 1042,
        cached_prompt_tokens: 1024,
        completion_tokens: 12,
    };
    assert_eq!(out.usage, Some(usage));
    assert_eq!(
        out.done,
        vec![Some("stop".to_owned()), None],
        "finish_reason chunk, then [DONE]"
    );
}

#[test]
fn streams_reasoning_separately() {
    let out = run_stream(
        &kimi(json!({}), true),
        include_str!("fixtures/thinking_stream.sse"),
    );
    assert_eq!(out.reasoning, "用户问 1+1，答案是 2。");
    assert_eq!(out.content, "1 + 1 = 2。");
    let usage = Usage {
        prompt_tokens: 14,
        cached_prompt_tokens: 0,
        completion_tokens: 23,
    };
    assert_eq!(out.usage, Some(usage));
}

fn body_of(req: &HttpRequest) -> Value {
    serde_json::from_str(req.body.as_deref().unwrap()).unwrap()
}

#[test]
fn sends_the_models_output_cap_when_the_caller_sets_none() {
    let provider = kimi(json!({}), true);
    for (model, expected) in [
        ("kimi-k2.5", 32_768),
        ("kimi-k2-thinking", 32_768),
        ("moonshot-v1-128k", 32_768),
        // An 8K window shared by input and output: what the prompt leaves (its 6 UTF-8 bytes,
        // 8 per message, 8 more).
        ("moonshot-v1-8k", 8_192 - 22),
    ] {
        let body = body_of(&provider.build_request(&request(model, false)).unwrap());
        assert_eq!(body["max_tokens"], expected, "{model}");
        let listed = provider
            .models()
            .into_iter()
            .find(|m| m.id == model)
            .unwrap();
        assert!(
            listed.max_output_tokens.is_some(),
            "{model}: budgets reserve this cap"
        );
    }
    // The caller's own value is sent as is, up to the cap.
    let asked = ChatRequest {
        max_tokens: Some(100),
        ..request("kimi-k2-0905-preview", false)
    };
    assert_eq!(
        body_of(&provider.build_request(&asked).unwrap())["max_tokens"],
        100
    );
    for max_tokens in [0, 32_769] {
        let too_many = ChatRequest {
            max_tokens: Some(max_tokens),
            ..request("kimi-k2-0905-preview", false)
        };
        let err = provider.build_request(&too_many).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadInput);
        assert!(
            err.message
                .contains("max_tokens must be between 1 and 32768"),
            "{}",
            err.message
        );
    }
}

#[test]
fn sampling_the_model_fixes_is_not_forwarded() {
    let provider = kimi(json!({}), true);
    let tuned = |model: &str| ChatRequest {
        temperature: Some(0.3),
        top_p: Some(0.8),
        ..request(model, false)
    };
    // kimi-k2.5 rejects any temperature or top_p but its own: neither is sent.
    let body = body_of(&provider.build_request(&tuned("kimi-k2.5")).unwrap());
    assert!(body.get("temperature").is_none(), "{body}");
    assert!(body.get("top_p").is_none(), "{body}");
    // The thinking models expect temperature 1.0; top_p stays the caller's.
    for model in ["kimi-k2-thinking", "kimi-k2-thinking-turbo"] {
        let body = body_of(&provider.build_request(&tuned(model)).unwrap());
        assert_eq!(body["temperature"], 1.0, "{model}");
        assert_eq!(body["top_p"], 0.8, "{model}");
    }
    // Other models get what the caller asked for.
    let body = body_of(
        &provider
            .build_request(&tuned("kimi-k2-0905-preview"))
            .unwrap(),
    );
    assert_eq!(
        (body["temperature"].as_f64(), body["top_p"].as_f64()),
        (Some(0.3), Some(0.8))
    );
    // Out of Kimi's range is still refused, whatever the model.
    let hot = ChatRequest {
        temperature: Some(1.5),
        ..request("kimi-k2.5", false)
    };
    assert_eq!(
        provider.build_request(&hot).unwrap_err().code,
        ErrorCode::BadInput
    );
}

#[test]
fn maps_errors_by_type_and_keeps_the_providers_words() {
    let cases = [
        (
            400,
            include_str!("fixtures/errors/400_token_limit.json"),
            ErrorCode::BadInput,
            "Invalid request: Your request exceeded model token limit: 8192 (invalid_request_error)",
        ),
        (
            400,
            include_str!("fixtures/errors/400_temperature.json"),
            ErrorCode::BadInput,
            "Invalid request: temperature must be in [0, 1] (invalid_request_error)",
        ),
        (
            400,
            include_str!("fixtures/errors/400_content_filter.json"),
            ErrorCode::BadInput,
            "The request was rejected because it was considered high risk (content_filter)",
        ),
        (
            401,
            include_str!("fixtures/errors/401_auth.json"),
            ErrorCode::Upstream,
            "HTTP 401 (invalid_authentication_error): Invalid Authentication",
        ),
        (
            401,
            include_str!("fixtures/errors/401_incorrect_key.json"),
            ErrorCode::Upstream,
            "HTTP 401 (incorrect_api_key_error): Incorrect API key provided",
        ),
        (
            404,
            include_str!("fixtures/errors/404_model.json"),
            ErrorCode::Upstream,
            "HTTP 404 (resource_not_found_error): Not found the model kimi-k2.5 or Permission denied (the model was retired, or this API key may not use it)",
        ),
        (
            429,
            include_str!("fixtures/errors/429_rate_limit.json"),
            ErrorCode::Upstream,
            "HTTP 429 (rate_limit_reached_error): Your account org-3f2a1b0c <ak-f7e6d5c4> request reached organization max RPM: 3, please try again after 1 seconds",
        ),
        (
            429,
            include_str!("fixtures/errors/429_overloaded.json"),
            ErrorCode::Upstream,
            "HTTP 429 (engine_overloaded_error): The engine is currently overloaded, please try again later",
        ),
        (
            429,
            include_str!("fixtures/errors/429_quota.json"),
            ErrorCode::Billing,
            "HTTP 429 (exceeded_current_quota_error): You exceeded your current token quota: <nil>, please check your account balance",
        ),
        (
            429,
            include_str!("fixtures/errors/429_suspended.json"),
            ErrorCode::Billing,
            "HTTP 429 (exceeded_current_quota_error): Your account org-3f2a1b0c<ak-f7e6d5c4> is suspended, please check your plan and billing details",
        ),
    ];
    let provider = kimi(json!({}), true);
    for (status, body, code, message) in cases {
        let err = provider.parse_response(&HttpResponse {
            status,
            headers: vec![],
            body: body.into(),
        });
        assert_eq!(err, Err(PluginError::new(code, message)));
    }
    let html = include_str!("fixtures/errors/500.html");
    let err = provider
        .parse_response(&HttpResponse {
            status: 500,
            headers: vec![],
            body: html.into(),
        })
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Upstream);
    assert!(
        err.message.starts_with("HTTP 500: <html>"),
        "{}",
        err.message
    );
    assert!(err.message.contains("500 Internal Server Error"));
}

#[test]
fn an_error_in_a_stream_keeps_its_type() {
    let provider = kimi(json!({}), true);
    let event = |data: &str| SseEvent {
        event: None,
        data: data.trim().into(),
    };
    let quota = provider
        .parse_stream_event(&event(include_str!("fixtures/errors/429_quota.json")))
        .unwrap_err();
    assert_eq!(quota.code, ErrorCode::Billing);
    assert!(
        quota
            .message
            .starts_with("(exceeded_current_quota_error): "),
        "{}",
        quota.message
    );
    let busy = provider
        .parse_stream_event(&event(include_str!("fixtures/errors/429_overloaded.json")))
        .unwrap_err();
    assert_eq!(busy.code, ErrorCode::Upstream);
    assert!(
        busy.message.starts_with("(engine_overloaded_error): "),
        "{}",
        busy.message
    );
}

/// The real entry point, as the host sees it: vtable checks, manifest, create, one call, destroy.
#[test]
#[expect(
    unsafe_code,
    reason = "drives the plugin through raw vtable pointers, exactly as the host does"
)]
fn the_c_abi_entry_point_works() {
    use cloudbase_plugin_api::abi::{
        ABI_VERSION, FLAG_PANIC_UNWIND, PluginVTable, RBuf, RStr, status,
    };

    let vtable_ptr = cloudbase_plugin_kimi::cloudbase_plugin_entry_v1();
    assert!(!vtable_ptr.is_null());
    // SAFETY: the entry point returns a pointer to a `static` vtable, valid for the whole program.
    let vt: &PluginVTable = unsafe { &*vtable_ptr };
    assert_eq!(vt.abi_version, ABI_VERSION);
    assert_eq!(vt.struct_size as usize, std::mem::size_of::<PluginVTable>());
    assert_eq!(vt.flags & FLAG_PANIC_UNWIND, FLAG_PANIC_UNWIND);
    assert!(vt.call_stream.is_some());

    let rstr = |s: &str| RStr {
        ptr: s.as_ptr(),
        len: s.len(),
    };
    // Copies an output buffer into a JSON value and hands the buffer back to the plugin.
    let take = |buf: RBuf| -> Value {
        // SAFETY: `buf` was just written by the plugin and is freed exactly once, below.
        let bytes = unsafe { std::slice::from_raw_parts(buf.ptr, buf.len) }.to_vec();
        // SAFETY: `buf` came from this plugin's allocator and is not used again.
        unsafe { (vt.free_buf)(buf) };
        serde_json::from_slice(&bytes).unwrap()
    };

    // SAFETY: `name` returns a pointer and length describing a static string of the plugin.
    let name = unsafe {
        let s = (vt.name)();
        std::slice::from_raw_parts(s.ptr, s.len)
    };
    assert_eq!(name, b"kimi");

    let mut out = RBuf::EMPTY;
    // SAFETY: `out` is a valid, writable slot for the duration of the call.
    assert_eq!(unsafe { (vt.manifest)(&mut out) }, status::OK);
    let manifest = take(out);
    assert_eq!(manifest["name"], "kimi");
    assert_eq!(manifest["kind"], "ai_provider");
    assert_eq!(manifest["secrets"][0]["default_env"], "MOONSHOT_API_KEY");

    let config = r#"{"settings": {"region": "global"}, "secrets": {"api_key": "sk-test"}}"#;
    let (mut instance, mut out) = (std::ptr::null_mut(), RBuf::EMPTY);
    // SAFETY: `config` outlives the call; `instance` and `out` are valid, writable slots.
    assert_eq!(
        unsafe { (vt.create)(rstr(config), &mut instance, &mut out) },
        status::OK
    );
    take(out);
    assert!(!instance.is_null());

    let input = serde_json::to_string(&request("kimi-latest", false)).unwrap();
    let mut out = RBuf::EMPTY;
    // SAFETY: `instance` is alive; the strings outlive the call; `out` is a writable slot.
    let code = unsafe { (vt.call)(instance, rstr("chat.build_request"), rstr(&input), &mut out) };
    assert_eq!(code, status::OK);
    let http = take(out);
    assert_eq!(http["url"], "https://api.moonshot.ai/v1/chat/completions");
    assert!(
        !http.to_string().contains("sk-test"),
        "the key never leaves the host"
    );

    let mut out = RBuf::EMPTY;
    let bad = serde_json::to_string(&request("nope", false)).unwrap();
    // SAFETY: as above.
    let code = unsafe { (vt.call)(instance, rstr("chat.build_request"), rstr(&bad), &mut out) };
    assert_eq!(code, status::ERROR);
    assert_eq!(take(out)["code"], "bad_input");

    // SAFETY: `instance` came from `create` and is destroyed once.
    unsafe { (vt.destroy)(instance) };
}
