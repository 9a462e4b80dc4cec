//! The plugin host: loads every library in the plugins folder, creates the configured instances,
//! and serves them to the services through [`PluginHost`]. A bad library or instance is listed as
//! `FAILED` (or `DISABLED`) with its reason; the server keeps serving.
//!
//! - [`library`]: opening a library and checking symbol, ABI version, table size and panic flag.
//! - [`call`]: calls into a plugin on the blocking pool, under a deadline.
//! - [`isolated`]: plugins with `isolation = "process"`, each in a runner process restarted
//!   with backoff when it crashes, aborts or hangs.
//! - [`callee`]: one interface over an in-process instance and an isolated one.
//! - [`failure`]: why a plugin call failed, and the service error clients see for it.
//! - [`upstream`]: HTTP for sans-IO plugins: secrets, timeouts, server-sent events.
//! - [`user_http`]: the client for addresses users gave: no redirects, public addresses only.
//! - [`smtp`]: email delivery.
//! - [`instances`]: turning `[plugins.<instance>]` config into live instances.
//! - [`provider`]: a live provider instance: chat, streams, retries.
//! - [`notifier`]: a live notifier instance: building, sending and reading a delivery.

pub mod call;
pub mod callee;
pub mod failure;
pub mod instances;
pub mod isolated;
pub mod library;
pub mod notifier;
pub mod provider;
pub mod smtp;
pub mod upstream;
pub mod user_http;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use cloudbase_plugin_api::{ChatRequest, DeliveryReport, Notification};
use cloudbase_schema::Error;
use cloudbase_schema::ports::{
    Destination, ModelRow, PluginHost, PluginRow, PluginStatus, ProviderReply, StreamStart,
};
use futures_util::future::BoxFuture;

use self::notifier::Notifier;
use self::provider::Provider;
use crate::config::Config;

/// Everything the plugins folder and config produced.
#[derive(Default)]
pub struct Registry {
    /// `[alerts] allow_private_targets`: users' webhooks may reach this network.
    allow_private_targets: bool,
    rows: Vec<PluginRow>,
    providers: BTreeMap<String, Provider>,
    notifiers: BTreeMap<String, Notifier>,
}

impl Registry {
    /// No plugins at all (for CLI commands that do not serve).
    pub fn empty() -> Self {
        Self::default()
    }

    /// Scans `config.plugins_dir()` and creates every instance.
    pub async fn load(config: &Config) -> Self {
        let dir = config.plugins_dir();
        let deadline = Duration::from_millis(config.plugin_call_timeout_ms);
        let loaded = instances::load_libraries(&dir, deadline, config).await;
        instances::create_instances(config, loaded, deadline).await
    }

    fn provider(&self, name: &str) -> Result<&Provider, Error> {
        self.providers.get(name).ok_or_else(|| Error::BadInput {
            field: Some("input.provider"),
            message: format!("unknown provider `{name}`; see `models` for what you can call"),
        })
    }
}

impl PluginHost for Registry {
    fn plugins(&self) -> Vec<PluginRow> {
        let mut rows = self.rows.clone();
        for row in &mut rows {
            let Some(instance) = row.instance.as_deref() else {
                continue;
            };
            let callee = match (self.providers.get(instance), self.notifiers.get(instance)) {
                (Some(p), _) => &p.instance,
                (None, Some(n)) => &n.instance,
                (None, None) => continue,
            };
            // An isolated instance whose runner waits to restart is down until it is back.
            if let Some(why) = callee.down() {
                row.status = PluginStatus::Failed;
                row.reason = Some(why);
            }
        }
        rows
    }

    fn models(&self) -> Vec<ModelRow> {
        self.providers
            .values()
            .flat_map(|p| {
                p.models.iter().map(|info| ModelRow {
                    provider: p.name.clone(),
                    plugin: p.manifest.name.clone(),
                    info: info.clone(),
                    mock: p.manifest.mock,
                })
            })
            .collect()
    }

    fn chat(
        &self,
        provider: &str,
        request: ChatRequest,
    ) -> BoxFuture<'_, Result<ProviderReply, Error>> {
        let provider = self.provider(provider);
        Box::pin(async move { provider?.complete(request).await })
    }

    fn chat_stream(
        &self,
        provider: &str,
        request: ChatRequest,
    ) -> BoxFuture<'_, Result<StreamStart, Error>> {
        let provider = self.provider(provider);
        Box::pin(async move { provider?.stream(request).await })
    }

    fn cache_ttl(&self, provider: &str) -> Option<Duration> {
        self.providers.get(provider).and_then(|p| p.cache_ttl)
    }

    fn notify(
        &self,
        channel: &str,
        notification: Notification,
        destination: Destination,
    ) -> BoxFuture<'_, Result<DeliveryReport, Error>> {
        let notifier = self.notifiers.get(channel).ok_or_else(|| Error::BadInput {
            field: Some("channel"),
            message: format!("unknown notification channel `{channel}`"),
        });
        Box::pin(async move { notifier?.deliver(notification, destination).await })
    }
}

/// The file name of a library, for listings (never the full path).
pub(super) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
