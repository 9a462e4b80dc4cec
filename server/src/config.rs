//! Typed configuration, loaded once at start-up.
//!
//! Precedence: built-in defaults < the TOML file (`--config` or `CLOUDBASE_CONFIG`) < environment.
//! Environment keys are `CLOUDBASE_<KEY>`, with `__` between a section and its key
//! (`CLOUDBASE_GRAPHQL__MAX_DEPTH=8`), plus `DATABASE_URL`. Errors name the key and what was expected.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `dev` or `prod`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Local development: generated JWT key, introspection for everyone.
    Dev,
    /// Production: an explicit JWT secret is required, introspection is for admins.
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

/// A secret string: never printed, never serialized in clear.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `dev` (default) or `prod`.
    pub env: Environment,
    /// Listen address (`CLOUDBASE_LISTEN`).
    pub listen: SocketAddr,
    /// Where SQLite and the generated dev JWT key live.
    pub data_dir: PathBuf,
    /// `postgres://…` or `sqlite://path` (`DATABASE_URL`); default `sqlite://<data_dir>/cloudbase.db`.
    pub database_url: Option<String>,
    /// HMAC key for access tokens, at least 32 bytes. Required in `prod`; generated in `dev`.
    pub jwt_secret: Option<Secret>,
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
    /// Plugin instances by name: `[plugins.<instance>]`.
    pub plugins: BTreeMap<String, PluginInstanceConfig>,
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
}

/// `[rate_limits]`; 0 turns a limit off.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitsConfig {
    /// AI calls per minute per user.
    pub requests_per_minute: u64,
    /// Tokens per minute per user.
    pub tokens_per_minute: u64,
    /// Failed logins of one account (from anywhere) in the sliding window, past which addresses
    /// that have not signed in to it before are refused.
    pub login_failures_per_account: u64,
    /// Failed logins from one address (against any account) in the sliding window, past which it
    /// is refused for accounts it has not signed in to before.
    pub login_failures_per_address: u64,
    /// The sliding login window, in seconds (at most a day).
    pub login_window_secs: u64,
    /// Failed logins of one account from one address before each further attempt must wait
    /// (1 s, doubling with each failure).
    pub login_failures_before_backoff: u64,
    /// The longest such wait, in seconds; 0 turns the backoff off.
    pub login_backoff_max_secs: u64,
    /// How long a sign-in from an address makes that address trusted for the account (exempt
    /// from the account and address limits), in days; 0 trusts no address.
    pub login_trusted_address_days: u64,
    /// Accounts registered from one address in any hour.
    pub registrations_per_address: u64,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        Self {
            requests_per_minute: 120,
            tokens_per_minute: 0,
            login_failures_per_account: 10,
            login_failures_per_address: 100,
            login_window_secs: 900,
            login_failures_before_backoff: 3,
            login_backoff_max_secs: 900,
            login_trusted_address_days: 30,
            registrations_per_address: 10,
        }
    }
}

/// A budget period, as config spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeriodConfig {
    /// Starts over at local midnight.
    Day,
    /// Starts over on Monday.
    Week,
    /// Starts over on the 1st.
    Month,
    /// Never starts over.
    Total,
}

impl From<PeriodConfig> for cloudbase_schema::services::budgets::Period {
    fn from(p: PeriodConfig) -> Self {
        use cloudbase_schema::services::budgets::Period;
        match p {
            PeriodConfig::Day => Period::Day,
            PeriodConfig::Week => Period::Week,
            PeriodConfig::Month => Period::Month,
            PeriodConfig::Total => Period::Total,
        }
    }
}

/// Who may register: `[auth] registration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationConfig {
    /// Anyone.
    Open,
    /// Only with an invite code an admin created.
    Invite,
    /// Nobody; admins create accounts (`cloudbase-ai user create`).
    Closed,
}

impl From<RegistrationConfig> for cloudbase_schema::services::registration::RegistrationMode {
    fn from(r: RegistrationConfig) -> Self {
        use cloudbase_schema::services::registration::RegistrationMode;
        match r {
            RegistrationConfig::Open => RegistrationMode::Open,
            RegistrationConfig::Invite => RegistrationMode::Invite,
            RegistrationConfig::Closed => RegistrationMode::Closed,
        }
    }
}

