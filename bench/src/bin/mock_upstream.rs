//! A fast OpenAI-compatible upstream for benchmarks: `POST /v1/chat/completions`, plain or SSE,
//! no delays. Usage: `mock-upstream 127.0.0.1:PORT`.

use axum::Router;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt as _;
use cloudbase_bench::REPLY_WORDS;
use serde_json::{Value, json};

async fn completions(body: String) -> Response {
    let request: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let model = request["model"]
        .as_str()
        .unwrap_or("bench-model")
        .to_owned();
    let usage = json!({"prompt_tokens": 20, "completion_tokens": REPLY_WORDS.len(), "total_tokens": 20 + REPLY_WORDS.len()});
    if request["stream"] != json!(true) {
        let reply = json!({
            "id": "bench", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": REPLY_WORDS.join(" ")}, "finish_reason": "stop"}],
            "usage": usage,
        });
        return ([("content-type", "application/json")], reply.to_string()).into_response();
    }
    let mut body = String::new();
    for (i, word) in REPLY_WORDS.iter().enumerate() {
        let piece = if i == 0 {
            (*word).to_owned()
        } else {
            format!(" {word}")
        };
        let chunk = json!({"id": "bench", "model": model, "choices": [{"index": 0, "delta": {"content": piece}}]});
        body.push_str(&format!("data: {chunk}\n\n"));
    }
    let last = json!({"id": "bench", "model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "usage": usage}]});
    body.push_str(&format!("data: {last}\n\ndata: [DONE]\n\n"));
    ([("content-type", "text/event-stream")], Body::from(body)).into_response()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18900".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(
        listener,
        Router::new().route("/v1/chat/completions", post(completions)),
    )
    .await?;
    Ok(())
}
