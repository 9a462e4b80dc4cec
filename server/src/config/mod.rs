//! Typed configuration, loaded once at start-up.
//!
//! Precedence: built-in defaults < the TOML file (`--config` or `CLOUDBASE_CONFIG`) < environment.
//! Environment keys are `CLOUDBASE_<KEY>`, with `__` between a section and its key
//! (`CLOUDBASE_GRAPHQL__MAX_DEPTH=8`), plus `DATABASE_URL`. Errors name the key and what was expected.
//!
//! - [`sections`]: `[database]`, `[auth]`, `[http]`, `[graphql]`, `[metrics]`, `[logs]`: what the
//!   server itself reads.
//! - [`services`]: `[chat]`, `[budgets]`, `[rate_limits]`, `[alerts]`, `[audit]`, `[retention]`,
//!   and their conversions into the services' settings.
//! - [`plugins`]: `[plugins.<instance>]` and the upstream timeouts.
//! - [`backup`]: `[backup]`: where backups go, and SQLite's scheduled backups.
//! - [`secret`]: [`Secret`], a string that never prints in clear.
//! - [`validate`]: [`ConfigError`] and the checks on values that parse but make no sense.

pub mod backup;
pub mod plugins;
pub mod secret;
pub mod sections;
pub mod services;
pub mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub use self::backup::BackupConfig;
pub use self::plugins::{Isolation, PluginInstanceConfig, UpstreamTimeouts};
pub use self::secret::Secret;
pub use self::sections::{
    AuthConfig, DatabaseConfig, GraphqlConfig, HttpConfig, LogsConfig, MetricsConfig,
    RegistrationConfig, WeChatConfig,
};
pub use self::services::{
    AlertsConfig, AuditConfig, BreakerConfig, BudgetsConfig, ChatConfig, PeriodConfig,
    RateLimitsConfig, RetentionConfig,
};
pub use self::validate::ConfigError;
use self::validate::invalid;

/// `dev` or `prod`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Local development: generated master key, introspection for everyone.
    Dev,
    /// Production: an explicit master key is required, introspection is for admins.
    Prod,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `dev` (default) or `prod`.
    pub env: Environment,
    /// Listen address (`CLOUDBASE_LISTEN`).
    pub listen: SocketAddr,
    /// Where SQLite and the generated dev master key live.
    pub data_dir: PathBuf,
    /// `postgres://…` or `sqlite://path` (`DATABASE_URL`); default `sqlite://<data_dir>/cloudbase.db`.
    pub database_url: Option<String>,
    /// The HS256 secret of a deployment from before signing keys rotated (at least 32 bytes):
    /// only verifies the tokens it signed until they expire. Access tokens are signed with
    /// Ed25519 keys kept in the database (`cloudbase-ai keys`).
    pub jwt_secret: Option<Secret>,
    /// Master keys that seal sensitive columns and signing keys (`CLOUDBASE_MASTER_KEY`): 32
    /// bytes in base64 each, newest first, separated by commas. Required in `prod` unless
    /// `master_key_file` is set; in `dev` generated once into `<data_dir>/master-key`.
    pub master_key: Option<Secret>,
    /// A file holding the master keys, one per line, newest first (`CLOUDBASE_MASTER_KEY_FILE`).
    /// `cloudbase-ai keys rotate-master` adds a new key to it.
    pub master_key_file: Option<PathBuf>,
    /// Creates this admin on a first start with no users (`CLOUDBASE_BOOTSTRAP_ADMIN_EMAIL`).
    pub bootstrap_admin_email: Option<String>,
    /// The bootstrap admin's password (`CLOUDBASE_BOOTSTRAP_ADMIN_PASSWORD`).
    pub bootstrap_admin_password: Option<Secret>,
    /// `pretty` or `json`.
    pub log_format: LogFormat,
    /// Database pool settings.
    pub database: DatabaseConfig,
    /// Token lifetimes.
    pub auth: AuthConfig,
    /// HTTP limits.
    pub http: HttpConfig,
    /// GraphQL limits.
    pub graphql: GraphqlConfig,
    /// Where plugin libraries are loaded from (`CLOUDBASE_PLUGINS_DIR`); default: the folder of
    /// the `cloudbase-ai` executable, where `cargo build` puts the first-party plugins.
    pub plugins_dir: Option<PathBuf>,
    /// Longest a single call into a plugin may take, in milliseconds.
    pub plugin_call_timeout_ms: u64,
    /// The program that runs plugins with `isolation = "process"`, started as `<program>
    /// plugin-runner <library>` (`CLOUDBASE_PLUGIN_RUNNER`); default: this server's own executable.
    pub plugin_runner: Option<PathBuf>,
    /// Plugin instances by name: `[plugins.<instance>]`.
    pub plugins: BTreeMap<String, PluginInstanceConfig>,
    /// Look at the plugins folder this often, in seconds, and reload the plugins once a change
    /// has settled (`CLOUDBASE_PLUGINS_WATCH_SECS`); 0 (the default) watches nothing.
    pub plugins_watch_secs: u64,
    /// Chat defaults.
    pub chat: ChatConfig,
    /// An extra price file (same format as `schema/data/prices.toml`), applied at start-up.
    pub prices_file: Option<PathBuf>,
    /// Budgets.
    pub budgets: BudgetsConfig,
    /// How long raw records are kept.
    pub retention: RetentionConfig,
    /// System logs.
    pub logs: LogsConfig,
    /// Who may read `/metrics`.
    pub metrics: MetricsConfig,
    /// Alert evaluation and delivery.
    pub alerts: AlertsConfig,
    /// The audit chain's linking.
    pub audit: AuditConfig,
    /// Default rate limits (admins override them per user).
    pub rate_limits: RateLimitsConfig,
    /// WeChat mini-program sign-in.
    pub wechat: WeChatConfig,
    /// Backups: where they go, and SQLite's schedule.
    pub backup: BackupConfig,
    /// The file this config was read from, if any: a plugin reload reads its
    /// `[plugins.<instance>]` sections again. Set by [`Config::load`], never read from a file.
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            env: Environment::Dev,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            database_url: None,
            jwt_secret: None,
            master_key: None,
            master_key_file: None,
            bootstrap_admin_email: None,
            bootstrap_admin_password: None,
            log_format: LogFormat::Pretty,
            database: DatabaseConfig::default(),
            auth: AuthConfig::default(),
            http: HttpConfig::default(),
            graphql: GraphqlConfig::default(),
            plugins_dir: None,
            plugin_call_timeout_ms: 10_000,
            plugin_runner: None,
            plugins: BTreeMap::new(),
            plugins_watch_secs: 0,
            chat: ChatConfig::default(),
            prices_file: None,
            budgets: BudgetsConfig::default(),
            retention: RetentionConfig::default(),
            logs: LogsConfig::default(),
            metrics: MetricsConfig::default(),
            alerts: AlertsConfig::default(),
            audit: AuditConfig::default(),
            rate_limits: RateLimitsConfig::default(),
            wechat: WeChatConfig::default(),
            backup: BackupConfig::default(),
            config_file: None,
        }
    }
}

