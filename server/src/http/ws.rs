//! `/graphql/ws`: subscriptions over WebSocket, in both `graphql-transport-ws` and the legacy
//! `graphql-ws` protocol. Credentials go in the `connection_init` payload
//! (`{"Authorization": "Bearer <token>"}`); a bad token closes the socket with the protocol's code.
//!
//! async-graphql speaks the protocol; around it, this module keeps each socket within its limits
//! and its credential:
//! - the reader ([`gate`]) closes a socket that sends no `connection_init` in time (4408), reuses
//!   an operation id that is still running (4409), subscribes before it is acknowledged (4401) or
//!   sends a message larger than `http.max_body_bytes` (1009), and refuses operations past
//!   `http.ws_max_operations`;
//! - the credential is checked again for every operation (see
//!   `cloudbase_schema::graphql::socket_auth`), the socket closes with 4401 when its access token
//!   expires, and [`super::sockets`] closes it when the user's access changes on any instance;
//! - one writer task owns the socket's sending half and ends with the close frame asked for.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::Data;
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, WebSocketProtocols};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::Extension;
use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use cloudbase_schema::App;
use cloudbase_schema::graphql::socket_auth::SocketCredential;
use cloudbase_schema::metrics::GaugeGuard;
use cloudbase_schema::services::{Auth, RequestMeta, auth};
use futures_util::stream::BoxStream;
use futures_util::{SinkExt, StreamExt};
use tracing::Instrument as _;

use super::sockets::{LiveSocket, UNAUTHORIZED};
use super::{HttpState, RequestId};
use crate::config::Environment;

/// The bearer credential in a `connection_init` payload: `Authorization` (any case) or `token`.
fn credential(payload: &serde_json::Value) -> Option<String> {
    let object = payload.as_object()?;
    if let Some(value) = object
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, v)| v.as_str())
    {
        return Some(value.to_owned());
    }
    object
        .get("token")
        .and_then(|v| v.as_str())
        .map(|t| format!("Bearer {t}"))
}

/// What the `graphql-transport-ws` output filter remembers about one socket.
#[derive(Default)]
struct Conformance {
    acked: bool,
    /// The close code for a refused `connection_init`: 4403 for rejected credentials, 4500 when
    /// they could not be checked. async-graphql's other 1002 close is for a message it cannot
    /// parse, at any time: 4400 Bad Request.
    init_refused: Option<u16>,
    /// Operations whose request error went out as an `error` message: their `complete` is dropped.
    errored: HashSet<String>,
    /// Ids of the operations running now (subscribed, and not completed by either side).
    running: HashSet<String>,
}

/// A response that failed before execution (parse, validation, variables): no data, and
/// no error with a path.
fn is_request_error(payload: &serde_json::Value) -> bool {
    let no_data = payload.get("data").is_none_or(serde_json::Value::is_null);
    let errors = payload.get("errors").and_then(|e| e.as_array());
    no_data
        && errors.is_some_and(|errors| {
            !errors.is_empty() && errors.iter().all(|e| e.get("path").is_none())
        })
}

