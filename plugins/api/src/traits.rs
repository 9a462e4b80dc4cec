//! The safe traits a plugin implements. [`crate::export_plugin!`] turns an implementation into
//! the C ABI.

use crate::messages::{
    ChatRequest, ChatResponse, Delivery, DeliveryReport, HttpRequest, HttpResponse, Manifest,
    ModelInfo, Notification, PluginConfig, PluginError, SseEvent, StreamEvent,
};

/// An AI provider. HTTP providers implement `build_request`, `parse_response` and
/// `parse_stream_event` (the host does the I/O); local ones implement `complete` and `stream`.
/// The host may call one instance from several threads at once.
pub trait Provider: Send + Sync + Sized + 'static {
    /// The plugin's name; must equal `manifest().name`.
    const NAME: &'static str;

    /// Describes the plugin.
    fn manifest() -> Manifest;

    /// Builds an instance from validated settings and the secrets that are set.
    fn create(config: PluginConfig) -> Result<Self, PluginError>;

    /// The models this instance serves.
    fn models(&self) -> Vec<ModelInfo>;

    /// HTTP transport: the upstream request for `request` (streamed if `request.stream`).
    fn build_request(&self, request: &ChatRequest) -> Result<HttpRequest, PluginError> {
        let _ = request;
        Err(PluginError::unsupported("chat.build_request"))
    }

    /// HTTP transport: turns a whole upstream response (any status) into a completion or an error.
    fn parse_response(&self, response: &HttpResponse) -> Result<ChatResponse, PluginError> {
        let _ = response;
        Err(PluginError::unsupported("chat.parse_response"))
    }

    /// HTTP transport: turns one server-sent event into zero or more stream events.
    fn parse_stream_event(&self, event: &SseEvent) -> Result<Vec<StreamEvent>, PluginError> {
        let _ = event;
        Err(PluginError::unsupported("chat.parse_stream_event"))
    }

    /// Local transport: answers in-process.
    fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, PluginError> {
        let _ = request;
        Err(PluginError::unsupported("chat.complete"))
    }

    /// Local transport: streams an answer, calling `emit` per event; stop when it returns `false`.
    fn stream(
        &self,
        request: &ChatRequest,
        emit: &mut dyn FnMut(StreamEvent) -> bool,
    ) -> Result<(), PluginError> {
        let _ = (request, emit);
        Err(PluginError::unsupported("chat.stream"))
    }
}

/// A notification channel.
pub trait Notifier: Send + Sync + Sized + 'static {
    /// The plugin's name; must equal `manifest().name`.
    const NAME: &'static str;

    /// Describes the plugin.
    fn manifest() -> Manifest;

    /// Builds an instance from validated settings and the secrets that are set.
    fn create(config: PluginConfig) -> Result<Self, PluginError>;

    /// What to send for `notification`.
    fn build(&self, notification: &Notification) -> Result<Delivery, PluginError>;

    /// Judges the channel's answer to an HTTP delivery. The default accepts any 2xx.
    fn parse_response(&self, response: &HttpResponse) -> DeliveryReport {
        DeliveryReport {
            ok: (200..300).contains(&response.status),
            detail: format!("HTTP {}", response.status),
        }
    }
}