/// `[budgets]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetsConfig {
    /// IANA time zone in which days, weeks and months start (and report days are counted).
    pub timezone: String,
    /// How long a call's reservation holds before the sweeper releases it, in seconds.
    pub reservation_ttl_secs: u64,
    /// How often the sweeper and the retention job run, in seconds.
    pub sweep_interval_secs: u64,
    /// The spend limit every self-registered user's own budget starts with, in micro-units of
    /// `new_user_currency`; 0 creates none.
    pub new_user_limit_micros: u64,
    /// That budget's period.
    pub new_user_period: PeriodConfig,
    /// That budget's currency (ISO 4217).
    pub new_user_currency: String,
}

impl Default for BudgetsConfig {
    fn default() -> Self {
        Self {
            timezone: "Asia/Shanghai".into(),
            reservation_ttl_secs: 900,
            sweep_interval_secs: 30,
            new_user_limit_micros: 0,
            new_user_period: PeriodConfig::Month,
            new_user_currency: "CNY".into(),
        }
    }
}

/// `[retention]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Finished AI call records older than this many days are deleted (rollups are kept);
    /// 0 keeps them forever.
    pub ai_calls_days: u64,
    /// System log entries older than this many days are deleted; 0 keeps them forever.
    pub system_logs_days: u64,
    /// Alerts (and their delivery records) older than this many days are deleted; 0 keeps them.
    pub alerts_days: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            ai_calls_days: 90,
            system_logs_days: 30,
            alerts_days: 90,
        }
    }
}

/// `[logs]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// Entries waiting to be written; past this, new entries are dropped (and counted), so
    /// logging never holds up a request.
    pub queue_capacity: usize,
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self {
            queue_capacity: 8192,
        }
    }
}

/// `[metrics]`: `/metrics` is open to loopback clients (`loopback = true`, the default) and to
/// anyone sending `Authorization: Bearer <token>` when `token` is set; everyone else gets 403.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Serve `/metrics` at all.
    pub enabled: bool,
    /// Open to clients on a loopback address.
    pub loopback: bool,
    /// A bearer token that opens it from anywhere (`CLOUDBASE_METRICS__TOKEN`).
    pub token: Option<Secret>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            loopback: true,
            token: None,
        }
    }
}

/// `[alerts]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// How often rules are evaluated and due deliveries sent, in milliseconds.
    pub evaluate_interval_ms: u64,
    /// Attempts per delivery before it is marked failed.
    pub max_delivery_attempts: u32,
    /// Wait before the first retry, in milliseconds; doubles with each attempt.
    pub retry_backoff_ms: u64,
    /// Let users point their own webhooks at loopback or private addresses (off: the server
    /// would otherwise reach internal services on their behalf).
    pub allow_private_targets: bool,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            evaluate_interval_ms: 15_000,
            max_delivery_attempts: 5,
            retry_backoff_ms: 5_000,
            allow_private_targets: false,
        }
    }
}

/// `[audit]`: the chainer, which links the rows requests write into the hash chain, on the one
/// instance holding the `audit-chain` lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// How often unchained rows are linked, in milliseconds (how far the chain runs behind).
    pub chain_interval_ms: u64,
    /// Most rows linked in one transaction (1–10000); a longer tail takes several in a row.
    pub chain_batch_size: u32,
    /// How long the chainer's lease lasts unrenewed, in milliseconds: how soon another instance
    /// takes over from one that died. Must be longer than `chain_interval_ms`.
    pub chain_lease_ttl_ms: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        let defaults = cloudbase_schema::services::audit::ChainSettings::default();
        Self {
            chain_interval_ms: u64::try_from(defaults.interval.as_millis()).unwrap_or(200),
            chain_batch_size: u32::try_from(defaults.batch_size).unwrap_or(500),
            chain_lease_ttl_ms: u64::try_from(defaults.lease_ttl.as_millis()).unwrap_or(3000),
        }
    }
}

