//! Live fan-out: how long one call's update takes to reach every open `aiCallUpdated`
//! subscription. Prints one JSON line.
//!
//! ```text
//! fanout WS_URL HTTP_URL TOKEN SOCKETS SUBSCRIPTIONS_PER_SOCKET CALLS
//! ```
//! Opens `SOCKETS` `graphql-transport-ws` sockets as `TOKEN` (loopback only), each with
//! `SUBSCRIPTIONS_PER_SOCKET` subscriptions to the same user's calls, then makes `CALLS` calls
//! one after another over HTTP as that user. For each call and each subscription it takes the
//! time from the moment the call's HTTP answer arrived (the record is final and settled) to the
//! moment the subscription received the call's `SUCCEEDED` update (0 when it came first). Every
//! wait is bounded: a subscription that has not seen a call after 10 s counts as missed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudbase_bench::percentile;
use cloudbase_schema::domain::CallStatus;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const SUBSCRIPTION: &str = "subscription { aiCallUpdated { id status costMicros } }";
const CHAT: &str = "mutation { chat(input: {provider: \"bench\", model: \"bench-model\", message: \"hi\"}) { aiCall { id } } }";

/// When each call's `SUCCEEDED` update reached each subscription: call id → arrival instants.
type Arrivals = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

async fn open(
    url: &str,
    token: &str,
    subscriptions: usize,
    arrivals: Arrivals,
) -> anyhow::Result<()> {
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "graphql-transport-ws".parse()?);
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(request, None, true).await?;
    let init =
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}});
    socket.send(Message::text(init.to_string())).await?;
    while let Some(message) = socket.next().await {
        if message?
            .to_text()
            .is_ok_and(|t| t.contains("connection_ack"))
        {
            break;
        }
    }
    for id in 0..subscriptions {
        let subscribe =
            json!({"id": id.to_string(), "type": "subscribe", "payload": {"query": SUBSCRIPTION}});
        socket.send(Message::text(subscribe.to_string())).await?;
    }
    tokio::spawn(async move {
        while let Some(Ok(message)) = socket.next().await {
            let Ok(v) = serde_json::from_str::<Value>(message.to_text().unwrap_or("")) else {
                continue;
            };
            if v["type"] == "ping" {
                let _ = socket
                    .send(Message::text(json!({"type": "pong"}).to_string()))
                    .await;
                continue;
            }
            let call = &v["payload"]["data"]["aiCallUpdated"];
            if call["status"] == CallStatus::Succeeded.as_str()
                && let Some(id) = call["id"].as_str()
            {
                let at = Instant::now();
                arrivals
                    .lock()
                    .await
                    .entry(id.to_owned())
                    .or_default()
                    .push(at);
            }
        }
    });
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(
        args.len() == 6,
        "usage: fanout WS_URL HTTP_URL TOKEN SOCKETS SUBSCRIPTIONS_PER_SOCKET CALLS"
    );
    let (ws, http, token) = (&args[0], &args[1], &args[2]);
    for url in [ws, http] {
        anyhow::ensure!(
            url.contains("://127.0.0.1:") || url.contains("://localhost:"),
            "loopback only: {url}"
        );
    }
    let sockets: usize = args[3].parse()?;
    let per_socket: usize = args[4].parse()?;
    let calls: usize = args[5].parse::<usize>()?.min(1000);
    let expected = sockets * per_socket;
    let arrivals: Arrivals = Arc::default();
    for _ in 0..sockets {
        open(ws, token, per_socket, Arc::clone(&arrivals)).await?;
    }
    // Let every subscription start before the first call.
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The script reads the server's memory now, with every subscription open and idle.
    println!(
        "{}",
        json!({"event": "subscribed", "subscriptions": expected})
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    let client = reqwest::Client::new();
    let mut delays_ms = Vec::new();
    let mut missed = 0usize;
    for _ in 0..calls {
        let answer: Value = client
            .post(http)
            .bearer_auth(token)
            .json(&json!({"query": CHAT}))
            .send()
            .await?
            .json()
            .await?;
        let answered = Instant::now();
        let id = answer["data"]["chat"]["aiCall"]["id"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("the call failed: {answer}"))?
            .to_owned();
        let deadline = answered + Duration::from_secs(10);
        loop {
            let seen = arrivals.lock().await.get(&id).map_or(0, Vec::len);
            if seen >= expected || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let got = arrivals.lock().await.remove(&id).unwrap_or_default();
        missed += expected.saturating_sub(got.len());
        delays_ms.extend(
            got.iter()
                .map(|at| at.saturating_duration_since(answered).as_secs_f64() * 1000.0),
        );
    }
    delays_ms.sort_by(f64::total_cmp);
    println!(
        "{}",
        json!({
            "event": "delivered",
            "subscriptions": expected,
            "calls": calls,
            "missed": missed,
            "p50_ms": percentile(&delays_ms, 50.0),
            "p99_ms": percentile(&delays_ms, 99.0),
            "max_ms": delays_ms.last().copied().unwrap_or(0.0),
        })
    );
    Ok(())
}
