//! From the plugins folder and `[plugins.<instance>]` config to live instances, with a row for
//! every library and instance saying whether it loaded and, if not, why.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cloudbase_plugin_api::abi::{FLAG_RAW_JSON_BODIES, PluginVTable};
use cloudbase_plugin_api::{
    CreateInput, HostOffers, Manifest, ModelInfo, PluginConfig, PluginKind as ApiKind,
};
use cloudbase_schema::ports::{PluginKind, PluginRow, PluginStatus};
use sha2::Digest as _;

use super::call::{self, Instance};
use super::callee::Callee;
use super::copies::Copies;
use super::isolated::{self, Isolated, RunnerCommand};
use super::reload::Source;
use super::{Notifier, Provider, Registry, file_name, library, upstream, user_http};
use crate::config::{Config, Isolation, PluginInstanceConfig};

/// A library that passed every check.
pub struct Library {
    /// `None` for a library only isolated instances use: it is never opened in the server.
    pub(super) vtable: Option<&'static PluginVTable>,
    /// What it was read from, and what tells one build of it from another: the address of its
    /// function table in the server, or the hash of the file for one described in a runner.
    path: PathBuf,
    pub(super) identity: String,
    /// Whether it reads a body that is JSON as the JSON itself (its function table's flags, read
    /// in the server or reported by a runner): an isolated instance is sent that form too.
    raw_json_bodies: bool,
    manifest: Manifest,
    validator: jsonschema::Validator,
    file: String,
}

/// Loaded libraries by plugin name, and a row for each one that failed.
pub struct Loaded {
    libraries: BTreeMap<String, Library>,
    failed: Vec<PluginRow>,
}

fn is_library(path: &Path) -> bool {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    let hidden = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'));
    path.is_file() && !hidden && matches!(ext, "so" | "dylib" | "dll")
}

fn failed_row(file: &str, name: Option<&Manifest>, reason: String) -> PluginRow {
    let stem = file.split('.').next().unwrap_or(file);
    PluginRow {
        name: name.map_or_else(
            || stem.trim_start_matches("lib").to_owned(),
            |m| m.name.clone(),
        ),
        instance: None,
        kind: name.map(|m| kind_of(m.kind)),
        version: name.map(|m| m.version.clone()),
        description: name.map(|m| m.description.clone()),
        mock: name.is_some_and(|m| m.mock),
        status: PluginStatus::Failed,
        reason: Some(reason),
        config_schema: None,
        secrets: Vec::new(),
        file: file.to_owned(),
    }
}

fn kind_of(kind: ApiKind) -> PluginKind {
    match kind {
        ApiKind::AiProvider => PluginKind::AiProvider,
        ApiKind::Notifier => PluginKind::Notifier,
    }
}

/// Plugins whose every configured instance has `isolation = "process"`: their libraries are
/// described in a runner and never opened in the server.
fn isolated_only(config: &Config) -> BTreeSet<String> {
    let of = |isolation: Isolation| -> BTreeSet<String> {
        config
            .plugins
            .values()
            .filter(|i| i.isolation == isolation)
            .map(|i| i.plugin.clone())
            .collect()
    };
    &of(Isolation::Process) - &of(Isolation::None)
}

/// Opens every library in `dir` (from private copies) and reads its manifest; a library that
/// only isolated instances of `config` use is read in a runner instead.
pub async fn load_libraries(
    dir: &Path,
    copies: &Copies,
    deadline: Duration,
    config: &Config,
) -> Loaded {
    let only = isolated_only(config);
    let runner = if only.is_empty() {
        None
    } else {
        match RunnerCommand::new(config) {
            Ok(runner) => Some(runner),
            Err(reason) => {
                tracing::error!(%reason, "no plugin runner; isolated instances will fail");
                None
            }
        }
    };
    let mut loaded = Loaded {
        libraries: BTreeMap::new(),
        failed: Vec::new(),
    };
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| is_library(p))
            .collect(),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot read the plugins folder; no plugins loaded");
            return loaded;
        }
    };
    files.sort();
    for path in files {
        let file = file_name(&path);
        let result = match &runner {
            Some(runner) => probe_library(runner, &only, &path, copies, deadline).await,
            None => load_library(&path, copies, deadline).await,
        };
        match result {
            Ok(library) if loaded.libraries.contains_key(&library.manifest.name) => {
                let reason = format!(
                    "another library already provides plugin `{}`",
                    library.manifest.name
                );
                tracing::warn!(plugin.file = %file, %reason, "plugin rejected");
                loaded
                    .failed
                    .push(failed_row(&file, Some(&library.manifest), reason));
            }
            Ok(library) => {
                tracing::info!(plugin = %library.manifest.name, version = %library.manifest.version, plugin.file = %file, "plugin loaded");
                loaded
                    .libraries
                    .insert(library.manifest.name.clone(), library);
            }
            Err(reason) => {
                tracing::warn!(plugin.file = %file, %reason, "plugin rejected");
                loaded.failed.push(failed_row(&file, None, reason));
            }
        }
    }
    loaded
}