/// `[chat]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChatConfig {
    /// Provider instance used when a chat names none.
    pub default_provider: String,
    /// Model used when a chat names none.
    pub default_model: String,
    /// Keep prompts and replies in call records too (they are always in conversations).
    pub log_prompts: bool,
    /// `"provider/model" = ["provider/model", ...]`: what to try, in order, when a model fails.
    pub fallbacks: BTreeMap<String, Vec<String>>,
    /// Most AI calls in flight on this instance; past it a call gets `UNAVAILABLE` (503) at once.
    /// 0 means 16 per database connection (`database.max_connections`).
    pub max_calls_in_flight: usize,
}

impl Default for ChatConfig {
    fn default() -> Self {
        let defaults = cloudbase_schema::services::chat::ChatSettings::default();
        Self {
            default_provider: defaults.default_provider,
            default_model: defaults.default_model,
            log_prompts: defaults.log_prompts,
            fallbacks: defaults.fallbacks,
            max_calls_in_flight: 0,
        }
    }
}

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

/// `[database]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// Most open connections.
    pub max_connections: usize,
    /// How long a request waits for a connection, in milliseconds.
    pub acquire_timeout_ms: u64,
}

/// `[auth]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Access-token lifetime in seconds (default 900, 15 minutes).
    pub access_token_ttl_secs: u64,
    /// Refresh-token lifetime in seconds (default 30 days); also how long an idle session lives.
    pub refresh_token_ttl_secs: u64,
    /// Who may register: `open` (default), `invite` or `closed`.
    pub registration: RegistrationConfig,
    /// How long a live session is trusted without reading the database again, in seconds.
    /// Every logout, revocation, password change, disable and role change forgets it at once on
    /// the instance where it happens, and on the others when their event arrives. Unset: 60 on
    /// SQLite (one instance: exact), 0 (off) on PostgreSQL, where another instance would accept
    /// an ended session for the moment the event takes to arrive.
    pub session_cache_secs: Option<u64>,
}

/// `[http]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Longest a GraphQL request may run, in seconds.
    pub request_timeout_secs: u64,
    /// How many proxies in front of the server append to `X-Forwarded-For`; the client's address
    /// is the entry the outermost one wrote (the N-th from the right). 0 (the default): the
    /// header is ignored and the client is the TCP peer.
    pub trusted_proxies: usize,
    /// When not empty, `X-Forwarded-For` is read only from peers in these networks
    /// (`10.0.0.0/8`, `127.0.0.1`, `2001:db8::/32`); other peers are the client themselves.
    pub proxy_networks: Vec<String>,
    /// The older form of `trusted_proxies = 1`; setting both is an error.
    pub trust_forwarded_for: bool,
    /// How long a client may take to send a request's headers (also how long an idle
    /// keep-alive connection waits for the next request), in seconds.
    pub header_read_timeout_secs: u64,
    /// How long a client may take to send a request's body, in seconds.
    pub body_read_timeout_secs: u64,
    /// How long a WebSocket may stay open without a `connection_init`, in seconds (then 4408).
    pub ws_init_timeout_secs: u64,
    /// Most operations running at once on one WebSocket.
    pub ws_max_operations: usize,
    /// Serve the GraphiQL playground at `/playground`; unset: on in `dev`, off in `prod`.
    pub playground: Option<bool>,
}

impl HttpConfig {
    /// The proxy hops in force: `trusted_proxies`, or 1 for `trust_forwarded_for = true`.
    pub fn proxy_hops(&self) -> usize {
        match (self.trusted_proxies, self.trust_forwarded_for) {
            (0, true) => 1,
            (n, _) => n,
        }
    }

    /// `proxy_networks`, parsed; a bare address is a network of one.
    pub fn proxy_networks(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        self.proxy_networks
            .iter()
            .map(|entry| {
                let entry = entry.trim();
                entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| {
                        invalid(
                            "http.proxy_networks",
                            format!("{entry:?} is not a network (`10.0.0.0/8`) or an address"),
                        )
                    })
            })
            .collect()
    }
}

