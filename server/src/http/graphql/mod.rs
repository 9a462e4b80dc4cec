//! `/graphql` over HTTP, per the GraphQL-over-HTTP spec (checked by the `graphql-http` audit).
//!
//! - `POST` takes `application/json` only (415 otherwise); `GET` runs queries only (405 for a
//!   mutation). Parameters of the wrong type get 400 whatever the `Accept`.
//! - The response type follows `Accept`: `application/graphql-response+json` when asked for, else
//!   `application/json`. Under the former, request errors (parse, validation) get 400 and no `data`.
//! - Each request resolves its viewer once, before execution, and runs under a timeout.
//!
//! - [`request`]: content negotiation, the request's parameters, the body and its limits.
//! - [`execute`]: authenticating, running under the timeout, and the response's status and body.

pub mod execute;
pub mod request;

use std::net::SocketAddr;

use axum::Extension;
use axum::body::Body as RequestBody;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

use self::execute::execute;
use self::request::{bad_request, is_mutation, negotiate, params_from};
use super::error::json_error;
use super::{HttpState, RequestId};

/// `GET /graphql?query=…&operationName=…&variables=<json>&extensions=<json>`
pub async fn get_handler(
    State(state): State<HttpState>,
    Extension(request_id): Extension<RequestId>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let outcome = async {
        let media = negotiate(&headers)?;
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
            .map_err(|_| bad_request(media, "the query string is not form-encoded"))?;
        let mut fields = serde_json::Map::new();
        for (key, value) in pairs {
            let value = match key.as_str() {
                "variables" | "extensions" => serde_json::from_str(&value).map_err(|_| {
                    bad_request(media, &format!("`{key}` must be a JSON-encoded object"))
                })?,
                _ => serde_json::Value::String(value),
            };
            fields.insert(key, value);
        }
        let params = params_from(fields, media, state.max_nesting)?;
        if is_mutation(&params) {
            let mut response = json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                media,
                "METHOD_NOT_ALLOWED",
                "mutations need POST",
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return Err(Box::new(response));
        }
        Ok((media, params))
    }
    .await;
    match outcome {
        Ok((media, params)) => execute(&state, &headers, &request_id, peer, media, params).await,
        Err(rejection) => *rejection,
    }
}

/// `POST /graphql` with a JSON body, read within `http.body_read_timeout_secs` and
/// `http.max_body_bytes`.
pub async fn post_handler(
    State(state): State<HttpState>,
    Extension(request_id): Extension<RequestId>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: RequestBody,
) -> Response {
    let outcome = async {
        let media = negotiate(&headers)?;
        request::check_content_type(&headers, media)?;
        let body = request::read_body(&state, body, media).await?;
        let value: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|_| bad_request(media, "the request body is not valid JSON"))?;
        let serde_json::Value::Object(fields) = value else {
            return Err(bad_request(
                media,
                "the request body must be a JSON object (batches are not supported)",
            ));
        };
        Ok((media, params_from(fields, media, state.max_nesting)?))
    }
    .await;
    match outcome {
        Ok((media, params)) => execute(&state, &headers, &request_id, peer, media, params).await,
        Err(rejection) => *rejection,
    }
}
