//! The plugin host as the services see it. The server implements [`PluginHost`] (loading
//! libraries, calling them off the async threads, doing their I/O); services and resolvers only
//! use this trait, so the dependency keeps pointing from `server` to `schema`.

use async_graphql::Enum;
use cloudbase_plugin_api::{ChatRequest, DeliveryReport, ModelInfo, Notification, StreamEvent};
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;

use crate::Error;

pub use crate::domain::PluginStatus;

/// What a plugin provides.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    /// Chat completions.
    AiProvider,
    /// Notification channel.
    Notifier,
}

/// One line of the plugin list: an instance, a loaded library with no instance, or a library
/// that failed to load.
#[derive(Debug, Clone)]
pub struct PluginRow {
    /// The plugin's name (the file name when the library could not be read).
    pub name: String,
    /// The instance name, when this row is an instance.
    pub instance: Option<String>,
    /// Known once the manifest was read.
    pub kind: Option<PluginKind>,
    /// The plugin's version.
    pub version: Option<String>,
    /// One line from the manifest.
    pub description: Option<String>,
    /// A mock or test double (never a real model or channel).
    pub mock: bool,
    /// Loaded, failed or disabled.
    pub status: PluginStatus,
    /// Why it failed or is disabled.
    pub reason: Option<String>,
    /// JSON Schema of the instance settings.
    pub config_schema: Option<serde_json::Value>,
    /// Names of the secrets it reads (never their values).
    pub secrets: Vec<String>,
    /// The library file.
    pub file: String,
}

/// What a reload did to one plugin library or instance.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginChangeKind {
    /// New, or serving again after it failed or was disabled.
    Loaded,
    /// Serving before and after, now on a new version or with new settings: new calls go to the
    /// new instance, calls in flight finish on the old one.
    Replaced,
    /// The new library or settings failed; `reason` says why. An instance that was serving
    /// keeps serving its old version.
    Failed,
    /// Disabled in config, or missing a required secret.
    Disabled,
    /// Gone from the config or the plugins folder: no new calls reach it (its status reads
    /// `DISABLED`).
    Removed,
}

/// One plugin library or instance that a reload changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginChange {
    /// The plugin's name.
    pub name: String,
    /// The instance, for an instance.
    pub instance: Option<String>,
    /// What happened.
    pub change: PluginChangeKind,
    /// Where it stands now (`LOADED` for an instance that kept its old version).
    pub status: PluginStatus,
    /// The version before the reload, if it was loaded.
    pub previous_version: Option<String>,
    /// The version serving (or listed) now.
    pub version: Option<String>,
    /// Why it failed or is disabled.
    pub reason: Option<String>,
}

/// What a reload of the plugins did.
#[derive(Debug, Clone)]
pub struct PluginReload {
    /// Every library and instance that changed, in the order of the plugin list.
    pub changes: Vec<PluginChange>,
    /// The plugin list after the reload.
    pub plugins: Vec<PluginRow>,
}

/// A model a user may call.
#[derive(Debug, Clone)]
pub struct ModelRow {
    /// The provider instance.
    pub provider: String,
    /// The plugin behind it.
    pub plugin: String,
    /// The model.
    pub info: ModelInfo,
    /// Served by a mock provider.
    pub mock: bool,
}

/// A completion and how long the upstream took.
#[derive(Debug, Clone)]
pub struct ProviderReply {
    /// The parsed completion.
    pub response: cloudbase_plugin_api::ChatResponse,
    /// Time spent waiting on the provider (network and plugin), in milliseconds.
    pub upstream_ms: u64,
    /// HTTP attempts made (retries included); 1 for local providers.
    pub http_attempts: u32,
}

/// Events of a streamed completion, as they arrive.
pub type EventStream = BoxStream<'static, Result<StreamEvent, Error>>;

/// A stream that has started (the provider accepted the request).
pub struct StreamStart {
    /// The events.
    pub events: EventStream,
    /// HTTP attempts made before the stream started (retries included).
    pub http_attempts: u32,
}

/// The plugin host.
pub trait PluginHost: Send + Sync + 'static {
    /// Every library and instance, for admins.
    fn plugins(&self) -> Vec<PluginRow>;

    /// Models of every loaded provider instance.
    fn models(&self) -> Vec<ModelRow>;

    /// One completion from provider instance `provider`.
    fn chat(
        &self,
        provider: &str,
        request: ChatRequest,
    ) -> BoxFuture<'_, Result<ProviderReply, Error>>;

    /// A streamed completion; the stream ends after the provider's last event. Dropping it
    /// cancels the upstream request.
    fn chat_stream(
        &self,
        provider: &str,
        request: ChatRequest,
    ) -> BoxFuture<'_, Result<StreamStart, Error>>;

    /// How long a provider instance's replies may be served from the response cache, if it
    /// opted in.
    fn cache_ttl(&self, provider: &str) -> Option<std::time::Duration>;

    /// Sends a notification through notifier instance `channel`, as carefully as `destination`
    /// calls for.
    fn notify(
        &self,
        channel: &str,
        notification: Notification,
        destination: Destination,
    ) -> BoxFuture<'_, Result<DeliveryReport, Error>>;

    /// Loads new and changed libraries beside the running ones, reads the instance settings
    /// again, and swaps them in: new calls go to the new versions, calls in flight finish on the
    /// old ones. A library or instance that fails keeps its old version serving and is reported
    /// in the result; a reload that cannot start at all (its config does not read) changes
    /// nothing and returns the error. Reloads run one at a time.
    fn reload(&self) -> BoxFuture<'_, Result<PluginReload, Error>>;
}

/// Who chose where a notification goes, which decides how the host may send it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// The channel's configured endpoint, or an address an admin gave: sent as configured.
    Operator,
    /// An address a user gave (their own webhook): redirects are not followed, and unless
    /// `[alerts] allow_private_targets` is on, every address the host connects to must be public.
    User,
}

/// What WeChat's `code2Session` says of a mini-program's login code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeChatIdentity {
    /// The user, for this mini-program.
    pub openid: String,
    /// The user across the developer's apps, when WeChat gives it.
    pub unionid: Option<String>,
}

/// WeChat's `code2Session` (`jscode2session`), called by the server with its app id and secret.
pub trait WeChat: Send + Sync + 'static {
    /// Trades a `wx.login` code for the user's identity. WeChat's refusals come back as clear
    /// errors: an invalid or used code `BAD_USER_INPUT` (40029, 40163), its rate limit
    /// `RATE_LIMITED` (45011), busy `UNAVAILABLE` (-1), anything else `UPSTREAM_FAILED`.
    fn code2session(&self, code: &str) -> BoxFuture<'_, Result<WeChatIdentity, Error>>;
}
