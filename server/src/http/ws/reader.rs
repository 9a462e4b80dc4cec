//! The reader: the client's messages on their way to async-graphql, judged one by one against
//! the socket's state and limits, and cut off at the `connection_init` deadline or when the
//! access token expires.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::Message;
use cloudbase_schema::App;
use futures_util::stream::BoxStream;
use futures_util::{SinkExt, StreamExt};

use super::conformance::{Conformance, refusal};
use crate::http::sockets::{LiveSocket, UNAUTHORIZED};

/// The limits the reader enforces.
#[derive(Debug, Clone, Copy)]
pub(super) struct SocketLimits {
    pub(super) init_timeout: Duration,
    pub(super) max_operations: usize,
}

/// The fields of a client message the reader looks at.
#[derive(serde::Deserialize)]
struct ClientFrame {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
}

/// What the reader does with one message from the client.
enum Verdict {
    /// Pass it on to async-graphql.
    Forward,
    /// Answer the operation with this error, in place of running it.
    Refuse(Message),
    /// Close the socket.
    Close(u16, String),
}

/// Judges one text message against the socket's state and limits.
fn judge(
    text: &str,
    state: &Mutex<Conformance>,
    limits: SocketLimits,
    init_seen: &mut bool,
    transport_ws: bool,
) -> Verdict {
    // What does not parse is async-graphql's to refuse (4400).
    let Ok(frame) = serde_json::from_str::<ClientFrame>(text) else {
        return Verdict::Forward;
    };
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    match (frame.kind.as_str(), frame.id) {
        ("connection_init", _) => *init_seen = true,
        ("subscribe" | "start", Some(id)) => {
            if !state.acked {
                return Verdict::Close(UNAUTHORIZED, "Unauthorized".into());
            }
            if state.running.contains(&id) {
                return Verdict::Close(4409, format!("Subscriber for {id} already exists"));
            }
            if state.running.len() >= limits.max_operations {
                let message = format!(
                    "at most {} operations may run at once on one connection",
                    limits.max_operations
                );
                return Verdict::Refuse(refusal(
                    &id,
                    &message,
                    "TOO_MANY_OPERATIONS",
                    transport_ws,
                ));
            }
            state.running.insert(id);
        }
        ("complete" | "stop", Some(id)) => {
            state.running.remove(&id);
        }
        _ => {}
    }
    Verdict::Forward
}

/// Why a read failed, as a close frame: a message over the size limit is 1009.
fn read_failure(error: &axum::Error) -> (u16, String) {
    let text = error.to_string();
    if text.contains("Space limit exceeded") {
        (1009, "message too big".into())
    } else {
        (1002, "unreadable message".into())
    }
}

pub(super) type Incoming = futures_util::stream::SplitStream<axum::extract::ws::WebSocket>;

/// What the reader carries from one message to the next.
pub(super) struct Reader {
    /// The client's messages; handed to the writer when the reader ends (see `Drop`).
    pub(super) incoming: Option<Incoming>,
    pub(super) handoff: Option<tokio::sync::oneshot::Sender<Incoming>>,
    pub(super) replies: futures_channel::mpsc::Sender<Message>,
    pub(super) live: Arc<LiveSocket>,
    pub(super) state: Arc<Mutex<Conformance>>,
    pub(super) app: Arc<App>,
    pub(super) limits: SocketLimits,
    pub(super) transport_ws: bool,
    pub(super) init_deadline: tokio::time::Instant,
    pub(super) init_seen: bool,
}

impl Reader {
    /// When the reader stops waiting: `connection_init` not yet seen, the init deadline; after
    /// it, the access token's expiry (none for an anonymous socket).
    fn deadline(&self) -> Option<tokio::time::Instant> {
        if !self.init_seen {
            return Some(self.init_deadline);
        }
        self.live.expires_at().map(|at| {
            let left = (at - self.app.clock.now())
                .to_std()
                .unwrap_or(Duration::ZERO);
            tokio::time::Instant::now() + left
        })
    }

    /// The next message to pass on, or `None` when the connection must end.
    async fn next(&mut self) -> Option<Message> {
        loop {
            if self.live.closing().is_some() {
                return None;
            }
            let deadline = self.deadline();
            let expiry = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let message = tokio::select! {
                () = self.live.changed() => continue,
                () = expiry => {
                    if self.init_seen {
                        self.live.close(UNAUTHORIZED, "the access token expired");
                    } else {
                        self.live.close(4408, "Connection initialisation timeout");
                    }
                    return None;
                }
                message = next_message(&mut self.incoming) => message,
            };
            let message = match message? {
                Ok(message) => message,
                Err(e) => {
                    let (code, reason) = read_failure(&e);
                    self.live.close(code, &reason);
                    return None;
                }
            };
            let text = match &message {
                Message::Text(text) => Some(text.as_str()),
                Message::Binary(bytes) => std::str::from_utf8(bytes).ok(),
                _ => None,
            };
            let verdict = text.map_or(Verdict::Forward, |text| {
                judge(
                    text,
                    &self.state,
                    self.limits,
                    &mut self.init_seen,
                    self.transport_ws,
                )
            });
            match verdict {
                Verdict::Forward => return Some(message),
                Verdict::Refuse(reply) => {
                    if self.replies.send(reply).await.is_err() {
                        return None;
                    }
                }
                Verdict::Close(code, reason) => {
                    self.live.close(code, &reason);
                    return None;
                }
            }
        }
    }

    /// The reader as the stream async-graphql reads.
    pub(super) fn into_stream(self) -> BoxStream<'static, Result<Message, axum::Error>> {
        futures_util::stream::unfold(self, |mut reader| async move {
            let message = reader.next().await?;
            Some((Ok(message), reader))
        })
        .boxed()
    }
}

async fn next_message(incoming: &mut Option<Incoming>) -> Option<Result<Message, axum::Error>> {
    match incoming {
        Some(incoming) => incoming.next().await,
        None => None,
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let (Some(handoff), Some(incoming)) = (self.handoff.take(), self.incoming.take()) {
            let _ = handoff.send(incoming);
        }
    }
}
