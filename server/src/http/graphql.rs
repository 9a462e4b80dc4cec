//! `/graphql` over HTTP, per the GraphQL-over-HTTP spec (checked by the `graphql-http` audit).
//!
//! - `POST` takes `application/json` only (415 otherwise); `GET` runs queries only (405 for a
//!   mutation). Parameters of the wrong type get 400 whatever the `Accept`.
//! - The response type follows `Accept`: `application/graphql-response+json` when asked for, else
//!   `application/json`. Under the former, request errors (parse, validation) get 400 and no `data`.
//! - Each request resolves its viewer once, before execution, and runs under a timeout.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql::{ServerError, Value, Variables};
use axum::Extension;
use axum::body::{Body as RequestBody, Bytes};
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cloudbase_schema::error::Code;
use cloudbase_schema::graphql::errors::IntrospectionDenied;
use cloudbase_schema::graphql::nesting;
use cloudbase_schema::services::{Auth, RequestMeta, auth};
use serde::Serialize;

use super::error::{MediaType, json_error};
use super::{HttpState, RequestId};
use crate::config::Environment;

/// The parameters of one GraphQL request, from a JSON body or a query string.
struct Params {
    query: String,
    operation_name: Option<String>,
    variables: Option<serde_json::Map<String, serde_json::Value>>,
}

type Rejection = Box<Response>;

fn bad_request(media: MediaType, message: &str) -> Rejection {
    Box::new(json_error(
        StatusCode::BAD_REQUEST,
        media,
        "BAD_REQUEST",
        message,
    ))
}

/// Picks the response media type from `Accept`: the first acceptable range wins; none means JSON.
fn negotiate(headers: &HeaderMap) -> Result<MediaType, Rejection> {
    let Some(accept) = headers.get(header::ACCEPT) else {
        return Ok(MediaType::Json);
    };
    let accept = accept.to_str().unwrap_or_default();
    if accept.trim().is_empty() {
        return Ok(MediaType::Json);
    }
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        if refused {
            continue;
        }
        match media.as_str() {
            "application/graphql-response+json" => return Ok(MediaType::GraphqlResponse),
            "application/json" | "application/*" | "*/*" => return Ok(MediaType::Json),
            _ => {}
        }
    }
    Err(Box::new(json_error(
        StatusCode::NOT_ACCEPTABLE,
        MediaType::Json,
        "NOT_ACCEPTABLE",
        "responses are application/graphql-response+json or application/json",
    )))
}

/// `POST` must be `application/json`, in UTF-8 if a charset is given.
fn check_content_type(headers: &HeaderMap, media: MediaType) -> Result<(), Rejection> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    let charset_ok = parts.all(|p| match p.trim().split_once('=') {
        Some((k, v)) if k.trim().eq_ignore_ascii_case("charset") => {
            let v = v.trim().trim_matches('"');
            v.eq_ignore_ascii_case("utf-8") || v.eq_ignore_ascii_case("utf8")
        }
        _ => true,
    });
    if essence.eq_ignore_ascii_case("application/json") && charset_ok {
        return Ok(());
    }
    Err(Box::new(json_error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        media,
        "UNSUPPORTED_MEDIA_TYPE",
        "POST /graphql takes Content-Type: application/json (UTF-8)",
    )))
}

fn string_param(
    name: &str,
    value: Option<serde_json::Value>,
    media: MediaType,
) -> Result<Option<String>, Rejection> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad_request(media, &format!("`{name}` must be a string"))),
    }
}

fn object_param(
    name: &str,
    value: Option<serde_json::Value>,
    media: MediaType,
) -> Result<Option<serde_json::Map<String, serde_json::Value>>, Rejection> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err(bad_request(media, &format!("`{name}` must be an object"))),
    }
}

/// Checks the four parameters; `query` is required, and must not nest deeper than `max_nesting`
/// (checked on the text: the parser would recurse on it first, also for a GET's
/// mutation check).
fn params_from(
    mut fields: serde_json::Map<String, serde_json::Value>,
    media: MediaType,
    max_nesting: usize,
) -> Result<Params, Rejection> {
    let query = string_param("query", fields.remove("query"), media)?
        .ok_or_else(|| bad_request(media, "`query` is required"))?;
    if let Err(e) = nesting::check(&query, max_nesting) {
        return Err(Box::new(json_error(
            StatusCode::BAD_REQUEST,
            media,
            "GRAPHQL_PARSE_FAILED",
            &e.to_string(),
        )));
    }
    let operation_name = string_param("operationName", fields.remove("operationName"), media)?;
    let variables = object_param("variables", fields.remove("variables"), media)?;
    object_param("extensions", fields.remove("extensions"), media)?;
    Ok(Params {
        query,
        operation_name,
        variables,
    })
}

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

/// Whether the operation a GET would run is a mutation (or a subscription). A document that does
/// not parse is left to execution, which reports the parse error properly.
fn is_mutation(params: &Params) -> bool {
    let Ok(doc) = async_graphql::parser::parse_query(&params.query) else {
        return false;
    };
    let ty = match (&doc.operations, params.operation_name.as_deref()) {
        (DocumentOperations::Single(op), _) => Some(op.node.ty),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| op.node.ty),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|op| op.node.ty)
        }
        _ => None,
    };
    matches!(
        ty,
        Some(OperationType::Mutation | OperationType::Subscription)
    )
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
        check_content_type(&headers, media)?;
        let body = read_body(&state, body, media).await?;
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

/// Reads a request body whole: 408 when the client takes longer than the body deadline (a slow
/// client holds nothing but its own connection), 413 past the size limit.
async fn read_body(
    state: &HttpState,
    body: RequestBody,
    media: MediaType,
) -> Result<Bytes, Rejection> {
    let read = axum::body::to_bytes(body, state.max_body_bytes);
    match tokio::time::timeout(state.body_read_timeout, read).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => {
            let too_large =
                std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| {
                    e.source()
                })
                .any(|e| e.is::<http_body_util::LengthLimitError>());
            Err(if too_large {
                Box::new(json_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    media,
                    "PAYLOAD_TOO_LARGE",
                    "the request body is larger than http.max_body_bytes",
                ))
            } else {
                bad_request(media, "the request body could not be read")
            })
        }
        Err(_) => Err(Box::new(json_error(
            StatusCode::REQUEST_TIMEOUT,
            media,
            "REQUEST_TIMEOUT",
            &format!(
                "the request body took longer than {} s to arrive",
                state.body_read_timeout.as_secs()
            ),
        ))),
    }
}

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

async fn execute(
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
    let auth = match auth::authenticate(&state.app, authorization).await {
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
    let meta = RequestMeta {
        request_id: request_id.0.clone(),
        client_ip: Some(state.client_address.of(headers, peer).to_string()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(512).collect()),
    };
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
