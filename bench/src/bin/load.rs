//! The load driver, bounded in requests and time. Prints one JSON line of results.
//!
//! ```text
//! load http URL BODY [TOKEN] CONCURRENCY SECONDS MAX_REQUESTS
//! load get  URL - [TOKEN] CONCURRENCY SECONDS MAX_REQUESTS
//! load ws   URL PAYLOAD [TOKEN] CONCURRENCY SECONDS MAX_REQUESTS
//! load sse  URL BODY [TOKEN] CONCURRENCY SECONDS MAX_REQUESTS
//! ```
//! `sse` POSTs an OpenAI chat body with `stream: true` and reads the server-sent events to
//! `data: [DONE]`; its TTFT is the first event carrying answer text.
//! `BODY` is the POST body (JSON); `PAYLOAD` the `subscribe` payload (`{"query": ...}`). TOKEN
//! may be `-` for none. Loopback URLs only. Failed requests are counted by what failed them: the
//! HTTP status and the first GraphQL `extensions.code` (`503 UNAVAILABLE`, `200 INTERNAL`, …), or
//! `transport` when no answer came; their latency is reported apart (`error_p99_ms`), so that fast
//! refusals under overload can be told from slow failures. A worker that is refused with a
//! `retryAfterMs` (HTTP 503 with `Retry-After`, or a WebSocket error), or a `/v1` refusal with a
//! `Retry-After` header, waits that long before its
//! next request, as the OpenAI SDKs and any well-behaved client do; the wait is not counted in
//! any latency.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cloudbase_bench::percentile;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[derive(Default)]
struct Samples {
    latency_ms: Vec<f64>,
    ttft_ms: Vec<f64>,
    errors: usize,
    error_ms: Vec<f64>,
    codes: BTreeMap<String, usize>,
}

impl Samples {
    fn failed(&mut self, what: String, started: Instant) {
        self.errors += 1;
        self.error_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        *self.codes.entry(what).or_default() += 1;
    }
}

/// The `extensions.retryAfterMs` of the first error in a GraphQL body, if any.
fn retry_after(body: &str) -> Option<Duration> {
    let v: Value = serde_json::from_str(body).ok()?;
    let errors = v.get("errors").or_else(|| v.get("payload"))?;
    let first = match errors {
        Value::Array(items) => items.first()?,
        Value::Object(_) => errors.get("errors")?.get(0)?,
        _ => return None,
    };
    first["extensions"]["retryAfterMs"]
        .as_u64()
        .map(|ms| Duration::from_millis(ms.min(10_000)))
}

/// The first `extensions.code` in a GraphQL body, or `-`.
fn first_code(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            let errors = v.get("errors").or_else(|| v.get("payload"))?.clone();
            let first = match errors {
                Value::Array(items) => items.into_iter().next()?,
                Value::Object(_) => errors.get("errors")?.get(0)?.clone(),
                _ => return None,
            };
            first["extensions"]["code"].as_str().map(str::to_owned)
        })
        .unwrap_or_else(|| "-".into())
}

struct Plan {
    url: String,
    body: String,
    token: Option<String>,
    deadline: Instant,
    max: usize,
    issued: AtomicUsize,
}

impl Plan {
    /// Claims the next request, if the budget of count and time allows.
    fn claim(&self) -> bool {
        Instant::now() < self.deadline && self.issued.fetch_add(1, Ordering::Relaxed) < self.max
    }
}

async fn http_worker(plan: Arc<Plan>, client: reqwest::Client, get: bool) -> Samples {
    let mut s = Samples::default();
    while plan.claim() {
        let started = Instant::now();
        let mut request = if get {
            client.get(&plan.url)
        } else {
            client
                .post(&plan.url)
                .header("content-type", "application/json")
                .body(plan.body.clone())
        };
        if let Some(t) = &plan.token {
            request = request.bearer_auth(t);
        }
        match request.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let header_wait = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                    .map(|secs| Duration::from_secs(secs.min(10)));
                match r.text().await {
                    Ok(text) if status == 200 && !text.contains("\"errors\"") => {
                        s.latency_ms.push(started.elapsed().as_secs_f64() * 1000.0)
                    }
                    Ok(text) => {
                        s.failed(format!("{status} {}", first_code(&text)), started);
                        if let Some(wait) = retry_after(&text).or(header_wait) {
                            tokio::time::sleep(wait).await;
                        }
                    }
                    Err(_) => s.failed(format!("{status} body"), started),
                }
            }
            Err(_) => s.failed("transport".into(), started),
        }
    }
    s
}

/// Whether an SSE event carries answer text (`"content":"` and then something).
fn has_text(event: &str) -> bool {
    event
        .split("\"content\":\"")
        .skip(1)
        .any(|rest| !rest.starts_with('"'))
}

async fn sse_worker(plan: Arc<Plan>, client: reqwest::Client) -> Samples {
    let mut s = Samples::default();
    while plan.claim() {
        let started = Instant::now();
        let mut request = client
            .post(&plan.url)
            .header("content-type", "application/json")
            .body(plan.body.clone());
        if let Some(t) = &plan.token {
            request = request.bearer_auth(t);
        }
        let response = match request.send().await {
            Ok(r) if r.status() == 200 => r,
            Ok(r) => {
                let status = r.status().as_u16();
                let wait = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                s.failed(format!("{status}"), started);
                if let Some(secs) = wait {
                    tokio::time::sleep(Duration::from_secs(secs.min(10))).await;
                }
                continue;
            }
            Err(_) => {
                s.failed("transport".into(), started);
                continue;
            }
        };
        let mut bytes = response.bytes_stream();
        let (mut buffer, mut first, mut done, mut failed) = (String::new(), None, false, false);
        while let Some(chunk) = bytes.next().await {
            let Ok(chunk) = chunk else {
                failed = true;
                break;
            };
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                if event.contains("[DONE]") {
                    done = true;
                } else if event.contains("\"error\"") {
                    failed = true;
                } else if first.is_none() && has_text(&event) {
                    first = Some(started.elapsed().as_secs_f64() * 1000.0);
                }
            }
        }
        if failed || !done {
            s.failed("sse".into(), started);
        } else {
            s.latency_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            if let Some(t) = first {
                s.ttft_ms.push(t);
            }
        }
    }
    s
}

