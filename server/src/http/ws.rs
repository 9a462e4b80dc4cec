//! `/graphql/ws`: subscriptions over WebSocket, in both `graphql-transport-ws` and the legacy
//! `graphql-ws` protocol. Credentials go in the `connection_init` payload
//! (`{"Authorization": "Bearer <token>"}`); a bad token closes the socket with the protocol's code.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_graphql::Data;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::Extension;
use axum::extract::ws::{CloseFrame, Message, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use cloudbase_schema::graphql::errors::IntrospectionDenied;
use cloudbase_schema::services::{Auth, RequestMeta, auth};
use futures_util::{SinkExt, StreamExt};

use super::{HttpState, RequestId, client_ip};
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

/// A rejected `connection_init` closes the socket with 4403 Forbidden, the code
/// `graphql-transport-ws` gives for it (async-graphql sends a generic 1002).
fn forbid_rejected_init(message: Message, acked: &AtomicBool) -> Message {
    match message {
        Message::Text(text)
            if !acked.load(Ordering::Relaxed) && text.contains("\"connection_ack\"") =>
        {
            acked.store(true, Ordering::Relaxed);
            Message::Text(text)
        }
        Message::Close(Some(frame)) if frame.code == 1002 && !acked.load(Ordering::Relaxed) => {
            Message::Close(Some(CloseFrame {
                code: 4403,
                reason: frame.reason,
            }))
        }
        other => other,
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
        client_ip: Some(client_ip(&headers, peer, state.trust_forwarded_for)),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(512).collect()),
    };
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            let app = state.app.clone();
            let env = state.env;
            let (sink, stream) = socket.split();
            let acked = Arc::new(AtomicBool::new(false));
            let sink = sink.with(move |message: Message| {
                let acked = Arc::clone(&acked);
                async move { Ok::<_, axum::Error>(forbid_rejected_init(message, &acked)) }
            });
            GraphQLWebSocket::new_with_pair(sink, stream, state.schema.clone(), protocol)
                .on_connection_init(move |payload| async move {
                    let token = credential(&payload);
                    let auth = auth::authenticate(&app, token.as_deref())
                        .await
                        .map_err(|e| async_graphql::Error::new(e.to_string()))?;
                    if let Auth::Rejected(why) = &auth {
                        return Err(async_graphql::Error::new(why.clone()));
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
        })
}
