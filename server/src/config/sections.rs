//! The sections the server itself reads: `[database]`, `[auth]`, `[http]`, `[graphql]`,
//! `[metrics]` and `[logs]`, each with its defaults.

use std::path::PathBuf;
use std::time::Duration;

use cloudbase_schema::services::registration::RegistrationMode;
use serde::{Deserialize, Serialize};

use super::validate::{ConfigError, invalid};
use super::{Secret, seconds};

/// `[database]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// Most open connections.
    pub max_connections: usize,
    /// How long a request waits for a connection, in milliseconds.
    pub acquire_timeout_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout_ms: 5_000,
        }
    }
}

impl DatabaseConfig {
    /// How long a request waits for a connection.
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.acquire_timeout_ms)
    }
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
    /// How long a live session or API key is trusted without reading the database again, in
    /// seconds (default 60; 0 turns the cache off). Every logout, revocation, password change,
    /// disable and role change forgets it everywhere before it returns: at once on SQLite; on
    /// PostgreSQL the change returns half a second after its commit, and an instance trusts its
    /// cache only while it knows it has heard every change that old (docs/security.md).
    pub session_cache_secs: Option<u64>,
    /// When true, an admin without two-step sign-in (TOTP) may only enrol in it: every other
    /// request gets `MFA_REQUIRED` (default false).
    pub require_mfa_for_admins: bool,
    /// The issuer shown in authenticator apps (default `CloudBase AI`; no `:`).
    pub mfa_issuer: String,
    /// The notifier instance (of the `email` plugin) that sends password reset links; unset, there
    /// is no reset by email (`requestPasswordReset` is `FORBIDDEN`).
    pub password_reset_channel: Option<String>,
    /// The link a reset email carries, with `{token}` where the token goes; required in prod when
    /// `password_reset_channel` is set. Unset in dev: this server's console at `listen`.
    pub password_reset_url: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            registration: RegistrationConfig::Open,
            session_cache_secs: None,
            require_mfa_for_admins: false,
            mfa_issuer: "CloudBase AI".into(),
            password_reset_channel: None,
            password_reset_url: None,
        }
    }
}

impl AuthConfig {
    /// How long an access token is valid.
    pub fn access_token_ttl(&self) -> chrono::Duration {
        seconds(self.access_token_ttl_secs)
    }

    /// How long a refresh token (and an idle session) lives.
    pub fn refresh_token_ttl(&self) -> chrono::Duration {
        seconds(self.refresh_token_ttl_secs)
    }

    /// How long a live session is trusted unread: `session_cache_secs`, unset 60 s.
    pub fn session_cache(&self) -> Duration {
        Duration::from_secs(self.session_cache_secs.unwrap_or(60))
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

impl From<RegistrationConfig> for RegistrationMode {
    fn from(r: RegistrationConfig) -> Self {
        match r {
            RegistrationConfig::Open => RegistrationMode::Open,
            RegistrationConfig::Invite => RegistrationMode::Invite,
            RegistrationConfig::Closed => RegistrationMode::Closed,
        }
    }
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
    /// On SIGTERM, how long calls and requests in flight may take to finish, in seconds (0-600),
    /// before what still runs is recorded as interrupted and the server exits. Keep it a few
    /// seconds under the supervisor's stop timeout (Docker's is 10 s, systemd's 90 s).
    pub shutdown_grace_secs: u64,
    /// Serve the GraphiQL playground at `/playground`; unset: on in `dev`, off in `prod`.
    pub playground: Option<bool>,
    /// Web origins (`https://app.example.com`) whose pages may call `/graphql` and the statement
    /// CSVs from the browser (CORS). Empty (the default): none but this server's own pages.
    pub cors_origins: Vec<String>,
    /// Serve the console from this folder (a `console/dist` being worked on) instead of the
    /// copy built into the binary, read again on every request. Only in `dev`; refused in `prod`.
    pub console_dir: Option<PathBuf>,
}

impl HttpConfig {
    /// Longest a GraphQL request may run.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    /// How long a client may take to send a request's headers.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs)
    }

    /// How long a client may take to send a request's body.
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_secs(self.body_read_timeout_secs)
    }

    /// How long calls in flight may take to finish at shutdown.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// How long a WebSocket may stay open without a `connection_init`.
    pub fn ws_init_timeout(&self) -> Duration {
        Duration::from_secs(self.ws_init_timeout_secs)
    }

    /// The proxy hops in force: `trusted_proxies`, or 1 for `trust_forwarded_for = true`.
    pub fn proxy_hops(&self) -> usize {
        match (self.trusted_proxies, self.trust_forwarded_for) {
            (0, true) => 1,
            (n, _) => n,
        }
    }

    /// `cors_origins`, checked: each an exact `http(s)://host[:port]`, with no path, and no `*`
    /// (a bearer token is worth more than a wildcard's convenience).
    pub fn cors_origins(&self) -> Result<Vec<axum::http::HeaderValue>, ConfigError> {
        self.cors_origins
            .iter()
            .map(|origin| {
                let bad = |why: &str| invalid("http.cors_origins", format!("{origin:?}: {why}"));
                let rest = origin
                    .strip_prefix("https://")
                    .or_else(|| origin.strip_prefix("http://"))
                    .ok_or_else(|| bad("an origin starts with https:// or http://"))?;
                if rest.is_empty()
                    || !rest.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                    })
                {
                    return Err(bad(
                        "an origin is a scheme, a host and an optional port, with no path",
                    ));
                }
                axum::http::HeaderValue::from_str(origin)
                    .map_err(|_| bad("not a valid header value"))
            })
            .collect()
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
            shutdown_grace_secs: 6,
            playground: None,
            console_dir: None,
            cors_origins: Vec::new(),
        }
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

/// `[wechat]`: WeChat mini-program sign-in (`wechatLogin`). On when both secrets are set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WeChatConfig {
    /// WeChat's `code2Session` endpoint (default `https://api.weixin.qq.com/sns/jscode2session`).
    pub code2session_url: String,
    /// Secret name → the environment variable holding it, as for plugins: `app_id` (default
    /// `WECHAT_APP_ID`) and `app_secret` (default `WECHAT_APP_SECRET`).
    pub secrets: std::collections::BTreeMap<String, String>,
    /// How long a call to WeChat may take, in milliseconds (default 5000).
    pub timeout_ms: u64,
}

impl Default for WeChatConfig {
    fn default() -> Self {
        Self {
            code2session_url: "https://api.weixin.qq.com/sns/jscode2session".into(),
            secrets: std::collections::BTreeMap::new(),
            timeout_ms: 5_000,
        }
    }
}

impl WeChatConfig {
    /// The app id and secret, read from their environment variables; `None` unless both are set.
    pub fn credentials(&self) -> Option<(String, String)> {
        let read = |name: &str, default: &str| {
            let var = self.secrets.get(name).map_or(default, String::as_str);
            std::env::var(var).ok().filter(|v| !v.trim().is_empty())
        };
        Some((
            read("app_id", "WECHAT_APP_ID")?,
            read("app_secret", "WECHAT_APP_SECRET")?,
        ))
    }
}