async fn ws_worker(plan: Arc<Plan>) -> Samples {
    let mut s = Samples::default();
    let Ok(mut request) = plan.url.clone().into_client_request() else {
        return s;
    };
    if let Ok(v) = "graphql-transport-ws".parse() {
        request.headers_mut().insert("sec-websocket-protocol", v);
    }
    // Nagle off, as a browser does: otherwise small frames wait on delayed ACKs (~40 ms).
    let Ok((mut socket, _)) =
        tokio_tungstenite::connect_async_with_config(request, None, true).await
    else {
        s.failed("transport".into(), Instant::now());
        return s;
    };
    let init = match &plan.token {
        Some(t) => {
            json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {t}")}})
        }
        None => json!({"type": "connection_init", "payload": {}}),
    };
    if socket.send(Message::text(init.to_string())).await.is_err() {
        return s;
    }
    // Wait for the ack.
    while let Some(Ok(m)) = socket.next().await {
        if m.to_text().is_ok_and(|t| t.contains("connection_ack")) {
            break;
        }
    }
    let payload: Value = serde_json::from_str(&plan.body).unwrap_or(Value::Null);
    let mut id = 0u64;
    while plan.claim() {
        id += 1;
        let started = Instant::now();
        let subscribe = json!({"id": id.to_string(), "type": "subscribe", "payload": payload});
        if socket
            .send(Message::text(subscribe.to_string()))
            .await
            .is_err()
        {
            s.failed("transport".into(), started);
            break;
        }
        let mut first = None;
        let mut failed = None;
        let mut wait = None;
        loop {
            let Some(Ok(message)) = socket.next().await else {
                failed = Some("transport".to_owned());
                break;
            };
            let Ok(text) = message.to_text() else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<Value>(text) else {
                continue;
            };
            match v["type"].as_str() {
                Some("next") => {
                    if v["payload"].get("errors").is_some() {
                        failed = Some(format!("ws {}", first_code(&v["payload"].to_string())));
                        wait = retry_after(&v["payload"].to_string());
                    }
                    first.get_or_insert_with(|| started.elapsed().as_secs_f64() * 1000.0);
                }
                Some("complete") => break,
                Some("error") => {
                    failed = Some(format!("ws {}", first_code(&v.to_string())));
                    wait = retry_after(&v.to_string());
                    break;
                }
                Some("ping") => {
                    let _ = socket
                        .send(Message::text(json!({"type": "pong"}).to_string()))
                        .await;
                }
                _ => {}
            }
        }
        if let Some(what) = failed {
            s.failed(what, started);
            if let Some(wait) = wait {
                tokio::time::sleep(wait).await;
            }
        } else {
            s.latency_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            if let Some(t) = first {
                s.ttft_ms.push(t);
            }
        }
    }
    s
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(
        args.len() == 7,
        "usage: load http|get|ws|sse URL BODY TOKEN CONCURRENCY SECONDS MAX_REQUESTS"
    );
    let mode = args[0].clone();
    let url = args[1].clone();
    anyhow::ensure!(
        url.contains("://127.0.0.1:") || url.contains("://localhost:"),
        "loopback URLs only"
    );
    let concurrency: usize = args[4].parse()?;
    let seconds: f64 = args[5].parse()?;
    let plan = Arc::new(Plan {
        url,
        body: args[2].clone(),
        token: Some(args[3].clone()).filter(|t| t != "-"),
        deadline: Instant::now() + Duration::from_secs_f64(seconds),
        max: args[6].parse()?,
        issued: AtomicUsize::new(0),
    });
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let plan = Arc::clone(&plan);
        let client = client.clone();
        let mode = mode.clone();
        tasks.push(tokio::spawn(async move {
            match mode.as_str() {
                "ws" => ws_worker(plan).await,
                "sse" => sse_worker(plan, client).await,
                other => http_worker(plan, client, other == "get").await,
            }
        }));
    }
    let mut all = Samples::default();
    for t in tasks {
        let s = t.await?;
        all.latency_ms.extend(s.latency_ms);
        all.ttft_ms.extend(s.ttft_ms);
        all.errors += s.errors;
        all.error_ms.extend(s.error_ms);
        for (code, n) in s.codes {
            *all.codes.entry(code).or_default() += n;
        }
    }
    all.error_ms.sort_by(f64::total_cmp);
    let elapsed = started.elapsed().as_secs_f64();
    all.latency_ms.sort_by(f64::total_cmp);
    all.ttft_ms.sort_by(f64::total_cmp);
    let out = json!({
        "mode": mode,
        "concurrency": concurrency,
        "requests": all.latency_ms.len(),
        "errors": all.errors,
        "errors_by_code": all.codes,
        "error_p99_ms": percentile(&all.error_ms, 99.0),
        "seconds": (elapsed * 100.0).round() / 100.0,
        "rps": (all.latency_ms.len() as f64 / elapsed).round(),
        "p50_ms": percentile(&all.latency_ms, 50.0),
        "p99_ms": percentile(&all.latency_ms, 99.0),
        "ttft_p50_ms": percentile(&all.ttft_ms, 50.0),
        "ttft_p99_ms": percentile(&all.ttft_ms, 99.0),
    });
    println!("{out}");
    Ok(())
}
