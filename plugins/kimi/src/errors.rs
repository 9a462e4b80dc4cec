//! Moonshot's error bodies, `{"error": {"type": .., "message": ..}}`, turned into plugin errors
//! by their `type` first and their HTTP status second. The message keeps Moonshot's `type`, so
//! an operator reading a failed call sees exactly what Moonshot said.
//!
//! - `exceeded_current_quota_error` (429: balance used up, account suspended) is `billing`:
//!   waiting does not help, so the host never retries it;
//! - `invalid_request_error` and `content_filter` (400), or any 400, 413 or 422, are `bad_input`:
//!   the caller must change the request;
//! - `resource_not_found_error` (404) is `upstream`: the model id was already checked against the
//!   instance's list, so it means this API key may not use the model, or it was retired;
//! - `rate_limit_reached_error` and `engine_overloaded_error` (429), auth and permission errors
//!   (401, 403) and server errors (5xx) are `upstream`; the host retries the 429s and 5xx.

use cloudbase_plugin_api::{ErrorCode, PluginError};
use serde_json::Value;

/// How much of a non-JSON error body ends up in a message, in characters.
const RAW_BODY_LIMIT: usize = 500;

/// The error for a non-2xx answer with `status` and `body`.
pub fn http_error(status: u16, body: &str) -> PluginError {
    let parsed = serde_json::from_str::<Value>(body).ok();
    let (kind, message) = parsed.as_ref().map(type_and_message).unwrap_or_default();
    let message = message.unwrap_or_else(|| match body.trim() {
        "" => "(empty body)".to_owned(),
        raw => raw.chars().take(RAW_BODY_LIMIT).collect(),
    });
    let with_status = match kind {
        Some(kind) => format!("HTTP {status} ({kind}): {message}"),
        None => format!("HTTP {status}: {message}"),
    };
    match (kind, status) {
        (Some("exceeded_current_quota_error"), _) => {
            PluginError::new(ErrorCode::Billing, with_status)
        }
        (Some("resource_not_found_error"), _) | (None, 404) => PluginError::upstream(format!(
            "{with_status} (the model was retired, or this API key may not use it)"
        )),
        (Some("invalid_request_error" | "content_filter"), _) | (_, 400 | 413 | 422) => {
            let message = match kind {
                Some(kind) => format!("{message} ({kind})"),
                None => message,
            };
            PluginError::new(ErrorCode::BadInput, message)
        }
        _ => PluginError::upstream(with_status),
    }
}

/// The error carried by a streamed chunk that has a non-null `error`, if `chunk` has one.
pub fn stream_error(chunk: &Value) -> Option<PluginError> {
    if chunk.get("error").is_none_or(Value::is_null) {
        return None;
    }
    let (kind, message) = type_and_message(chunk);
    let message = message.unwrap_or_else(|| chunk["error"].to_string());
    Some(match kind {
        Some(kind @ "exceeded_current_quota_error") => {
            PluginError::new(ErrorCode::Billing, format!("({kind}): {message}"))
        }
        Some(kind) => PluginError::upstream(format!("({kind}): {message}")),
        None => PluginError::upstream(message),
    })
}

/// `error.type` and `error.message` of an error body (`error` may also be a bare string).
fn type_and_message(v: &Value) -> (Option<&str>, Option<String>) {
    let error = &v["error"];
    let kind = error["type"].as_str().filter(|k| !k.is_empty());
    let message = match error {
        Value::String(s) => Some(s.as_str()),
        Value::Object(e) => e.get("message").and_then(Value::as_str),
        _ => None,
    };
    (kind, message.filter(|m| !m.is_empty()).map(str::to_owned))
}
