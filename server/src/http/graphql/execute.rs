//! Running one GraphQL request: the viewer resolved once, introspection as the environment and
//! viewer allow, the request timeout, and the response's status, headers and body.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use async_graphql::{ServerError, Value, Variables};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cloudbase_schema::error::Code;
use cloudbase_schema::graphql::errors::IntrospectionDenied;
use cloudbase_schema::services::{Auth, auth};
use serde::Serialize;

use super::request::Params;
use crate::config::Environment;
use crate::http::error::{MediaType, json_error};
use crate::http::{HttpState, RequestId};

/// The body of a GraphQL response: `data` is left out entirely for request errors.
#[derive(Serialize)]
struct Body<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Value>,
    #[serde(skip_serializing_if = "<[ServerError]>::is_empty")]
    errors: &'a [ServerError],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    extensions: &'a BTreeMap<String, Value>,
}

/// Runs `params` for the request's viewer, under `http.request_timeout_secs`, and answers in `media`.
pub(super) async fn execute(
    state: &HttpState,
    headers: &HeaderMap,
    request_id: &RequestId,
    peer: SocketAddr,
    media: MediaType,
    params: Params,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let meta = super::super::request_meta(state, headers, peer, request_id);
    let auth = match auth::authenticate(&state.app, authorization, meta.client_ip.as_deref()).await
    {
        Ok(auth) => auth,
        Err(e) => {
            let (status, message) = match e.code() {
                Code::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
                _ => {
                    tracing::error!(request.id = %request_id.0, error = %e, "authentication failed");
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!(
                            "internal error; quote request id {} when reporting it",
                            request_id.0
                        ),
                    )
                }
            };
            return json_error(status, media, e.code().as_str(), &message);
        }
    };
    let introspection =
        state.env == Environment::Dev || matches!(&auth, Auth::User(v) if v.is_admin());
    let mut request = async_graphql::Request::new(params.query)
        .variables(Variables::from_json(serde_json::Value::Object(
            params.variables.unwrap_or_default(),
        )))
        .data(auth)
        .data(meta);
    if let Some(name) = params.operation_name {
        request = request.operation_name(name);
    }
    if !introspection {
        request = request.disable_introspection().data(IntrospectionDenied);
    }
    let Ok(response) =
        tokio::time::timeout(state.request_timeout, state.schema.execute(request)).await
    else {
        return json_error(
            StatusCode::GATEWAY_TIMEOUT,
            media,
            "TIMEOUT",
            &format!(
                "the request ran longer than {} s",
                state.request_timeout.as_secs()
            ),
        );
    };
    // Errors that are not tied to a field (parse, validation, unknown operation) with no data are
    // request errors: execution never started.
    let request_error = response.data == Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    let body = Body {
        data: (!request_error).then_some(&response.data),
        errors: &response.errors,
        extensions: &response.extensions,
    };
    // An operation refused as a whole because the server is full is a 503 with `Retry-After`,
    // so that load balancers and clients back off.
    let retry_after = (response.data == Value::Null)
        .then(|| unavailable_retry_after(&response.errors))
        .flatten();
    let status = if retry_after.is_some() {
        StatusCode::SERVICE_UNAVAILABLE
    } else if request_error && media == MediaType::GraphqlResponse {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    match serde_json::to_vec(&body) {
        Ok(bytes) => {
            let mut http = (status, bytes).into_response();
            http.headers_mut()
                .insert(header::CONTENT_TYPE, media.header_value());
            if let Some(secs) = retry_after {
                http.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            http
        }
        Err(e) => {
            tracing::error!(request.id = %request_id.0, error = %e, "serializing a response failed");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                media,
                "INTERNAL",
                "internal error",
            )
        }
    }
}

/// The `Retry-After` seconds for a response refused because the server is full: an
/// `UNAVAILABLE` error that says when to come back (`retryAfterMs`, rounded up).
fn unavailable_retry_after(errors: &[ServerError]) -> Option<u64> {
    errors.iter().find_map(|error| {
        let extensions = error.extensions.as_ref()?;
        match extensions.get("code") {
            Some(Value::String(code)) if code == Code::Unavailable.as_str() => {}
            _ => return None,
        }
        match extensions.get("retryAfterMs") {
            Some(Value::Number(ms)) => Some(ms.as_u64()?.div_ceil(1000).max(1)),
            _ => None,
        }
    })
}
