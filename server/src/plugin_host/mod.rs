//! The plugin host: loads every library in the plugins folder, creates the configured instances,
//! and serves them to the services through [`PluginHost`]. A bad library or instance is listed as
//! `FAILED` (or `DISABLED`) with its reason; the server keeps serving.
//!
//! What is live is one [`Registry`] behind a swappable pointer in the [`Host`]: a call takes the
//! instance it uses (an `Arc`) from the registry in place when it starts, so a reload that swaps
//! in a new registry sends new calls to the new versions while calls in flight finish on the old.
//!
//! - [`library`]: opening a library and checking symbol, ABI version, table size and panic flag.
//! - [`copies`]: libraries opened from private copies, by content, so files can be replaced.
//! - [`reload`]: reloading libraries and settings beside the running ones, and what changed.
//! - [`triggers`]: reloads on `SIGHUP` and on a change in the plugins folder.
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
pub mod copies;
pub mod failure;
pub mod instances;
pub mod isolated;
pub mod library;
pub mod notifier;
pub mod provider;
pub mod reload;
pub mod smtp;
pub mod triggers;
pub mod upstream;
pub mod user_http;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use cloudbase_plugin_api::{ChatRequest, DeliveryReport, Notification};
use cloudbase_schema::Error;
use cloudbase_schema::ports::{
    Destination, ModelRow, PluginHost, PluginReload, PluginRow, PluginStatus, ProviderReply,
    StreamStart,
};
use futures_util::future::BoxFuture;

use self::notifier::Notifier;
use self::provider::Provider;
use crate::config::Config;

/// Everything the plugins folder and config produced, at one moment: the host swaps in a new one
/// on each reload.
#[derive(Default)]
pub struct Registry {
    /// `[alerts] allow_private_targets`: users' webhooks may reach this network.
    allow_private_targets: bool,
    rows: Vec<PluginRow>,
    providers: BTreeMap<String, Arc<Provider>>,
    notifiers: BTreeMap<String, Arc<Notifier>>,
    /// What each live instance was made from, to tell on a reload whether it changed.
    sources: BTreeMap<String, reload::Source>,
}

impl Registry {
    fn provider(&self, name: &str) -> Result<Arc<Provider>, Error> {
        self.providers
            .get(name)
            .cloned()
            .ok_or_else(|| Error::BadInput {
                field: Some("input.provider"),
                message: format!("unknown provider `{name}`; see `models` for what you can call"),
            })
    }
}

/// The plugin host the services use: the live [`Registry`], swapped whole by a reload.
pub struct Host {
    live: RwLock<Arc<Registry>>,
    /// How to reload; `None` for a host with no plugins (CLI commands that do not serve).
    reloader: Option<reload::Reloader>,
}

impl Host {
    /// No plugins at all (for CLI commands that do not serve); a reload changes nothing.
    pub fn empty() -> Self {
        Self {
            live: RwLock::new(Arc::new(Registry::default())),
            reloader: None,
        }
    }

    /// Scans `config.plugins_dir()` and creates every instance.
    pub async fn load(config: &Config) -> Self {
        let reloader = reload::Reloader::new(config);
        let registry = reloader.first_load(config).await;
        Self {
            live: RwLock::new(Arc::new(registry)),
            reloader: Some(reloader),
        }
    }

    /// The registry in place now.
    fn current(&self) -> Arc<Registry> {
        Arc::clone(&self.live.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Puts `next` in place: calls that start from now on use it.
    fn swap(&self, next: Registry) {
        *self.live.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
    }
}

impl PluginHost for Host {
    fn plugins(&self) -> Vec<PluginRow> {
        let registry = self.current();
        let mut rows = registry.rows.clone();
        for row in &mut rows {
            let Some(instance) = row.instance.as_deref() else {
                continue;
            };
            let callee = match (
                registry.providers.get(instance),
                registry.notifiers.get(instance),
            ) {
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
        self.current()
            .providers
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
        let provider = self.current().provider(provider);
        Box::pin(async move { provider?.complete(request).await })
    }

    fn chat_stream(
        &self,
        provider: &str,
        request: ChatRequest,
    ) -> BoxFuture<'_, Result<StreamStart, Error>> {
        let provider = self.current().provider(provider);
        Box::pin(async move { provider?.stream(request).await })
    }

    fn cache_ttl(&self, provider: &str) -> Option<Duration> {
        self.current()
            .providers
            .get(provider)
            .and_then(|p| p.cache_ttl)
    }

    fn notify(
        &self,
        channel: &str,
        notification: Notification,
        destination: Destination,
    ) -> BoxFuture<'_, Result<DeliveryReport, Error>> {
        let notifier = self
            .current()
            .notifiers
            .get(channel)
            .cloned()
            .ok_or_else(|| Error::BadInput {
                field: Some("channel"),
                message: format!("unknown notification channel `{channel}`"),
            });
        Box::pin(async move { notifier?.deliver(notification, destination).await })
    }

    fn reload(&self) -> BoxFuture<'_, Result<PluginReload, Error>> {
        Box::pin(async move {
            let Some(reloader) = &self.reloader else {
                return Ok(PluginReload {
                    changes: Vec::new(),
                    plugins: self.plugins(),
                });
            };
            reloader.reload(self).await
        })
    }
}

/// The file name of a library, for listings (never the full path).
pub(super) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
