//! A local OpenAI-compatible upstream on loopback, in Kimi's or OpenAI's dialect: plain JSON and
//! server-sent events, usage in `choices[0].usage` (Kimi) or top level (OpenAI), and failures on
//! demand (a prompt containing `TOO_LONG` or `NO_BALANCE` gets Moonshot's error for it). It
//! records what it receives.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// Where usage goes in a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Moonshot: `choices[0].usage` in the final chunk, `cached_tokens` at the top of usage.
    Kimi,
    /// OpenAI: a last chunk with `choices: []` and top-level `usage`.
    OpenAi,
}

/// One request the upstream saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub authorization: Option<String>,
    pub body: Value,
}

pub struct Upstream {
    pub addr: SocketAddr,
    state: Arc<Inner>,
    _server: tokio::task::JoinHandle<()>,
}

struct Inner {
    dialect: Dialect,
    fail_next: AtomicUsize,
    fail_status: AtomicU16,
    chunk_delay_ms: AtomicU64,
    seen: Mutex<Vec<Seen>>,
}

/// The reply the upstream gives to `prompt`, and its usage (prompt, cached, completion).
pub fn reply_for(prompt: &str) -> (String, (u64, u64, u64)) {
    let reply = format!("Upstream says: {prompt}");
    let words = reply.split_whitespace().count() as u64;
    (reply, (11 + prompt.len() as u64, 3, words))
}

impl Upstream {
    pub async fn start(dialect: Dialect) -> Self {
        let state = Arc::new(Inner {
            dialect,
            fail_next: AtomicUsize::new(0),
            fail_status: AtomicU16::new(500),
            chunk_delay_ms: AtomicU64::new(0),
            seen: Mutex::new(Vec::new()),
        });
        let router = Router::new()
            .route("/v1/chat/completions", post(completions))
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Upstream {
            addr,
            state,
            _server: server,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The next `n` requests fail with `status`.
    pub fn fail_next(&self, n: usize, status: u16) {
        self.state.fail_status.store(status, Ordering::SeqCst);
        self.state.fail_next.store(n, Ordering::SeqCst);
    }

    /// Pause between streamed chunks.
    pub fn chunk_delay(&self, ms: u64) {
        self.state.chunk_delay_ms.store(ms, Ordering::SeqCst);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
}

fn usage_json(dialect: Dialect, (prompt, cached, completion): (u64, u64, u64)) -> Value {
    match dialect {
        Dialect::Kimi => {
            json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion, "cached_tokens": cached})
        }
        Dialect::OpenAi => {
            json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion, "prompt_tokens_details": {"cached_tokens": cached}})
        }
    }
}

async fn completions(
    State(state): State<Arc<Inner>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    state.seen.lock().unwrap().push(Seen {
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: body.clone(),
    });
    if state
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        let status = StatusCode::from_u16(state.fail_status.load(Ordering::SeqCst)).unwrap();
        return (
            status,
            json!({"error": {"message": "upstream exploded", "type": "server_error"}}).to_string(),
        )
            .into_response();
    }
    let prompt = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned();
    if prompt.contains("NO_BALANCE") {
        // Moonshot's answer when the account's balance is used up (its documented error table).
        let error = json!({"error": {"message": "You exceeded your current token quota: <nil>, please check your account balance", "type": "exceeded_current_quota_error"}});
        return (StatusCode::TOO_MANY_REQUESTS, error.to_string()).into_response();
    }
    if prompt.contains("TOO_LONG") {
        let error = json!({"error": {"message": "Invalid request: Your request exceeded model token limit: 8192", "type": "invalid_request_error"}});
        return (StatusCode::BAD_REQUEST, error.to_string()).into_response();
    }
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let (reply, usage) = reply_for(&prompt);
    if body["stream"] != json!(true) {
        let mut response = json!({
            "id": "cmpl-test", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
            "usage": usage_json(state.dialect, usage),
        });
        if state.dialect == Dialect::Kimi {
            response["choices"][0]["usage"] = Value::Null;
        }
        return ([("content-type", "application/json")], response.to_string()).into_response();
    }
    let mut chunks: Vec<Value> = vec![
        json!({"id": "c", "model": model, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
    ];
    let mut first = true;
    for word in reply.split(' ') {
        let piece = if first {
            word.to_owned()
        } else {
            format!(" {word}")
        };
        first = false;
        chunks.push(json!({"id": "c", "model": model, "choices": [{"index": 0, "delta": {"content": piece}}]}));
    }
    match state.dialect {
        Dialect::Kimi => chunks.push(json!({"id": "c", "model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "usage": usage_json(Dialect::Kimi, usage)}]})),
        Dialect::OpenAi => {
            chunks.push(json!({"id": "c", "model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}));
            chunks.push(json!({"id": "c", "model": model, "choices": [], "usage": usage_json(Dialect::OpenAi, usage)}));
        }
    }
    let delay = Duration::from_millis(state.chunk_delay_ms.load(Ordering::SeqCst));
    let mut frames: Vec<String> = chunks
        .into_iter()
        .map(|c| format!("data: {c}\n\n"))
        .collect();
    frames.push("data: [DONE]\n\n".into());
    let stream = futures_util::stream::unfold(frames.into_iter(), move |mut frames| async move {
        let frame = frames.next()?;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Some((Ok::<_, std::convert::Infallible>(frame), frames))
    });
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(stream),
    )
        .into_response()
}
