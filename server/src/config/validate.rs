//! [`ConfigError`], and the checks on values that parse but make no sense.

use super::{Config, Environment};
use cloudbase_schema::services::sealing::MasterKey;

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

pub(super) fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

impl Config {
    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.backup.validate()?;
        self.chat.breaker.validate()?;
        if self.http.shutdown_grace_secs > 600 {
            return Err(invalid("http.shutdown_grace_secs", "must be 0-600"));
        }
        cloudbase_schema::db::Backend::of_url(&self.database_url())
            .map_err(|e| invalid("database_url", e.to_string()))?;
        if self.env == Environment::Prod
            && self.master_key.is_none()
            && self.master_key_file.is_none()
        {
            return Err(invalid(
                "master_key",
                "required when env = \"prod\": set CLOUDBASE_MASTER_KEY (32 random bytes in base64: \
                 `cloudbase-ai keys generate-master`) or master_key_file",
            ));
        }
        if self.master_key.is_some() && self.master_key_file.is_some() {
            return Err(invalid(
                "master_key",
                "give master_key or master_key_file, not both",
            ));
        }
        if let Some(keys) = &self.master_key {
            MasterKey::parse_list(keys.expose()).map_err(|e| invalid("master_key", e))?;
        }
        if self.env == Environment::Prod && self.http.console_dir.is_some() {
            return Err(invalid(
                "http.console_dir",
                "serving the console from a folder is for working on it (env = \"dev\") only",
            ));
        }
        if self
            .jwt_secret
            .as_ref()
            .is_some_and(|s| s.expose().len() < 32)
        {
            return Err(invalid("jwt_secret", "must be at least 32 bytes long"));
        }
        let issuer = self.auth.mfa_issuer.trim();
        if issuer.is_empty() || issuer.len() > 64 || issuer.contains(':') {
            return Err(invalid(
                "auth.mfa_issuer",
                "must be 1-64 characters without `:` (authenticator apps split on it)",
            ));
        }
        if let Some(channel) = &self.auth.password_reset_channel {
            // Only the email plugin sends to the one recipient; a group chat would post every
            // user's reset link to everyone in it.
            if self
                .plugins
                .get(channel)
                .is_none_or(|p| p.plugin != "email")
            {
                return Err(invalid(
                    "auth.password_reset_channel",
                    format!("must name an instance of the `email` plugin; {channel:?} is not one"),
                ));
            }
            if self.env == Environment::Prod && self.auth.password_reset_url.is_none() {
                return Err(invalid(
                    "auth.password_reset_url",
                    "required when env = \"prod\" and password_reset_channel is set: the public address of the console's reset page, with {token}",
                ));
            }
        }
        if let Some(url) = &self.auth.password_reset_url
            && (!url.contains("{token}")
                || !(url.starts_with("https://") || url.starts_with("http://")))
        {
            return Err(invalid(
                "auth.password_reset_url",
                "must be an http(s) URL containing {token}",
            ));
        }
        if let Some(unknown) = self
            .wechat
            .secrets
            .keys()
            .find(|k| !["app_id", "app_secret"].contains(&k.as_str()))
        {
            return Err(invalid(
                "wechat.secrets",
                format!("unknown secret `{unknown}`; expected app_id and app_secret"),
            ));
        }
        if !(self.wechat.code2session_url.starts_with("https://")
            || self.wechat.code2session_url.starts_with("http://"))
        {
            return Err(invalid("wechat.code2session_url", "must be an http(s) URL"));
        }
        if self.env == Environment::Prod {
            // A forged answer over plain HTTP would sign anyone in; a reset link over it would
            // hand the token to the network.
            if !self.wechat.code2session_url.starts_with("https://") {
                return Err(invalid(
                    "wechat.code2session_url",
                    "must be https:// when env = \"prod\"",
                ));
            }
            if self
                .auth
                .password_reset_url
                .as_deref()
                .is_some_and(|u| !u.starts_with("https://"))
            {
                return Err(invalid(
                    "auth.password_reset_url",
                    "must be https:// when env = \"prod\"",
                ));
            }
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
        self.http.cors_origins()?;
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
            (
                "plugins_watch_secs",
                self.plugins_watch_secs,
                3600,
                "an hour; 0 turns the watch off",
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
        for (alias, target) in &self.chat.model_aliases {
            let whole = target
                .split_once('/')
                .is_some_and(|(p, m)| !p.is_empty() && !m.is_empty());
            if alias.is_empty() || !whole {
                return Err(invalid(
                    "chat.model_aliases",
                    format!("`{alias}` must map to a \"provider/model\", got {target:?}"),
                ));
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
}