/// Follows what async-graphql sends: acknowledgement, operations that ended (`complete` or
/// `error`, either protocol). Under `graphql-transport-ws` it also brings the output in line with
/// the protocol: a rejected `connection_init` closes with 4403 Forbidden and a malformed message
/// with 4400 (async-graphql sends 1002 for both), and a request error is one `error` message, not
/// `next` followed by `complete`.
fn outgoing(message: Message, state: &Mutex<Conformance>, transport_ws: bool) -> Option<Message> {
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    match message {
        Message::Text(text) => {
            let Ok(mut value) = serde_json::from_str::<serde_json::Value>(&text) else {
                return Some(Message::Text(text));
            };
            let id = value.get("id").and_then(|v| v.as_str()).map(str::to_owned);
            match (value.get("type").and_then(|v| v.as_str()), id) {
                (Some("connection_ack"), _) => state.acked = true,
                (Some("next"), Some(id))
                    if transport_ws && value.get("payload").is_some_and(is_request_error) =>
                {
                    let errors = value["payload"]["errors"].take();
                    state.running.remove(&id);
                    state.errored.insert(id.clone());
                    let out = serde_json::json!({"id": id, "type": "error", "payload": errors});
                    return Some(Message::Text(out.to_string().into()));
                }
                (Some("complete"), Some(id)) => {
                    state.running.remove(&id);
                    if state.errored.remove(&id) {
                        return None;
                    }
                }
                (Some("error"), Some(id)) => {
                    state.running.remove(&id);
                }
                _ => {}
            }
            Some(Message::Text(text))
        }
        Message::Close(Some(frame)) if transport_ws && frame.code == 1002 => {
            Some(Message::Close(Some(CloseFrame {
                code: state.init_refused.unwrap_or(4400),
                reason: frame.reason,
            })))
        }
        other => Some(other),
    }
}