impl Config {
    /// Loads defaults, then `file` if given, then the process environment; then validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(invalid(
                    "config",
                    format!("config file {} does not exist", path.display()),
                ));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment
            .merge(
                Env::prefixed("CLOUDBASE_")
                    .filter(|key| key != "config" && key != "log")
                    .split("__"),
            )
            .merge(Env::raw().only(&["DATABASE_URL"]));
        let mut config: Config = figment.extract().map_err(Box::new)?;
        config.validate()?;
        config.config_file = file.map(Path::to_path_buf);
        Ok(config)
    }

    /// The database URL in force.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("cloudbase.db").display()))
    }

    /// The link a password reset email carries (`{token}` marks the token): `[auth]
    /// password_reset_url`, or this server's console at `listen`.
    pub fn password_reset_url(&self) -> String {
        self.auth.password_reset_url.clone().unwrap_or_else(|| {
            format!(
                "http://{}/console#/reset-password?token={{token}}",
                self.listen
            )
        })
    }

    /// The plugins folder in force: `plugins_dir`, or the executable's folder.
    pub fn plugins_dir(&self) -> PathBuf {
        self.plugins_dir.clone().unwrap_or_else(|| {
            std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent().map(Path::to_path_buf))
                .unwrap_or_else(|| PathBuf::from("."))
        })
    }

    /// Where backups are written: `[backup] dir`, or `<data_dir>/backups`.
    pub fn backup_dir(&self) -> PathBuf {
        self.backup.dir(&self.data_dir)
    }

    /// The budget time zone.
    pub fn timezone(&self) -> Result<chrono_tz::Tz, ConfigError> {
        self.budgets.timezone()
    }

    /// The AI calls one instance takes at once.
    pub fn max_calls_in_flight(&self) -> usize {
        match self.chat.max_calls_in_flight {
            0 => self.database.max_connections.saturating_mul(16),
            n => n,
        }
    }

    /// Whether `/playground` is served: `[http] playground`, else only in `dev`.
    pub fn playground(&self) -> bool {
        self.http.playground.unwrap_or(self.env == Environment::Dev)
    }

    /// The audit chainer's settings.
    pub fn chain_settings(&self) -> cloudbase_schema::services::audit::ChainSettings {
        (&self.audit).into()
    }

    /// The GraphQL limits; name suggestions only in `dev`, where introspection is open.
    pub fn limits(&self) -> cloudbase_schema::Limits {
        cloudbase_schema::Limits {
            max_depth: self.graphql.max_depth,
            max_complexity: self.graphql.max_complexity,
            max_aliases: self.graphql.max_aliases,
            max_nesting: self.graphql.max_nesting,
            suggestions: self.env == Environment::Dev,
        }
    }
}

/// A number of seconds from config as a `chrono` duration. Validation keeps the ones it bounds
/// within a few years; one past what `chrono` can hold becomes ten years rather than a panic.
fn seconds(secs: u64) -> chrono::Duration {
    i64::try_from(secs)
        .ok()
        .and_then(chrono::Duration::try_seconds)
        .unwrap_or(chrono::Duration::days(3650))
}
