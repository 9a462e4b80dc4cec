//! `/graphql/ws`: subscriptions over WebSocket, in both `graphql-transport-ws` and the legacy
//! `graphql-ws` protocol. Credentials go in the `connection_init` payload
//! (`{"Authorization": "Bearer <token>"}`); a bad token closes the socket with the protocol's code.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_graphql::Data;
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, WebSocketProtocols};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::Extension;
use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use cloudbase_schema::graphql::errors::IntrospectionDenied;
use cloudbase_schema::metrics::GaugeGuard;
use cloudbase_schema::services::{Auth, RequestMeta, auth};
use futures_util::FutureExt as _;
use futures_util::{SinkExt, StreamExt};
use tracing::Instrument as _;

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

/// Brings async-graphql's `graphql-transport-ws` output in line with the protocol:
/// a rejected `connection_init` closes with 4403 Forbidden and a malformed message with 4400
/// (async-graphql sends 1002 for both), and a
/// request error is one `error` message, not `next` followed by `complete`.
fn conform(message: Message, state: &Mutex<Conformance>) -> Option<Message> {
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    match message {
        Message::Text(text) => {
            let Ok(mut value) = serde_json::from_str::<serde_json::Value>(&text) else {
                return Some(Message::Text(text));
            };
            let id = value.get("id").and_then(|v| v.as_str()).map(str::to_owned);
            match (value.get("type").and_then(|v| v.as_str()), id) {
                (Some("connection_ack"), _) => state.acked = true,
                (Some("next"), Some(id)) if value.get("payload").is_some_and(is_request_error) => {
                    let errors = value["payload"]["errors"].take();
                    state.errored.insert(id.clone());
                    let out = serde_json::json!({"id": id, "type": "error", "payload": errors});
                    return Some(Message::Text(out.to_string().into()));
                }
                (Some("complete"), Some(id)) if state.errored.remove(&id) => return None,
                _ => {}
            }
            Some(Message::Text(text))
        }
        Message::Close(Some(frame)) if frame.code == 1002 => {
            Some(Message::Close(Some(CloseFrame {
                code: state.init_refused.unwrap_or(4400),
                reason: frame.reason,
            })))
        }
        other => Some(other),
    }
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
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            // The socket lives on after the upgrade request's span: give it its own.
            let span = tracing::info_span!(
                "websocket",
                instance = %state.app.events.origin(),
                request.id = %meta.request_id
            );
            let app = state.app.clone();
            let live = GaugeGuard::new(app.clone(), "cloudbase_websocket_connections");
            let env = state.env;
            let (sink, stream) = socket.split();
            let conformance = Arc::new(Mutex::new(Conformance::default()));
            let refusals = Arc::clone(&conformance);
            let refuse = move |code: u16, error: async_graphql::Error| {
                refusals
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .init_refused = Some(code);
                Err(error)
            };
            let sink = sink.with_flat_map(move |message: Message| {
                let out = if transport_ws {
                    conform(message, &conformance)
                } else {
                    Some(message)
                };
                futures_util::stream::iter(out.map(Ok::<_, axum::Error>))
            });
            GraphQLWebSocket::new_with_pair(sink, stream, state.schema.clone(), protocol)
                .on_connection_init(move |payload| async move {
                    let token = credential(&payload);
                    let auth = match auth::authenticate(&app, token.as_deref()).await {
                        Ok(auth) => auth,
                        Err(e) => return refuse(4500, async_graphql::Error::new(e.to_string())),
                    };
                    if let Auth::Rejected(why) = &auth {
                        return refuse(4403, async_graphql::Error::new(why.clone()));
                    }
                    let admin = matches!(&auth, Auth::User(v) if v.is_admin());
                    let mut data = Data::default();
                    data.insert(auth);
                    data.insert(meta);
                    if env == Environment::Prod && !admin {
                        data.insert(IntrospectionDenied);
                    }
                    Ok(data)
                })
                .serve()
                .map(move |()| drop(live))
                .instrument(span)
        })
}