/// The limits the reader enforces.
#[derive(Debug, Clone, Copy)]
struct SocketLimits {
    init_timeout: Duration,
    max_operations: usize,
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

/// The `error` message refusing operation `id`, in the socket's protocol.
fn refusal(id: &str, message: &str, code: &str, transport_ws: bool) -> Message {
    let error = serde_json::json!({"message": message, "extensions": {"code": code}});
    let payload = if transport_ws {
        serde_json::json!([error])
    } else {
        error
    };
    let out = serde_json::json!({"id": id, "type": "error", "payload": payload});
    Message::Text(out.to_string().into())
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

type Incoming = futures_util::stream::SplitStream<axum::extract::ws::WebSocket>;

/// What the reader carries from one message to the next.
struct Reader {
    /// The client's messages; handed to the writer when the reader ends (see `Drop`).
    incoming: Option<Incoming>,
    handoff: Option<tokio::sync::oneshot::Sender<Incoming>>,
    replies: futures_channel::mpsc::Sender<Message>,
    live: Arc<LiveSocket>,
    state: Arc<Mutex<Conformance>>,
    app: Arc<App>,
    limits: SocketLimits,
    transport_ws: bool,
    init_deadline: tokio::time::Instant,
    init_seen: bool,
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
    fn into_stream(self) -> BoxStream<'static, Result<Message, axum::Error>> {
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

/// Read and write buffer of a socket (see `handler`).
const SOCKET_BUFFER_BYTES: usize = 4 * 1024;

/// How long the writer waits for the client's side of the closing handshake.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// The writer: sends what async-graphql and the reader produce, in order, then the close frame
/// the socket was asked for (if async-graphql did not close it itself), and waits briefly for the
/// client's close so that nothing it sent meanwhile turns the close into a reset.
async fn write(
    mut sink: futures_util::stream::SplitSink<axum::extract::ws::WebSocket, Message>,
    mut queued: futures_channel::mpsc::Receiver<Message>,
    live: Arc<LiveSocket>,
    handoff: tokio::sync::oneshot::Receiver<Incoming>,
) {
    let mut closed = false;
    while let Some(message) = queued.next().await {
        closed = matches!(message, Message::Close(_));
        if sink.send(message).await.is_err() {
            return;
        }
        if closed {
            break;
        }
    }
    if !closed && let Some((code, reason)) = live.closing() {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        closed = sink.send(Message::Close(Some(frame))).await.is_ok();
    }
    if closed && let Ok(Ok(mut incoming)) = tokio::time::timeout(CLOSE_GRACE, handoff).await {
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while let Some(Ok(message)) = incoming.next().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
    let _ = sink.close().await;
}

/// Upgrades to a GraphQL WebSocket.
pub async fn handler(
    State(state): State<HttpState>,
    Extension(request_id): Extension<RequestId>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let meta = RequestMeta {
        request_id: request_id.0,
        client_ip: Some(state.client_address.of(&headers, peer).to_string()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(512).collect()),
    };
    // The protocol `GraphQLProtocol` chose: the first one the client offers that is known.
    let transport_ws = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .find_map(|p| p.trim().parse::<WebSocketProtocols>().ok())
        })
        == Some(WebSocketProtocols::GraphQLWS);
    let limits = SocketLimits {
        init_timeout: state.ws.init_timeout,
        max_operations: state.ws.max_operations,
    };
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .max_message_size(state.ws.max_message_bytes)
        .max_frame_size(state.ws.max_message_bytes)
        // GraphQL frames are small: the 128 KiB default buffers made an idle socket cost about
        // 140 KB of memory (`bench/fanout.sh`). Larger frames still go through, in pieces.
        .read_buffer_size(SOCKET_BUFFER_BYTES)
        .write_buffer_size(SOCKET_BUFFER_BYTES)
        .on_upgrade(move |socket| {
            // The socket lives on after the upgrade request's span: give it its own.
            let span = tracing::info_span!(
                "websocket",
                instance = %state.app.events.origin(),
                request.id = %meta.request_id
            );
            serve(socket, state, meta, protocol, limits, transport_ws).instrument(span)
        })
}

async fn serve(
    socket: axum::extract::ws::WebSocket,
    state: HttpState,
    meta: RequestMeta,
    protocol: GraphQLProtocol,
    limits: SocketLimits,
    transport_ws: bool,
) {
    let app = state.app.clone();
    let _live_gauge = GaugeGuard::new(app.clone(), "cloudbase_websocket_connections");
    let restrict_introspection = state.env == Environment::Prod;
    let (socket_sink, incoming) = socket.split();
    let (replies, queued) = futures_channel::mpsc::channel::<Message>(16);
    let live = Arc::new(LiveSocket::default());
    let conformance = Arc::new(Mutex::new(Conformance::default()));
    let (handoff, handed) = tokio::sync::oneshot::channel();
    let reader = Reader {
        incoming: Some(incoming),
        handoff: Some(handoff),
        replies: replies.clone(),
        live: Arc::clone(&live),
        state: Arc::clone(&conformance),
        app: app.clone(),
        limits,
        transport_ws,
        init_deadline: tokio::time::Instant::now() + limits.init_timeout,
        init_seen: false,
    };
    let refusals = Arc::clone(&conformance);
    let refuse = move |code: u16, error: async_graphql::Error| {
        refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .init_refused = Some(code);
        Err(error)
    };
    let filter = Arc::clone(&conformance);
    let graphql_sink = replies.with_flat_map(move |message: Message| {
        let out = outgoing(message, &filter, transport_ws);
        futures_util::stream::iter(out.map(Ok))
    });
    let sockets = Arc::clone(&state.sockets);
    let registered = Arc::clone(&live);
    let on_init = move |payload: serde_json::Value| async move {
        let authorization = credential(&payload);
        let auth = match auth::authenticate(&app, authorization.as_deref()).await {
            Ok(auth) => auth,
            Err(e) => return refuse(4500, async_graphql::Error::new(e.to_string())),
        };
        let opened_as = match auth {
            Auth::Rejected(why) => return refuse(4403, async_graphql::Error::new(why)),
            Auth::Anonymous => None,
            Auth::User(viewer) => Some(viewer),
        };
        if let (Some(authorization), Some(viewer)) = (&authorization, &opened_as) {
            sockets.register(&registered, authorization.clone(), viewer.clone());
        }
        let mut data = Data::default();
        data.insert(SocketCredential {
            authorization,
            opened_as,
            restrict_introspection,
            closer: registered,
        });
        data.insert(meta);
        Ok(data)
    };
    let graphql = GraphQLWebSocket::new_with_pair(
        graphql_sink,
        reader.into_stream(),
        state.schema.clone(),
        protocol,
    )
    .on_connection_init(on_init)
    .serve();
    tokio::join!(graphql, write(socket_sink, queued, live, handed));
}