async fn load_library(path: &Path, copies: &Copies, deadline: Duration) -> Result<Library, String> {
    let vtable = copies.open(path).await?;
    let name = library::name(vtable)?;
    let manifest = call::manifest(vtable, deadline)
        .await
        .map_err(|f| format!("manifest: {f}"))?;
    let identity = format!("table:{:x}", std::ptr::from_ref(vtable).addr());
    let raw_json_bodies = vtable.flags & FLAG_RAW_JSON_BODIES != 0;
    checked(
        path,
        Some(vtable),
        identity,
        raw_json_bodies,
        &name,
        manifest,
    )
}

/// Describes `path` in a runner; opens it in the server only if an in-process instance (or a
/// default one) may use it.
async fn probe_library(
    runner: &RunnerCommand,
    isolated_only: &BTreeSet<String>,
    path: &Path,
    copies: &Copies,
    deadline: Duration,
) -> Result<Library, String> {
    let described = isolated::describe(runner, path, deadline).await?;
    if !isolated_only.contains(&described.name) {
        return load_library(path, copies, deadline).await;
    }
    library::check_name(&described.name)?;
    if !described.panic_unwind {
        tracing::info!(plugin = %described.name, "plugin built with panic = \"abort\": it runs isolated only");
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    let identity = format!("sha256:{:x}", sha2::Sha256::digest(&bytes));
    checked(
        path,
        None,
        identity,
        described.raw_json_bodies,
        &described.name,
        described.manifest,
    )
}

/// The checks on a library's manifest, wherever it was read.
fn checked(
    path: &Path,
    vtable: Option<&'static PluginVTable>,
    identity: String,
    raw_json_bodies: bool,
    name: &str,
    manifest: Manifest,
) -> Result<Library, String> {
    if manifest.name != name {
        return Err(format!(
            "manifest names `{}` but the library calls itself `{name}`",
            manifest.name
        ));
    }
    if manifest.version.trim().is_empty() {
        return Err("manifest has no version".into());
    }
    let validator = jsonschema::validator_for(&manifest.config_schema)
        .map_err(|e| format!("config_schema is not a valid JSON Schema: {e}"))?;
    Ok(Library {
        vtable,
        identity,
        raw_json_bodies,
        path: path.to_path_buf(),
        manifest,
        validator,
        file: file_name(path),
    })
}

fn row(
    library: &Library,
    instance: Option<&str>,
    status: PluginStatus,
    reason: Option<String>,
) -> PluginRow {
    let m = &library.manifest;
    PluginRow {
        name: m.name.clone(),
        instance: instance.map(str::to_owned),
        kind: Some(kind_of(m.kind)),
        version: Some(m.version.clone()),
        description: Some(m.description.clone()),
        mock: m.mock,
        status,
        reason,
        config_schema: Some(m.config_schema.clone()),
        secrets: m.secrets.iter().map(|s| s.name.clone()).collect(),
        file: library.file.clone(),
    }
}

/// Every schema violation of `settings`, as `settings.<path>: <problem>`.
fn check_settings(library: &Library, settings: &serde_json::Value) -> Result<(), String> {
    let problems: Vec<String> = library
        .validator
        .iter_errors(settings)
        .map(|e| {
            let path = e.instance_path().to_string();
            let path = path.trim_start_matches('/').replace('/', ".");
            if path.is_empty() {
                format!("settings: {e}")
            } else {
                format!("settings.{path}: {e}")
            }
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Why an instance is not live.
enum NotLive {
    Disabled(String),
    Failed(String),
}

/// Reads each secret from the environment variable the instance names (or the plugin's default).
fn resolve_secrets(
    instance: &str,
    library: &Library,
    config: &PluginInstanceConfig,
) -> Result<BTreeMap<String, String>, NotLive> {
    let specs = &library.manifest.secrets;
    if let Some(unknown) = config
        .secrets
        .keys()
        .find(|k| !specs.iter().any(|s| &s.name == *k))
    {
        return Err(NotLive::Failed(format!(
            "plugin `{}` has no secret `{unknown}`",
            library.manifest.name
        )));
    }
    let mut values = BTreeMap::new();
    for spec in specs {
        let var = config.secrets.get(&spec.name).or(spec.default_env.as_ref());
        match var
            .and_then(|v| std::env::var(v).ok())
            .filter(|v| !v.is_empty())
        {
            Some(value) => {
                values.insert(spec.name.clone(), value);
            }
            None if spec.required => {
                let how = match var {
                    Some(v) => format!("set the environment variable {v}"),
                    None => format!("name an environment variable in [plugins.{instance}.secrets]"),
                };
                return Err(NotLive::Disabled(format!(
                    "secret `{}` is not set: {how}",
                    spec.name
                )));
            }
            None => {}
        }
    }
    Ok(values)
}

fn valid_instance_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Creates every configured instance, plus a default instance of each plugin that asks for one
/// and has none configured. On a reload, an instance of `previous` whose library and settings
/// are unchanged is kept as it is rather than created again.
pub async fn create_instances(
    config: &Config,
    loaded: Loaded,
    deadline: Duration,
    previous: Option<&Registry>,
) -> Registry {
    let mut wanted = config.plugins.clone();
    for (name, library) in &loaded.libraries {
        let configured = wanted.values().any(|i| &i.plugin == name) || wanted.contains_key(name);
        if library.manifest.default_instance && !configured {
            wanted.insert(name.clone(), PluginInstanceConfig::new(name.clone()));
        }
    }
    let mut registry = Registry {
        allow_private_targets: config.alerts.allow_private_targets,
        rows: loaded.failed,
        ..Registry::default()
    };
    let mut used: BTreeSet<&str> = BTreeSet::new();
    let runner = RunnerCommand::new(config);
    for (instance, settings) in &wanted {
        let Some(library) = loaded.libraries.get(&settings.plugin) else {
            let reason = format!(
                "plugin `{}` is not loaded (no such library in the plugins folder)",
                settings.plugin
            );
            tracing::warn!(plugin.instance = %instance, %reason, "plugin instance failed");
            registry.rows.push(PluginRow {
                instance: Some(instance.clone()),
                ..failed_row(&settings.plugin, None, reason)
            });
            continue;
        };
        used.insert(library.manifest.name.as_str());
        let source = Source::of(library, settings);
        if let Some(previous) = previous
            && previous.keep_unchanged(instance, &source, &mut registry)
        {
            registry
                .rows
                .push(row(library, Some(instance), PluginStatus::Loaded, None));
            continue;
        }
        match start(
            &mut registry,
            instance,
            library,
            settings,
            (&runner, deadline),
        )
        .await
        {
            Ok(()) => {
                registry.sources.insert(instance.clone(), source);
                registry
                    .rows
                    .push(row(library, Some(instance), PluginStatus::Loaded, None));
            }
            Err(NotLive::Disabled(reason)) => {
                tracing::info!(plugin.instance = %instance, %reason, "plugin instance disabled");
                registry.rows.push(row(
                    library,
                    Some(instance),
                    PluginStatus::Disabled,
                    Some(reason),
                ));
            }
            Err(NotLive::Failed(reason)) => {
                tracing::warn!(plugin.instance = %instance, %reason, "plugin instance failed");
                registry.rows.push(row(
                    library,
                    Some(instance),
                    PluginStatus::Failed,
                    Some(reason),
                ));
            }
        }
    }
    for (name, library) in &loaded.libraries {
        if !used.contains(name.as_str()) {
            registry
                .rows
                .push(row(library, None, PluginStatus::Loaded, None));
        }
    }
    registry
        .rows
        .sort_by(|a, b| (&a.name, &a.instance).cmp(&(&b.name, &b.instance)));
    if !registry.notifiers.is_empty() && !registry.allow_private_targets && user_http::proxied() {
        tracing::info!(
            "users' webhooks go through the proxy from the environment (HTTP(S)_PROXY), which \
             makes the connections: their addresses are checked before each delivery only"
        );
    }
    registry
}

async fn start(
    registry: &mut Registry,
    instance: &str,
    library: &Library,
    config: &PluginInstanceConfig,
    (runner, deadline): (&Result<RunnerCommand, String>, Duration),
) -> Result<(), NotLive> {
    if !valid_instance_name(instance) {
        return Err(NotLive::Failed(format!(
            "invalid instance name {instance:?}: expected [a-z0-9_-], 1-64 characters"
        )));
    }
    if !config.enabled {
        return Err(NotLive::Disabled(
            "disabled in config (enabled = false)".into(),
        ));
    }
    check_settings(library, &config.settings).map_err(NotLive::Failed)?;
    let secrets = resolve_secrets(instance, library, config)?;
    let plugin_config = PluginConfig {
        settings: config.settings.clone(),
        secrets: secrets.clone(),
    };
    // The host reads a request's JSON body as JSON itself (`body_json`), in its process and from
    // a runner alike (a runner relays a plugin's answers as they are).
    let input = CreateInput {
        config: &plugin_config,
        offers: HostOffers {
            raw_json_bodies: true,
        },
    };
    let bytes = serde_json::to_vec(&input).map_err(|e| NotLive::Failed(e.to_string()))?;
    let live = match (config.isolation, library.vtable) {
        (Isolation::None, Some(vtable)) => Callee::InProcess(
            Instance::create(vtable, bytes, deadline)
                .await
                .map_err(|f| NotLive::Failed(format!("create: {f}")))?,
        ),
        (Isolation::None, None) => {
            return Err(NotLive::Failed(format!(
                "plugin `{}` runs isolated only here: set isolation = \"process\"",
                library.manifest.name
            )));
        }
        (Isolation::Process, _) => {
            let spec = isolated::Spec {
                runner: runner.clone().map_err(NotLive::Failed)?,
                library: library.path.clone(),
                instance: instance.to_owned(),
                config: bytes,
                deadline,
                raw_json_bodies: library.raw_json_bodies,
            };
            Callee::Isolated(
                Isolated::start(spec)
                    .await
                    .map_err(|f| NotLive::Failed(format!("create, in its runner: {f}")))?,
            )
        }
    };
    let client = upstream::client(&config.timeouts).map_err(NotLive::Failed)?;
    match library.manifest.kind {
        ApiKind::AiProvider => {
            let models: Vec<ModelInfo> = live
                .call("models", &())
                .await
                .map_err(|f| NotLive::Failed(format!("models: {f}")))?;
            registry.providers.insert(
                instance.to_owned(),
                Arc::new(Provider {
                    name: instance.to_owned(),
                    what: format!("provider `{instance}`"),
                    url: upstream::UrlMemo::default(),
                    instance: live,
                    manifest: library.manifest.clone(),
                    models,
                    client,
                    secrets,
                    timeouts: config.timeouts,
                    retries: config.retries.min(10),
                    retry_backoff: Duration::from_millis(config.retry_backoff_ms),
                    cache_ttl: config.cache_ttl_secs.map(Duration::from_secs),
                }),
            );
        }
        ApiKind::Notifier => {
            let user_client = user_http::client(&config.timeouts, registry.allow_private_targets)
                .map_err(NotLive::Failed)?;
            registry.notifiers.insert(
                instance.to_owned(),
                Arc::new(Notifier {
                    name: instance.to_owned(),
                    instance: live,
                    client,
                    user_client,
                    secrets,
                    timeouts: config.timeouts,
                }),
            );
        }
    }
    Ok(())
}
