//! `plugin_calls LIBRARY RUNNER [CALLS]`: the cost of one call into a provider plugin in the
//! server's process against the same call through a runner process (`isolation = "process"`).
//! Creates the `openai-compatible` plugin both ways and times `CALLS` sequential calls of
//! `chat.parse_stream_event` (what every streamed event costs; the event written as the host
//! writes it, its data as JSON to a plugin that reads that form) and of `chat.build_request`
//! (once per chat), then the same calls 8 at a time. Prints one JSON line per (mode, method,
//! concurrency): calls, total seconds, calls per second, and p50/p99/mean microseconds per call.
//! `RUNNER` is the program started as `RUNNER plugin-runner LIBRARY`: the release `cloudbase-ai`.
//! Run by `bench/plugin-calls.sh`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use cloudbase_bench::percentile;
use cloudbase_plugin_api::{JsonBodies, SseEvent};
use cloudbase_server::plugin_host::call::Instance;
use cloudbase_server::plugin_host::callee::Callee;
use cloudbase_server::plugin_host::isolated::{Isolated, RunnerCommand, Spec};
use cloudbase_server::plugin_host::library;
use serde::Serialize;
use serde_json::{Value, json};

/// The concurrency of the second round.
const PARALLEL: usize = 8;

/// One SSE chunk of an OpenAI-compatible stream, as the plugin parses it per event.
fn sse_event() -> SseEvent {
    let chunk = json!({
        "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "bench-model",
        "choices": [{"index": 0, "delta": {"content": "quick"}, "finish_reason": null}]
    });
    SseEvent {
        event: None,
        data: chunk.to_string(),
    }
}

fn chat_request() -> Value {
    json!({"model": "bench-model", "messages": [{"role": "user", "content": "hi"}], "stream": true})
}

/// A call's input: a JSON value, or an event written as the host writes it for `callee`
/// (`plugin_host::provider`).
#[derive(Clone)]
enum Input {
    Value(Value),
    Event(SseEvent, bool),
}

impl Input {
    fn event(event: &SseEvent, callee: &Callee) -> Self {
        Input::Event(event.clone(), callee.raw_json_bodies())
    }
}

impl Serialize for Input {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Input::Value(v) => v.serialize(s),
            Input::Event(event, raw_json) => JsonBodies {
                message: event,
                raw_json: *raw_json,
            }
            .serialize(s),
        }
    }
}

/// Times `calls` calls of `method` with `input`, `parallel` at a time; prints the JSON line.
async fn measure(
    mode: &str,
    callee: &Callee,
    method: &'static str,
    input: &Input,
    calls: usize,
    parallel: usize,
) -> anyhow::Result<()> {
    for _ in 0..calls.min(1000) {
        callee
            .call::<_, Value>(method, input)
            .await
            .map_err(|f| anyhow::anyhow!("{method}: {f}"))?;
    }
    let per_task = calls / parallel;
    let started = Instant::now();
    let tasks = (0..parallel).map(|_| {
        let (callee, input) = (callee.clone(), input.clone());
        tokio::spawn(async move {
            let mut samples = Vec::with_capacity(per_task);
            for _ in 0..per_task {
                let at = Instant::now();
                callee
                    .call::<_, Value>(method, &input)
                    .await
                    .map_err(|f| anyhow::anyhow!("{method}: {f}"))?;
                samples.push(at.elapsed().as_secs_f64() * 1e6);
            }
            anyhow::Ok(samples)
        })
    });
    let mut samples = Vec::with_capacity(calls);
    for task in futures_util::future::join_all(tasks).await {
        samples.extend(task.context("a timing task")??);
    }
    let took = started.elapsed().as_secs_f64();
    samples.sort_by(f64::total_cmp);
    let mean = samples.iter().sum::<f64>() / samples.len().max(1) as f64;
    println!(
        "{}",
        json!({
            "mode": mode, "method": method, "concurrency": parallel, "calls": samples.len(),
            "seconds": took, "calls_per_sec": samples.len() as f64 / took,
            "p50_us": percentile(&samples, 50.0), "p99_us": percentile(&samples, 99.0), "mean_us": mean,
        })
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(library_path), Some(runner)) = (args.next(), args.next()) else {
        bail!("usage: plugin_calls LIBRARY RUNNER [CALLS]");
    };
    let calls: usize = args.next().map_or(Ok(100_000), |n| n.parse())?;
    let library_path = PathBuf::from(library_path);
    let deadline = Duration::from_secs(10);
    let config = serde_json::to_vec(&json!({
        "settings": {"base_url": "http://127.0.0.1:9/v1", "models": [{"id": "bench-model"}]},
        "secrets": {}
    }))?;

    let vtable = library::open(&library_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let in_process = Callee::InProcess(
        Instance::create(vtable, config.clone(), deadline)
            .await
            .map_err(|f| anyhow::anyhow!("create: {f}"))?,
    );
    let isolated = Callee::Isolated(
        Isolated::start(Spec {
            runner: RunnerCommand::at(PathBuf::from(runner)),
            library: library_path,
            instance: "bench".into(),
            config,
            deadline,
            raw_json_bodies: in_process.raw_json_bodies(),
        })
        .await
        .map_err(|f| anyhow::anyhow!("create in a runner: {f}"))?,
    );
    let event = sse_event();
    for parallel in [1, PARALLEL] {
        for method in ["chat.parse_stream_event", "chat.build_request"] {
            for (mode, callee) in [("in_process", &in_process), ("isolated", &isolated)] {
                let input = match method {
                    "chat.parse_stream_event" => Input::event(&event, callee),
                    _ => Input::Value(chat_request()),
                };
                measure(mode, callee, method, &input, calls, parallel).await?;
            }
        }
    }
    Ok(())
}
