//! JSON error responses for failures outside GraphQL execution (bad HTTP, bad parameters).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A response type the client accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    /// `application/json`: GraphQL errors come with status 200.
    Json,
    /// `application/graphql-response+json`: request errors come with status 400.
    GraphqlResponse,
}

impl MediaType {
    /// The `Content-Type` value.
    pub fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            MediaType::Json => "application/json; charset=utf-8",
            MediaType::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
        })
    }
}

/// `{"errors":[{"message":…,"extensions":{"code":…}}]}` with a status.
pub fn json_error(status: StatusCode, media: MediaType, code: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code } }]
    });
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, media.header_value());
    response
}