/// `[graphql]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphqlConfig {
    /// Deepest nesting of selections.
    pub max_depth: usize,
    /// Highest complexity score.
    pub max_complexity: usize,
    /// Most aliases in one document.
    pub max_aliases: usize,
    /// Deepest nesting of brackets in a document, checked before parsing (at most 256).
    pub max_nesting: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            env: Environment::Dev,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            database_url: None,
            jwt_secret: None,
            bootstrap_admin_email: None,
            bootstrap_admin_password: None,
            log_format: LogFormat::Pretty,
            database: DatabaseConfig::default(),
            auth: AuthConfig::default(),
            http: HttpConfig::default(),
            graphql: GraphqlConfig::default(),
            plugins_dir: None,
            plugin_call_timeout_ms: 10_000,
            plugins: BTreeMap::new(),
            chat: ChatConfig::default(),
            prices_file: None,
            budgets: BudgetsConfig::default(),
            retention: RetentionConfig::default(),
            logs: LogsConfig::default(),
            metrics: MetricsConfig::default(),
            alerts: AlertsConfig::default(),
            audit: AuditConfig::default(),
            rate_limits: RateLimitsConfig::default(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout_ms: 5_000,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            registration: RegistrationConfig::Open,
            session_cache_secs: None,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            request_timeout_secs: 30,
            trusted_proxies: 0,
            proxy_networks: Vec::new(),
            trust_forwarded_for: false,
            header_read_timeout_secs: 10,
            body_read_timeout_secs: 30,
            ws_init_timeout_secs: 10,
            ws_max_operations: 100,
            playground: None,
        }
    }
}

