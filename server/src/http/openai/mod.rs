//! The OpenAI-compatible door, so existing SDKs and apps use the gateway unchanged:
//! `POST /v1/chat/completions` (plain, or streamed as server-sent events) and `GET /v1/models`,
//! authenticated by an API key (`Authorization: Bearer cb-…`) or an access token.
//!
//! It is a second door onto the same chat flow as GraphQL (`services::chat`): admission,
//! reservations, rate limits, the `PENDING` record, fallbacks, cache, pricing, settlement, events
//! and metrics all apply, with no copy of the flow. A client that disconnects mid-stream drops the
//! stream, which cancels the upstream call and records it `CANCELLED`.
//!
//! - [`request`]: the body, field by field; what the gateway cannot honour is a 400.
//! - [`reply`]: completions, chunks and the model list in OpenAI's shapes.
//! - [`error`]: errors in OpenAI's shape with the status each SDK expects.

pub mod error;
pub mod reply;
pub mod request;

use std::net::SocketAddr;

use axum::body::Body as RequestBody;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cloudbase_schema::services::chat::{self, ChatChunk};
use cloudbase_schema::services::{Auth, Viewer, auth, plugins};
use futures_util::StreamExt;

use self::error::ApiError;
use super::graphql::request::{BodyError, read_whole};
use super::{HttpState, RequestId, request_meta};

/// The caller, or the 401 to send.
async fn viewer(
    state: &HttpState,
    headers: &HeaderMap,
    client_ip: &str,
    request_id: &str,
) -> Result<Viewer, ApiError> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match auth::authenticate(&state.app, authorization, Some(client_ip)).await {
        Ok(Auth::User(viewer)) => match viewer.require_nothing_due() {
            Ok(_) => Ok(viewer),
            Err(e) => Err(ApiError::from_service(&e, request_id)),
        },
        Ok(Auth::Anonymous) => Err(ApiError::unauthenticated(
            "You didn't provide an API key. Send `Authorization: Bearer cb-…`.",
        )),
        Ok(Auth::Rejected(why)) => Err(ApiError::unauthenticated(why)),
        Err(e) => Err(ApiError::from_service(&e, request_id)),
    }
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(state): State<HttpState>,
    Extension(request_id): Extension<RequestId>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: RequestBody,
) -> Response {
    let meta = request_meta(&state, &headers, peer, &request_id);
    let client_ip = meta.client_ip.clone().unwrap_or_default();
    let viewer = match viewer(&state, &headers, &client_ip, &request_id.0).await {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let bytes = match read_whole(&state, body).await {
        Ok(b) => b,
        Err(e) => {
            let status = match e {
                BodyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                BodyError::Unreadable => StatusCode::BAD_REQUEST,
                BodyError::TooSlow(_) => StatusCode::REQUEST_TIMEOUT,
            };
            return ApiError::body(status, e.to_string()).into_response();
        }
    };
    let mut completion = match request::parse(&bytes) {
        Ok(c) => c,
        Err(e) => return ApiError::invalid(e.param, e.message).into_response(),
    };
    let (provider, model) = match chat::resolve_model(&state.app, &completion.model) {
        Ok(target) => target,
        Err(cloudbase_schema::Error::NotFound(_)) => {
            return ApiError::unknown_model(&completion.model).into_response();
        }
        Err(e) => return ApiError::from_service(&e, &request_id.0).into_response(),
    };
    completion.input.provider = Some(provider);
    completion.input.model = Some(model);
    if !completion.stream {
        return match chat::chat(&state.app, &viewer, &meta, completion.input).await {
            Ok(outcome) => {
                let mut response = (
                    [(header::CONTENT_TYPE, "application/json")],
                    reply::completion(&completion.model, &outcome),
                )
                    .into_response();
                let headers = response.headers_mut();
                insert(headers, "x-cloudbase-call-id", &outcome.call.id);
                insert(
                    headers,
                    "x-cloudbase-cost-micros",
                    &outcome.call.cost_micros.to_string(),
                );
                response
            }
            Err(e) => ApiError::from_service(&e, &request_id.0).into_response(),
        };
    }
    let mut stream =
        match chat::chat_stream(state.app.clone(), &viewer, &meta, completion.input).await {
            Ok(s) => s,
            Err(e) => return ApiError::from_service(&e, &request_id.0).into_response(),
        };
    // The first item names the call (for the header) and, when the upstream failed before any
    // output, is the error: still a plain status then, not a stream.
    let first = match stream.next().await {
        Some(Ok(item)) => item,
        Some(Err(e)) => return ApiError::from_service(&e, &request_id.0).into_response(),
        None => {
            let e = cloudbase_schema::Error::Internal(
                "a chat stream ended before its first item".into(),
            );
            return ApiError::from_service(&e, &request_id.0).into_response();
        }
    };
    let (call_id, started) = match &first {
        ChatChunk::Delta { call_id, .. } => (call_id.clone(), chrono::Utc::now().timestamp()),
        ChatChunk::Done(outcome) => (outcome.call.id.clone(), reply::created(&outcome.call)),
    };
    let frame = reply::Frame::new(
        &call_id,
        started,
        &completion.model,
        completion.include_usage,
        &request_id.0,
    );
    let opening =
        futures_util::stream::iter([Ok::<Event, std::convert::Infallible>(frame.opening())]);
    let head = futures_util::stream::iter(frame.events(Ok(first)));
    let rest = stream.flat_map(move |item| futures_util::stream::iter(frame.events(item)));
    let mut response = Sse::new(opening.chain(head).chain(rest)).into_response();
    insert(response.headers_mut(), "x-cloudbase-call-id", &call_id);
    response
}

/// The models the caller (and its key) may call, or the error to send.
async fn visible_models(
    state: &HttpState,
    headers: &HeaderMap,
    peer: SocketAddr,
    request_id: &RequestId,
) -> Result<Vec<cloudbase_schema::ports::ModelRow>, ApiError> {
    let meta = request_meta(state, headers, peer, request_id);
    let client_ip = meta.client_ip.unwrap_or_default();
    let viewer = viewer(state, headers, &client_ip, &request_id.0).await?;
    plugins::models(&state.app, &viewer).map_err(|e| ApiError::from_service(&e, &request_id.0))
}

/// `GET /v1/models`: the models the caller (and its key) may call.
pub async fn models(
    State(state): State<HttpState>,
    Extension(request_id): Extension<RequestId>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    match visible_models(&state, &headers, peer, &request_id).await {
        Ok(rows) => Json(serde_json::json!({
            "object": "list",
            "data": rows.iter().map(|m| reply::model(&m.provider, &m.info.id)).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /v1/models/{provider/model}`: one model the caller may call.
pub async fn model(
    State(state): State<HttpState>,
    Extension(request_id): Extension<RequestId>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let found = visible_models(&state, &headers, peer, &request_id)
        .await
        .and_then(|rows| {
            rows.iter()
                .find(|m| format!("{}/{}", m.provider, m.info.id) == name)
                .map(|m| reply::model(&m.provider, &m.info.id))
                .ok_or_else(|| ApiError::unknown_model(&name))
        });
    match found {
        Ok(model) => Json(model).into_response(),
        Err(e) => e.into_response(),
    }
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}
