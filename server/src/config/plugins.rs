//! `[plugins.<instance>]`: one configured instance of a plugin, and how long the host waits on
//! the upstream services it talks to.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `[plugins.<instance>]`: one configured instance of a plugin.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginInstanceConfig {
    /// The plugin's name (from its manifest), e.g. `kimi`.
    pub plugin: String,
    /// `false` lists the instance as `DISABLED` without creating it.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The plugin's own settings, validated against its JSON Schema.
    #[serde(default = "empty_object")]
    pub settings: serde_json::Value,
    /// Secret name → the environment variable holding it, e.g. `api_key = "MOONSHOT_API_KEY"`.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    /// Upstream request timeouts (providers and HTTP notifiers).
    #[serde(default)]
    pub timeouts: UpstreamTimeouts,
    /// Extra attempts after a connect failure, a timeout before the first byte, a 429 or a 5xx
    /// (never once a stream has started).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// First backoff between attempts, doubled each time (at most 5 s; `Retry-After` wins, up to 10 s).
    #[serde(default = "default_backoff_ms")]
    pub retry_backoff_ms: u64,
    /// Opt-in exact-match response cache for this provider: entries live this long, per user.
    #[serde(default)]
    pub cache_ttl_secs: Option<u64>,
    /// Where the plugin's code runs: in the server (`none`, the default) or in a runner process
    /// of its own (`process`), for code you do not trust.
    #[serde(default)]
    pub isolation: Isolation,
}

/// Where an instance's plugin code runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// In the server process: the fastest; a crash or abort in the plugin takes the server down.
    #[default]
    None,
    /// In a runner process per instance: a crash, an abort or a hang takes only the runner,
    /// which is restarted with backoff.
    Process,
}

impl PluginInstanceConfig {
    /// An enabled instance of `plugin` with empty settings, no secrets, and default timeouts,
    /// retries and no cache.
    pub fn new(plugin: impl Into<String>) -> Self {
        Self {
            plugin: plugin.into(),
            enabled: true,
            settings: empty_object(),
            secrets: BTreeMap::new(),
            timeouts: UpstreamTimeouts::default(),
            retries: default_retries(),
            retry_backoff_ms: default_backoff_ms(),
            cache_ttl_secs: None,
            isolation: Isolation::None,
        }
    }
}

fn default_retries() -> u32 {
    2
}

fn default_backoff_ms() -> u64 {
    200
}

/// How long the host waits on an upstream service.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamTimeouts {
    /// TCP and TLS connect, in milliseconds.
    pub connect_ms: u64,
    /// Until the response headers (the first byte), in milliseconds.
    pub first_byte_ms: u64,
    /// The whole request, body included, in milliseconds.
    pub total_ms: u64,
}

impl Default for UpstreamTimeouts {
    fn default() -> Self {
        Self {
            connect_ms: 10_000,
            first_byte_ms: 60_000,
            total_ms: 300_000,
        }
    }
}

fn yes() -> bool {
    true
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}
