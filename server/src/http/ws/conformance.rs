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

/// What `outgoing` reads of a message: its type and id, nothing else (every live update of every
/// subscription passes here, so the payload is skipped, not built).
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<std::borrow::Cow<'a, str>>,
}

/// What says whether a `next` message is a request error: its payload's data and errors.
#[derive(serde::Deserialize)]
struct Next {
    #[serde(default)]
    payload: Option<NextPayload>,
}

#[derive(serde::Deserialize)]
struct NextPayload {
    /// Absent or null: no data.
    #[serde(default)]
    data: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    errors: Option<Vec<ErrorPath>>,
}

#[derive(serde::Deserialize)]
struct ErrorPath {
    #[serde(default)]
    path: Option<serde::de::IgnoredAny>,
}

/// A `next` message whose response failed before execution (parse, validation, variables): no
/// data, and no error with a path.
fn is_request_error(text: &str) -> bool {
    let Ok(Next {
        payload: Some(payload),
    }) = serde_json::from_str::<Next>(text)
    else {
        return false;
    };
    payload.data.is_none()
        && payload
            .errors
            .is_some_and(|errors| !errors.is_empty() && errors.iter().all(|e| e.path.is_none()))
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
    match message {
        Message::Text(text) => {
            let Ok(envelope) = serde_json::from_str::<Envelope<'_>>(&text) else {
                return Some(Message::Text(text));
            };
            let (kind, id) = (envelope.kind.as_deref(), envelope.id.as_deref());
            let state = || state.lock().unwrap_or_else(|e| e.into_inner());
            match (kind, id) {
                (Some("connection_ack"), _) => state().acked = true,
                (Some("next"), Some(id)) if transport_ws && is_request_error(&text) => {
                    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(&text) else {
                        return Some(Message::Text(text));
                    };
                    let errors = value["payload"]["errors"].take();
                    let mut state = state();
                    state.running.remove(id);
                    state.errored.insert(id.to_owned());
                    let out = serde_json::json!({"id": id, "type": "error", "payload": errors});
                    return Some(Message::Text(out.to_string().into()));
                }
                (Some("complete"), Some(id)) => {
                    let mut state = state();
                    state.running.remove(id);
                    if state.errored.remove(id) {
                        return None;
                    }
                }
                (Some("error"), Some(id)) => {
                    state().running.remove(id);
                }
                _ => {}
            }
            Some(Message::Text(text))
        }
        Message::Close(Some(frame)) if transport_ws && frame.code == 1002 => {
            let refused = state.lock().unwrap_or_else(|e| e.into_inner()).init_refused;
            Some(Message::Close(Some(CloseFrame {
                code: refused.unwrap_or(4400),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn text(message: Option<Message>) -> Option<serde_json::Value> {
        match message? {
            Message::Text(t) => Some(serde_json::from_str(&t).unwrap()),
            other => panic!("not text: {other:?}"),
        }
    }

    fn send(state: &Mutex<Conformance>, value: serde_json::Value) -> Option<serde_json::Value> {
        text(outgoing(
            Message::Text(value.to_string().into()),
            state,
            true,
        ))
    }

    #[test]
    fn only_a_request_error_becomes_an_error_message_and_its_complete_is_dropped() {
        let state = Mutex::new(Conformance::default());
        send(&state, serde_json::json!({"type": "connection_ack"}));
        assert!(state.lock().unwrap().acked);

        // Data, and a field error (it has a path), go out as they came.
        let data = serde_json::json!({"id": "1", "type": "next",
            "payload": {"data": {"aiCallUpdated": {"id": "a", "status": "PENDING"}}}});
        assert_eq!(send(&state, data.clone()), Some(data));
        let field_error = serde_json::json!({"id": "2", "type": "next", "payload": {"data": null,
            "errors": [{"message": "no", "path": ["aiCallUpdated"]}]}});
        assert_eq!(send(&state, field_error.clone()), Some(field_error));
        let complete = serde_json::json!({"id": "2", "type": "complete"});
        assert_eq!(send(&state, complete.clone()), Some(complete));

        // A validation error: one `error` message with the errors, and no `complete` after it.
        state.lock().unwrap().running.insert("3".into());
        let rejected = serde_json::json!({"id": "3", "type": "next",
            "payload": {"errors": [{"message": "Unknown field \"nope\""}]}});
        assert_eq!(
            send(&state, rejected),
            Some(serde_json::json!({"id": "3", "type": "error",
                "payload": [{"message": "Unknown field \"nope\""}]}))
        );
        assert!(!state.lock().unwrap().running.contains("3"));
        assert_eq!(
            send(&state, serde_json::json!({"id": "3", "type": "complete"})),
            None
        );
        // Only once: a later operation with the same id completes normally.
        let again = serde_json::json!({"id": "3", "type": "complete"});
        assert_eq!(send(&state, again.clone()), Some(again));

        // The legacy protocol keeps async-graphql's messages as they are.
        let legacy = Mutex::new(Conformance::default());
        let rejected = serde_json::json!({"id": "4", "type": "next",
            "payload": {"errors": [{"message": "bad"}]}});
        let out = text(outgoing(
            Message::Text(rejected.to_string().into()),
            &legacy,
            false,
        ));
        assert_eq!(out, Some(rejected));
    }
}
