//! `/graphql/ws`: subscriptions over WebSocket, in both `graphql-transport-ws` and the legacy
//! `graphql-ws` protocol. Credentials go in the `connection_init` payload
//! (`{"Authorization": "Bearer <token>"}`); a bad token closes the socket with the protocol's code.
//!
//! async-graphql speaks the protocol; around it, this module keeps each socket within its limits
//! and its credential:
//! - the reader ([`reader`]) closes a socket that sends no `connection_init` in time (4408), reuses
//!   an operation id that is still running (4409), subscribes before it is acknowledged (4401) or
//!   sends a message larger than `http.max_body_bytes` (1009), and refuses operations past
//!   `http.ws_max_operations`;
//! - the credential is checked again for every operation (see
//!   `cloudbase_schema::graphql::socket_auth`), the socket closes with 4401 when its access token
//!   expires, and [`super::sockets`] closes it when the user's access changes on any instance;
//! - one writer task ([`writer`]) owns the socket's sending half and ends with the close frame
//!   asked for.
//!
//! - [`conformance`]: what async-graphql sends, followed and brought in line with the protocol.
//! - [`reader`]: the client's messages, judged against the socket's limits and deadlines.
//! - [`writer`]: the one task that sends, then closes with the code asked for.

pub mod conformance;
pub mod reader;
pub mod writer;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_graphql::Data;
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, WebSocketProtocols};
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::Extension;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use cloudbase_schema::graphql::socket_auth::SocketCredential;
use cloudbase_schema::metrics::GaugeGuard;
use cloudbase_schema::services::{Auth, RequestMeta, auth};
use futures_util::{SinkExt, StreamExt};
use tracing::Instrument as _;

use self::conformance::{Conformance, outgoing};
use self::reader::{Reader, SocketLimits};
use super::sockets::LiveSocket;
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

/// Read and write buffer of a socket (see `handler`).
const SOCKET_BUFFER_BYTES: usize = 4 * 1024;

/// Upgrades to a GraphQL WebSocket.
pub async fn handler(
    State(state): State<HttpState>,
    Extension(request_id): Extension<RequestId>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let meta = super::request_meta(&state, &headers, peer, &request_id);
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
    let client_ip = meta.client_ip.clone();
    let on_init = move |payload: serde_json::Value| async move {
        let authorization = credential(&payload);
        let auth =
            match auth::authenticate(&app, authorization.as_deref(), client_ip.as_deref()).await {
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
    tokio::join!(graphql, writer::write(socket_sink, queued, live, handed));
}
