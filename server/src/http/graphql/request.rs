//! The request side of `/graphql`: the response type from `Accept`, `Content-Type`, the four
//! parameters (from a JSON body or a query string), the body within its time and size limits,
//! and whether a GET would run a mutation.

use async_graphql::parser::types::OperationType;
use axum::body::{Body as RequestBody, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use cloudbase_schema::graphql::{nesting, running_operation};

use crate::http::HttpState;
use crate::http::error::{MediaType, json_error};

/// The parameters of one GraphQL request, from a JSON body or a query string.
pub(super) struct Params {
    /// The document.
    pub(super) query: String,
    /// The operation to run, when the document has several.
    pub(super) operation_name: Option<String>,
    /// The variables, as JSON.
    pub(super) variables: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A response that refuses the request before anything runs.
pub(super) type Rejection = Box<Response>;

pub(super) fn bad_request(media: MediaType, message: &str) -> Rejection {
    Box::new(json_error(
        StatusCode::BAD_REQUEST,
        media,
        "BAD_REQUEST",
        message,
    ))
}

/// Picks the response media type from `Accept`: the first acceptable range wins; none means JSON.
pub(super) fn negotiate(headers: &HeaderMap) -> Result<MediaType, Rejection> {
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
pub(super) fn check_content_type(headers: &HeaderMap, media: MediaType) -> Result<(), Rejection> {
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
pub(super) fn params_from(
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

/// Whether the operation a GET would run is a mutation (or a subscription). A document that does
/// not parse is left to execution, which reports the parse error properly.
pub(super) fn is_mutation(params: &Params) -> bool {
    let Ok(doc) = async_graphql::parser::parse_query(&params.query) else {
        return false;
    };
    let ty = running_operation(&doc, params.operation_name.as_deref()).map(|(_, op)| op.ty);
    matches!(
        ty,
        Some(OperationType::Mutation | OperationType::Subscription)
    )
}

/// Reads a request body whole: 408 when the client takes longer than the body deadline (a slow
/// client holds nothing but its own connection), 413 past the size limit.
pub(super) async fn read_body(
    state: &HttpState,
    body: RequestBody,
    media: MediaType,
) -> Result<Bytes, Rejection> {
    read_whole(state, body).await.map_err(|e| match e {
        BodyError::TooLarge => Box::new(json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            media,
            "PAYLOAD_TOO_LARGE",
            &e.to_string(),
        )),
        BodyError::Unreadable => bad_request(media, &e.to_string()),
        BodyError::TooSlow(_) => Box::new(json_error(
            StatusCode::REQUEST_TIMEOUT,
            media,
            "REQUEST_TIMEOUT",
            &e.to_string(),
        )),
    })
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Past `http.max_body_bytes`.
    #[error("the request body is larger than http.max_body_bytes")]
    TooLarge,
    /// The connection failed mid-body.
    #[error("the request body could not be read")]
    Unreadable,
    /// The client took longer than `http.body_read_timeout_secs`.
    #[error("the request body took longer than {0} s to arrive")]
    TooSlow(u64),
}

/// Reads a request body whole, within the size limit and the body deadline.
pub async fn read_whole(state: &HttpState, body: RequestBody) -> Result<Bytes, BodyError> {
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
                BodyError::TooLarge
            } else {
                BodyError::Unreadable
            })
        }
        Err(_) => Err(BodyError::TooSlow(state.body_read_timeout.as_secs())),
    }
}
