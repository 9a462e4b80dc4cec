//! Reloading the plugins while the server serves: libraries are scanned again (new and changed
//! ones open beside the running ones, from private copies: see [`super::copies`]), the instance
//! settings are read again from the config file the server started with (or, started without
//! one, the settings it started with are checked again against the new libraries), and the new
//! [`Registry`] is swapped in whole. Calls hold the instance they started on, so calls in flight
//! finish on the old version and new calls get the new one; no code is ever unloaded.
//!
//! An instance whose library and settings did not change is kept as it is (not created again).
//! An instance that was serving and whose new library or settings fail keeps its old version
//! serving, its row saying why. Reloads run one at a time.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use cloudbase_schema::Error;
use cloudbase_schema::ports::{
    PluginChange, PluginChangeKind, PluginReload, PluginRow, PluginStatus,
};

use super::instances::{self, Library};
use super::{Host, Registry, copies::Copies};
use crate::config::{Config, PluginInstanceConfig};

/// What a live instance was made from: its library (the address of its function table, the
/// same for the same bytes; for a library only run isolated, the hash of its file) and its whole `[plugins.<instance>]` section.
#[derive(Debug, Clone)]
pub struct Source {
    library: String,
    settings: Option<serde_json::Value>,
}

impl Source {
    /// The source of an instance of `library` configured by `settings`.
    pub(super) fn of(library: &Library, settings: &PluginInstanceConfig) -> Self {
        Self {
            library: library.identity.clone(),
            settings: serde_json::to_value(settings).ok(),
        }
    }

    /// Whether both are the same library with the same settings (settings that did not
    /// serialise are never the same).
    fn same_as(&self, other: &Source) -> bool {
        self.library == other.library && self.settings.is_some() && self.settings == other.settings
    }
}

impl Registry {
    /// Puts this registry's instance `instance` into `next` if it was made from `source`;
    /// whether it did.
    pub(super) fn keep_unchanged(
        &self,
        instance: &str,
        source: &Source,
        next: &mut Registry,
    ) -> bool {
        if !self
            .sources
            .get(instance)
            .is_some_and(|s| s.same_as(source))
        {
            return false;
        }
        self.move_instance(instance, next)
    }

    /// Puts this registry's live instance `instance` (and its source) into `next`; whether it
    /// had one.
    fn move_instance(&self, instance: &str, next: &mut Registry) -> bool {
        if let Some(provider) = self.providers.get(instance) {
            next.providers
                .insert(instance.to_owned(), Arc::clone(provider));
        } else if let Some(notifier) = self.notifiers.get(instance) {
            next.notifiers
                .insert(instance.to_owned(), Arc::clone(notifier));
        } else {
            return false;
        }
        if let Some(source) = self.sources.get(instance) {
            next.sources.insert(instance.to_owned(), source.clone());
        }
        true
    }

    /// Whether `instance` takes calls in this registry.
    fn is_live(&self, instance: &str) -> bool {
        self.providers.contains_key(instance) || self.notifiers.contains_key(instance)
    }

