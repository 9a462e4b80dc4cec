//! The HTTP exchanges the host performs for a plugin: the request a plugin builds, the response
//! it gets back to parse, and one server-sent event of a streamed body.

use serde::{Deserialize, Serialize};

/// An HTTP request for the host to send. Header values may contain `${secret:NAME}`, which the
/// host replaces with the secret's value just before sending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Header name and value pairs.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Body text (usually JSON).
    #[serde(default)]
    pub body: Option<String>,
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header name and value pairs (names lower-case).
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub body: String,
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SseEvent {
    /// The `event:` field, if any.
    #[serde(default)]
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}