impl Default for GraphqlConfig {
    fn default() -> Self {
        let limits = cloudbase_schema::Limits::default();
        Self {
            max_depth: limits.max_depth,
            max_complexity: limits.max_complexity,
            max_aliases: limits.max_aliases,
            max_nesting: limits.max_nesting,
        }
    }
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or environment did not parse into the expected types.
    #[error("{0}")]
    Load(#[from] Box<figment::Error>),
    /// A value parsed but is not acceptable.
    #[error("{key}: {message}")]
    Invalid {
        /// The config key, dotted.
        key: &'static str,
        /// What was expected.
        message: String,
    },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
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
        let config: Config = figment.extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        cloudbase_schema::db::Backend::of_url(&self.database_url())
            .map_err(|e| invalid("database_url", e.to_string()))?;
        if self.env == Environment::Prod {
            match &self.jwt_secret {
                None => {
                    return Err(invalid(
                        "jwt_secret",
                        "required when env = \"prod\"; set CLOUDBASE_JWT_SECRET to at least 32 random bytes",
                    ));
                }
                Some(s) if s.expose().len() < 32 => {
                    return Err(invalid("jwt_secret", "must be at least 32 bytes long"));
                }
                Some(_) => {}
            }
        }
        if self
            .jwt_secret
            .as_ref()
            .is_some_and(|s| s.expose().len() < 32)
        {
            return Err(invalid("jwt_secret", "must be at least 32 bytes long"));
        }
        if self.bootstrap_admin_email.is_some() != self.bootstrap_admin_password.is_some() {
            return Err(invalid(
                "bootstrap_admin_email",
                "set both bootstrap_admin_email and bootstrap_admin_password, or neither",
            ));
        }
        let positive: &[(&'static str, u64)] = &[
            (
                "database.max_connections",
                self.database.max_connections as u64,
            ),
            (
                "database.acquire_timeout_ms",
                self.database.acquire_timeout_ms,
            ),
            (
                "auth.access_token_ttl_secs",
                self.auth.access_token_ttl_secs,
            ),
            (
                "auth.refresh_token_ttl_secs",
                self.auth.refresh_token_ttl_secs,
            ),
            ("http.max_body_bytes", self.http.max_body_bytes as u64),
            ("http.request_timeout_secs", self.http.request_timeout_secs),
            ("graphql.max_depth", self.graphql.max_depth as u64),
            ("graphql.max_complexity", self.graphql.max_complexity as u64),
            ("graphql.max_nesting", self.graphql.max_nesting as u64),
            (
                "http.header_read_timeout_secs",
                self.http.header_read_timeout_secs,
            ),
            (
                "http.body_read_timeout_secs",
                self.http.body_read_timeout_secs,
            ),
            ("http.ws_init_timeout_secs", self.http.ws_init_timeout_secs),
            ("http.ws_max_operations", self.http.ws_max_operations as u64),
            ("plugin_call_timeout_ms", self.plugin_call_timeout_ms),
            (
                "budgets.reservation_ttl_secs",
                self.budgets.reservation_ttl_secs,
            ),
            (
                "budgets.sweep_interval_secs",
                self.budgets.sweep_interval_secs,
            ),
            (
                "rate_limits.login_window_secs",
                self.rate_limits.login_window_secs,
            ),
            ("logs.queue_capacity", self.logs.queue_capacity as u64),
            (
                "alerts.evaluate_interval_ms",
                self.alerts.evaluate_interval_ms,
            ),
            (
                "alerts.max_delivery_attempts",
                u64::from(self.alerts.max_delivery_attempts),
            ),
            ("alerts.retry_backoff_ms", self.alerts.retry_backoff_ms),
            ("audit.chain_interval_ms", self.audit.chain_interval_ms),
            (
                "audit.chain_batch_size",
                u64::from(self.audit.chain_batch_size),
            ),
            ("audit.chain_lease_ttl_ms", self.audit.chain_lease_ttl_ms),
        ];
        if self.http.trust_forwarded_for && self.http.trusted_proxies > 0 {
            return Err(invalid(
                "http.trust_forwarded_for",
                "replaced by http.trusted_proxies (trust_forwarded_for = true means 1); set only trusted_proxies",
            ));
        }
        self.http.proxy_networks()?;
        if let Some(token) = &self.metrics.token
            && token.expose().len() < 16
        {
            return Err(invalid("metrics.token", "must be at least 16 characters"));
        }
        if self.graphql.max_nesting > cloudbase_schema::graphql::nesting::MAX_NESTING_CEILING {
            return Err(invalid(
                "graphql.max_nesting",
                format!(
                    "at most {} (deeper documents risk the parser's stack)",
                    cloudbase_schema::graphql::nesting::MAX_NESTING_CEILING
                ),
            ));
        }
        self.timezone()?;
        let at_most: &[(&'static str, u64, u64, &str)] = &[
            (
                "rate_limits.login_window_secs",
                self.rate_limits.login_window_secs,
                86_400,
                "a day: older failures are pruned",
            ),
            (
                "rate_limits.login_backoff_max_secs",
                self.rate_limits.login_backoff_max_secs,
                86_400,
                "a day: older failures are pruned",
            ),
            (
                "rate_limits.login_trusted_address_days",
                self.rate_limits.login_trusted_address_days,
                3650,
                "ten years",
            ),
        ];
        for &(key, value, max, why) in at_most {
            if value > max {
                return Err(invalid(key, format!("must be at most {max} ({why})")));
            }
        }
        let currency = &self.budgets.new_user_currency;
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(invalid(
                "budgets.new_user_currency",
                format!("expected an ISO 4217 code such as CNY, got {currency:?}"),
            ));
        }
        if i64::try_from(self.budgets.new_user_limit_micros).is_err() {
            return Err(invalid(
                "budgets.new_user_limit_micros",
                "must be at most 9223372036854775807",
            ));
        }
        for &(key, value) in positive {
            if value == 0 {
                return Err(invalid(key, "must be greater than 0"));
            }
        }
        if self.audit.chain_batch_size > 10_000 {
            return Err(invalid("audit.chain_batch_size", "at most 10000"));
        }
        if self.audit.chain_lease_ttl_ms <= self.audit.chain_interval_ms {
            return Err(invalid(
                "audit.chain_lease_ttl_ms",
                "must be longer than audit.chain_interval_ms",
            ));
        }
        Ok(())
    }

    /// The database URL in force.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("cloudbase.db").display()))
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

    /// The budget time zone.
    pub fn timezone(&self) -> Result<chrono_tz::Tz, ConfigError> {
        self.budgets.timezone.parse().map_err(|_| {
            invalid(
                "budgets.timezone",
                format!(
                    "unknown time zone {:?}; expected an IANA name such as Asia/Shanghai",
                    self.budgets.timezone
                ),
            )
        })
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
        cloudbase_schema::services::audit::ChainSettings {
            interval: std::time::Duration::from_millis(self.audit.chain_interval_ms),
            batch_size: i64::from(self.audit.chain_batch_size),
            lease_ttl: std::time::Duration::from_millis(self.audit.chain_lease_ttl_ms),
        }
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
