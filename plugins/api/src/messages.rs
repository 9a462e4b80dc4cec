//! The JSON messages that cross the boundary, as serde types.
//!
//! Providers are sans-IO: the host asks them to build an [`HttpRequest`], sends it itself (with its
//! own timeouts, retries, secrets and cancellation), then asks them to parse the [`HttpResponse`]
//! or each [`SseEvent`] of a stream. Notifiers build a [`Delivery`] the host performs.
//!
//! The types live in private modules, one per concern, and are all re-exported here:
//!
//! - `manifest`: what a plugin declares ([`Manifest`]) and what an instance is created from
//!   ([`PluginConfig`], [`parse_settings`], and [`schema_lists_settings`] for a plugin's tests).
//! - `chat`: chat completions ([`ChatRequest`], [`ChatResponse`], [`StreamEvent`], [`Usage`]).
//! - `http`: the HTTP requests and responses the host performs for a plugin, and SSE events.
//! - `notify`: notifications and their delivery ([`Notification`], [`Delivery`]).
//! - `error`: [`PluginError`] and its [`ErrorCode`].

mod chat;
mod error;
mod http;
mod manifest;
mod notify;

pub use chat::{
    ChatMessage, ChatRequest, ChatResponse, ChatRole, ListPrice, ModelInfo, StreamEvent, Usage,
};
pub use error::{ErrorCode, PluginError};
pub use http::{HttpRequest, HttpResponse, JsonBodies, SseEvent};
pub use manifest::{
    CreateInput, HostOffers, Manifest, PluginConfig, PluginKind, SecretSpec, Transport,
    parse_settings, schema_lists_settings,
};
pub use notify::{
    Delivery, DeliveryReport, EmailMessage, Notification, Severity, SmtpTarget, SmtpTls,
};
