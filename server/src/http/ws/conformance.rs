//! What async-graphql sends on a socket, followed (acknowledgement, operations running and
//! ended) and, under `graphql-transport-ws`, brought in line with the protocol; and the `error`
//! message that refuses an operation.

use std::collections::HashSet;
use std::sync::Mutex;

use axum::extract::ws::{CloseFrame, Message};

/// What the `graphql-transport-ws` output filter remembers about one socket.
#[derive(Default)]
pub(super) struct Conformance {
    pub(super) acked: bool,
    /// The close code for a refused `connection_init`: 4403 for rejected credentials, 4500 when
    /// they could not be checked. async-graphql's other 1002 close is for a message it cannot
    /// parse, at any time: 4400 Bad Request.
    pub(super) init_refused: Option<u16>,
    /// Operations whose request error went out as an `error` message: their `complete` is dropped.
    pub(super) errored: HashSet<String>,
    /// Ids of the operations running now (subscribed, and not completed by either side).
    pub(super) running: HashSet<String>,
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
pub(super) fn outgoing(
    message: Message,
    state: &Mutex<Conformance>,
    transport_ws: bool,
) -> Option<Message> {
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

/// The `error` message refusing operation `id`, in the socket's protocol.
pub(super) fn refusal(id: &str, message: &str, code: &str, transport_ws: bool) -> Message {
    let error = serde_json::json!({"message": message, "extensions": {"code": code}});
    let payload = if transport_ws {
        serde_json::json!([error])
    } else {
        error
    };
    let out = serde_json::json!({"id": id, "type": "error", "payload": payload});
    Message::Text(out.to_string().into())
}