    /// Whether `instance` is the same live object in both registries (kept, not created again).
    fn same_object(&self, other: &Registry, instance: &str) -> bool {
        match (self.providers.get(instance), other.providers.get(instance)) {
            (Some(a), Some(b)) => return Arc::ptr_eq(a, b),
            (None, None) => {}
            _ => return false,
        }
        match (self.notifiers.get(instance), other.notifiers.get(instance)) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// How the host loads and reloads: the config it started with, and the libraries opened so far.
pub struct Reloader {
    /// The plugins folder, the call deadline and (without a config file) the instance settings.
    start: Config,
    copies: Copies,
    /// One reload at a time.
    running: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// A reloader for a server started with `config`.
    pub fn new(config: &Config) -> Self {
        Self {
            start: config.clone(),
            copies: Copies::new(config.data_dir.clone()),
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// The deadline of one call into a plugin.
    fn deadline(&self) -> Duration {
        Duration::from_millis(self.start.plugin_call_timeout_ms)
    }

    /// Loads everything for the first time.
    pub(super) async fn first_load(&self, config: &Config) -> Registry {
        let loaded =
            instances::load_libraries(&config.plugins_dir(), &self.copies, self.deadline(), config)
                .await;
        instances::create_instances(config, loaded, self.deadline(), None).await
    }

    /// Reloads `host` (see the module docs) and says what changed.
    pub(super) async fn reload(&self, host: &Host) -> Result<PluginReload, Error> {
        let _one_at_a_time = self.running.lock().await;
        let config = self.config()?;
        let old = host.current();
        let loaded = instances::load_libraries(
            &config.plugins_dir(),
            &self.copies,
            self.deadline(),
            &config,
        )
        .await;
        let mut next =
            instances::create_instances(&config, loaded, self.deadline(), Some(&old)).await;
        let kept = keep_serving(&old, &mut next);
        let changes = changes(&old, &next, &kept);
        let plugins = next.rows.clone();
        host.swap(next);
        Ok(PluginReload { changes, plugins })
    }

    /// The config to reload with: the one the server started with, its `[plugins.<instance>]`
    /// sections read again from its file if it had one.
    fn config(&self) -> Result<Config, Error> {
        let Some(file) = &self.start.config_file else {
            return Ok(self.start.clone());
        };
        let fresh = Config::load(Some(file)).map_err(|e| Error::BadInput {
            field: None,
            message: format!(
                "the config file {} does not load ({e}); nothing was reloaded",
                file.display()
            ),
        })?;
        let mut config = self.start.clone();
        config.plugins = fresh.plugins;
        Ok(config)
    }
}

/// Puts back every instance of `old` that was serving and failed in `next` (its new library or
/// settings), or vanished because its library failed to load; returns their names.
fn keep_serving(old: &Registry, next: &mut Registry) -> BTreeSet<String> {
    let mut kept = BTreeSet::new();
    for old_row in &old.rows {
        let Some(instance) = old_row.instance.as_deref() else {
            continue;
        };
        if !old.is_live(instance) || next.is_live(instance) {
            continue;
        }
        let library_failure = next
            .rows
            .iter()
            .find(|r| {
                r.instance.is_none() && r.status == PluginStatus::Failed && r.name == old_row.name
            })
            .map(|r| {
                format!(
                    "library {}: {}",
                    r.file,
                    r.reason.as_deref().unwrap_or("failed")
                )
            });
        let at = next
            .rows
            .iter()
            .position(|r| r.instance.as_deref() == Some(instance));
        let reason = match at.map(|i| &next.rows[i]) {
            // The new version loaded, and the instance failed on it.
            Some(row) if row.status == PluginStatus::Failed && row.version.is_some() => {
                Some(format!(
                    "version {}: {}",
                    row.version.as_deref().unwrap_or("?"),
                    row.reason.as_deref().unwrap_or("failed")
                ))
            }
            // The plugin is not loaded: say why its library failed, if one did.
            Some(row) if row.status == PluginStatus::Failed => {
                library_failure.or_else(|| row.reason.clone())
            }
            // Disabled or dropped from the config on purpose, or loaded afresh.
            Some(_) => None,
            // A default instance whose library is still there but failed.
            None => library_failure,
        };
        let Some(reason) = reason else {
            continue;
        };
        if !old.move_instance(instance, next) {
            continue;
        }
        let version = old_row.version.as_deref().unwrap_or("?");
        let row = PluginRow {
            reason: Some(format!("{reason}; version {version} keeps serving")),
            ..old_row.clone()
        };
        match at {
            Some(i) => next.rows[i] = row,
            None => next.rows.push(row),
        }
        kept.insert(instance.to_owned());
    }
    next.rows
        .sort_by(|a, b| (&a.name, &a.instance).cmp(&(&b.name, &b.instance)));
    kept
}

/// Every row of `next` that differs from `old`, then the rows that are gone.
fn changes(old: &Registry, next: &Registry, kept: &BTreeSet<String>) -> Vec<PluginChange> {
    let key = |r: &PluginRow| (r.name.clone(), r.instance.clone());
    let mut changes = Vec::new();
    for new in &next.rows {
        let before = old.rows.iter().find(|o| key(o) == key(new));
        let change = match (new.instance.as_deref(), before) {
            (Some(i), _) if kept.contains(i) => PluginChangeKind::Failed,
            (_, None) => by_status(new.status),
            (instance, Some(before)) => {
                let recreated = instance.is_some_and(|i| {
                    next.is_live(i) && old.is_live(i) && !old.same_object(next, i)
                });
                let version_changed = before.version != new.version;
                if !recreated
                    && !version_changed
                    && before.status == new.status
                    && before.reason == new.reason
                {
                    continue;
                }
                if new.status == PluginStatus::Loaded
                    && before.status == PluginStatus::Loaded
                    && (recreated || version_changed)
                {
                    PluginChangeKind::Replaced
                } else {
                    by_status(new.status)
                }
            }
        };
        changes.push(PluginChange {
            name: new.name.clone(),
            instance: new.instance.clone(),
            change,
            status: new.status,
            previous_version: before.and_then(|b| b.version.clone()),
            version: new.version.clone(),
            reason: new.reason.clone(),
        });
    }
    for gone in old.rows.iter().filter(|o| {
        // A failed row that went away took nothing out of service.
        o.status != PluginStatus::Failed && !next.rows.iter().any(|n| key(n) == key(o))
    }) {
        changes.push(PluginChange {
            name: gone.name.clone(),
            instance: gone.instance.clone(),
            change: PluginChangeKind::Removed,
            status: PluginStatus::Disabled,
            previous_version: gone.version.clone(),
            version: None,
            reason: None,
        });
    }
    changes
}

/// The change a row new to the list (or with a new status) stands for.
fn by_status(status: PluginStatus) -> PluginChangeKind {
    match status {
        PluginStatus::Loaded => PluginChangeKind::Loaded,
        PluginStatus::Failed => PluginChangeKind::Failed,
        PluginStatus::Disabled => PluginChangeKind::Disabled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, instance: Option<&str>, version: &str, status: PluginStatus) -> PluginRow {
        PluginRow {
            name: name.into(),
            instance: instance.map(str::to_owned),
            kind: None,
            version: Some(version.into()),
            description: None,
            mock: false,
            status,
            reason: None,
            config_schema: None,
            secrets: Vec::new(),
            file: format!("lib{name}.so"),
        }
    }

    fn registry(rows: Vec<PluginRow>) -> Registry {
        Registry {
            rows,
            ..Registry::default()
        }
    }

    #[test]
    fn changes_name_what_is_new_different_or_gone_and_nothing_else() {
        use PluginStatus::{Disabled, Failed, Loaded};
        let old = registry(vec![
            row("same", None, "1", Loaded),
            row("lib", None, "1", Loaded),
            row("fixed", Some("fixed"), "1", Failed),
            row("gone", Some("gone"), "1", Loaded),
            row("broken", None, "1", Failed),
        ]);
        let next = registry(vec![
            row("same", None, "1", Loaded),
            row("lib", None, "2", Loaded),
            row("fixed", Some("fixed"), "1", Loaded),
            row("new", Some("new"), "1", Disabled),
        ]);
        let changes = changes(&old, &next, &BTreeSet::new());
        let seen: Vec<_> = changes
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.change,
                    c.status,
                    c.previous_version.as_deref(),
                    c.version.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "lib",
                    PluginChangeKind::Replaced,
                    Loaded,
                    Some("1"),
                    Some("2")
                ),
                (
                    "fixed",
                    PluginChangeKind::Loaded,
                    Loaded,
                    Some("1"),
                    Some("1")
                ),
                ("new", PluginChangeKind::Disabled, Disabled, None, Some("1")),
                ("gone", PluginChangeKind::Removed, Disabled, Some("1"), None),
            ],
            "an unchanged row and a failed row that went away are not changes"
        );
    }
}
