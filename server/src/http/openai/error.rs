//! Errors in OpenAI's shape (`{"error": {"message", "type", "param", "code"}}`) with the status
//! an OpenAI client expects, so each SDK raises its usual class (`AuthenticationError`,
//! `RateLimitError`, ...). Internal errors are logged once here and leave opaque, with the
//! request id.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cloudbase_schema::Error;
use cloudbase_schema::error::Code;
use serde_json::json;

/// One error response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    code: Option<&'static str>,
    param: Option<String>,
    message: String,
    retry_after_ms: Option<i64>,
}

impl ApiError {
    /// A 400 `invalid_request_error` about `param`.
    pub fn invalid(param: Option<String>, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            message,
        )
        .param(param)
    }

    /// A 401 for a missing, unknown, revoked or expired key.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            Some("invalid_api_key"),
            message,
        )
    }

    /// A 404 for a model nobody serves.
    pub fn unknown_model(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("model_not_found"),
            format!("The model `{name}` does not exist or you do not have access to it."),
        )
        .param(Some("model".into()))
    }

    /// A body that could not be read whole (too large, too slow, broken).
    pub fn body(status: StatusCode, message: String) -> Self {
        Self::new(status, "invalid_request_error", None, message)
    }

    fn new(
        status: StatusCode,
        kind: &'static str,
        code: Option<&'static str>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            code,
            param: None,
            message: message.into(),
            retry_after_ms: None,
        }
    }

    fn param(mut self, param: Option<String>) -> Self {
        self.param = param;
        self
    }

    /// The response for a service error; `request_id` goes into an internal error's message.
    pub fn from_service(error: &Error, request_id: &str) -> Self {
        let message = error.to_string();
        let retry = match error {
            Error::RateLimited { retry_after_ms, .. }
            | Error::Overloaded { retry_after_ms, .. } => Some(*retry_after_ms),
            _ => None,
        };
        let mut e = match error.code() {
            Code::Unauthenticated => Self::unauthenticated(message),
            Code::Forbidden => Self::new(
                StatusCode::FORBIDDEN,
                "permission_error",
                Some("model_not_allowed"),
                message,
            ),
            Code::MfaRequired => Self::new(
                StatusCode::FORBIDDEN,
                "permission_error",
                Some("mfa_required"),
                message,
            ),
            Code::PasswordChangeRequired => Self::new(
                StatusCode::FORBIDDEN,
                "permission_error",
                Some("password_change_required"),
                message,
            ),
            Code::NotFound => Self::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                None,
                message,
            ),
            Code::BadUserInput => {
                let param = match error {
                    Error::BadInput { field, .. } => field.map(openai_param),
                    _ => None,
                };
                Self::invalid(param, message)
            }
            Code::Conflict => {
                Self::new(StatusCode::CONFLICT, "invalid_request_error", None, message)
            }
            Code::BudgetExceeded => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "insufficient_quota",
                Some("insufficient_quota"),
                message,
            ),
            Code::RateLimited => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "requests",
                Some("rate_limit_exceeded"),
                message,
            ),
            Code::UpstreamFailed | Code::PluginFailed => Self::new(
                StatusCode::BAD_GATEWAY,
                "api_error",
                Some("upstream_error"),
                message,
            ),
            // 402, not 429 or 5xx: OpenAI's SDKs retry those, and this does not clear by waiting.
            Code::UpstreamBilling => Self::new(
                StatusCode::PAYMENT_REQUIRED,
                "api_error",
                Some("upstream_billing"),
                message,
            ),
            Code::Timeout => Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                "api_error",
                Some("upstream_timeout"),
                message,
            ),
            Code::Unavailable => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                Some("overloaded"),
                message,
            ),
            Code::Lagged | Code::Internal => {
                tracing::error!(request.id = %request_id, error = %error, "internal error on /v1");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "api_error",
                    Some("internal_error"),
                    format!("internal error; quote request id {request_id} when reporting it"),
                )
            }
        };
        e.retry_after_ms = retry;
        e
    }

    /// The JSON body, as a plain response or an SSE `data:` line carries it.
    pub fn body_json(&self) -> serde_json::Value {
        json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body_json())).into_response();
        if let Some(ms) = self.retry_after_ms {
            let secs = (ms.max(1) + 999) / 1000;
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

/// The OpenAI name of a chat input field (`input.maxTokens` → `max_tokens`).
fn openai_param(field: &str) -> String {
    let name = field.strip_prefix("input.").unwrap_or(field);
    match name {
        "maxTokens" => "max_tokens".into(),
        "topP" => "top_p".into(),
        "provider" => "model".into(),
        other => other.into(),
    }
}
