//! The sections the services read: `[chat]`, `[budgets]`, `[rate_limits]`, `[alerts]`,
//! `[audit]` and `[retention]`, each with its defaults (the one place they are defined), and the
//! conversions that turn each into the settings its service takes.

use std::collections::BTreeMap;
use std::time::Duration;

use cloudbase_schema::services::alerts::AlertSettings;
use cloudbase_schema::services::audit::ChainSettings;
use cloudbase_schema::services::breakers::BreakerSettings;
use cloudbase_schema::services::budgets::{BudgetSettings, Period};
use cloudbase_schema::services::chat::ChatSettings;
use cloudbase_schema::services::login_throttle::LoginLimits;
use cloudbase_schema::services::maintenance::Retention;
use cloudbase_schema::services::rate_limits::RateLimitSettings;
use cloudbase_schema::services::registration::{NewUserBudget, RegistrationSettings};
use serde::{Deserialize, Serialize};

use super::validate::{ConfigError, invalid};
use super::{Config, seconds};

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
    /// `"public-name" = "provider/model"`: names the `/v1` door accepts as `model`.
    pub model_aliases: BTreeMap<String, String>,
    /// Most AI calls in flight on this instance; past it a call gets `UNAVAILABLE` (503) at once.
    /// 0 means 16 per database connection (`database.max_connections`).
    pub max_calls_in_flight: usize,
    /// `[chat.breaker]`: the circuit breaker of each provider instance.
    pub breaker: BreakerConfig,
}

/// `[chat.breaker]`: when a provider instance's circuit breaker opens, and for how long.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerConfig {
    /// Off: every call goes to its provider, however it is doing.
    pub enabled: bool,
    /// Failed attempts in the window before the breaker may open (1-10000).
    pub min_failures: u32,
    /// The share of failed attempts in the window, in percent, at which it opens (1-100).
    pub failure_rate_percent: u32,
    /// The window attempts are counted over, in seconds (1-3600).
    pub window_secs: u64,
    /// How long it stays open before probe calls go through, in seconds (1-3600).
    pub open_secs: u64,
    /// Probe calls let through at once when half-open; that many successes close it (1-100).
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        let d = BreakerSettings::default();
        Self {
            enabled: d.enabled,
            min_failures: d.min_failures,
            failure_rate_percent: d.failure_rate_percent,
            window_secs: d.window.as_secs(),
            open_secs: d.open_for.as_secs(),
            half_open_probes: d.half_open_probes,
        }
    }
}

impl BreakerConfig {
    /// Checks each threshold is in its range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let checks: [(&'static str, u64, u64, u64); 5] = [
            (
                "chat.breaker.min_failures",
                self.min_failures.into(),
                1,
                10_000,
            ),
            (
                "chat.breaker.failure_rate_percent",
                self.failure_rate_percent.into(),
                1,
                100,
            ),
            ("chat.breaker.window_secs", self.window_secs, 1, 3_600),
            ("chat.breaker.open_secs", self.open_secs, 1, 3_600),
            (
                "chat.breaker.half_open_probes",
                self.half_open_probes.into(),
                1,
                100,
            ),
        ];
        for (key, value, low, high) in checks {
            if !(low..=high).contains(&value) {
                return Err(invalid(key, format!("must be {low}-{high}, got {value}")));
            }
        }
        Ok(())
    }
}

impl From<&BreakerConfig> for BreakerSettings {
    fn from(b: &BreakerConfig) -> Self {
        Self {
            enabled: b.enabled,
            min_failures: b.min_failures,
            failure_rate_percent: b.failure_rate_percent,
            window: Duration::from_secs(b.window_secs),
            open_for: Duration::from_secs(b.open_secs),
            half_open_probes: b.half_open_probes,
        }
    }
}

impl Default for ChatConfig {
    fn default() -> Self {
        let defaults = ChatSettings::default();
        Self {
            default_provider: defaults.default_provider,
            default_model: defaults.default_model,
            log_prompts: defaults.log_prompts,
            fallbacks: defaults.fallbacks,
            model_aliases: defaults.model_aliases,
            max_calls_in_flight: 0,
            breaker: BreakerConfig::default(),
        }
    }
}

impl From<&ChatConfig> for ChatSettings {
    fn from(chat: &ChatConfig) -> Self {
        Self {
            default_provider: chat.default_provider.clone(),
            default_model: chat.default_model.clone(),
            log_prompts: chat.log_prompts,
            fallbacks: chat.fallbacks.clone(),
            model_aliases: chat.model_aliases.clone(),
            breaker: BreakerSettings::from(&chat.breaker),
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

impl BudgetsConfig {
    /// The time zone periods start over in.
    pub fn timezone(&self) -> Result<chrono_tz::Tz, ConfigError> {
        self.timezone.parse().map_err(|_| {
            invalid(
                "budgets.timezone",
                format!(
                    "unknown time zone {:?}; expected an IANA name such as Asia/Shanghai",
                    self.timezone
                ),
            )
        })
    }

    /// How long a call's reservation holds.
    pub fn reservation_ttl(&self) -> chrono::Duration {
        seconds(self.reservation_ttl_secs)
    }

    /// How often the sweeper and the retention job run.
    pub fn sweep_interval(&self) -> Duration {
        Duration::from_secs(self.sweep_interval_secs)
    }

    /// The budget a self-registered user starts with; none when `new_user_limit_micros` is 0.
    pub fn new_user_budget(&self) -> Option<NewUserBudget> {
        (self.new_user_limit_micros > 0).then(|| NewUserBudget {
            period: self.new_user_period.into(),
            currency: self.new_user_currency.clone(),
            limit_micros: i64::try_from(self.new_user_limit_micros).unwrap_or(i64::MAX),
        })
    }
}

impl TryFrom<&BudgetsConfig> for BudgetSettings {
    type Error = ConfigError;

    fn try_from(budgets: &BudgetsConfig) -> Result<Self, ConfigError> {
        Ok(Self {
            timezone: budgets.timezone()?,
            reservation_ttl: budgets.reservation_ttl(),
        })
    }
}

/// Who may register (`[auth] registration`) and the budget they start with (`[budgets]`).
impl From<&Config> for RegistrationSettings {
    fn from(config: &Config) -> Self {
        Self {
            mode: config.auth.registration.into(),
            new_user_budget: config.budgets.new_user_budget(),
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

impl From<PeriodConfig> for Period {
    fn from(p: PeriodConfig) -> Self {
        match p {
            PeriodConfig::Day => Period::Day,
            PeriodConfig::Week => Period::Week,
            PeriodConfig::Month => Period::Month,
            PeriodConfig::Total => Period::Total,
        }
    }
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

/// 0 turns a limit off.
impl From<&RateLimitsConfig> for RateLimitSettings {
    fn from(limits: &RateLimitsConfig) -> Self {
        let optional = |n: u64| (n > 0).then(|| i64::try_from(n).unwrap_or(i64::MAX));
        Self {
            requests_per_minute: optional(limits.requests_per_minute),
            tokens_per_minute: optional(limits.tokens_per_minute),
            login: LoginLimits {
                failures_per_account: optional(limits.login_failures_per_account)
                    .unwrap_or(i64::MAX),
                failures_per_address: optional(limits.login_failures_per_address)
                    .unwrap_or(i64::MAX),
                window: seconds(limits.login_window_secs),
                free_failures: i64::try_from(limits.login_failures_before_backoff)
                    .unwrap_or(i64::MAX),
                backoff_max: seconds(limits.login_backoff_max_secs),
                trusted_for: seconds(limits.login_trusted_address_days.saturating_mul(86_400)),
            },
            registrations_per_address: optional(limits.registrations_per_address),
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

impl From<&AlertsConfig> for AlertSettings {
    fn from(alerts: &AlertsConfig) -> Self {
        Self {
            evaluate_interval: Duration::from_millis(alerts.evaluate_interval_ms),
            max_attempts: alerts.max_delivery_attempts,
            retry_backoff: Duration::from_millis(alerts.retry_backoff_ms),
            allow_private_targets: alerts.allow_private_targets,
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
        let defaults = ChainSettings::default();
        Self {
            chain_interval_ms: u64::try_from(defaults.interval.as_millis()).unwrap_or(u64::MAX),
            chain_batch_size: u32::try_from(defaults.batch_size).unwrap_or(u32::MAX),
            chain_lease_ttl_ms: u64::try_from(defaults.lease_ttl.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

impl From<&AuditConfig> for ChainSettings {
    fn from(audit: &AuditConfig) -> Self {
        Self {
            interval: Duration::from_millis(audit.chain_interval_ms),
            batch_size: i64::from(audit.chain_batch_size),
            lease_ttl: Duration::from_millis(audit.chain_lease_ttl_ms),
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

impl From<&RetentionConfig> for Retention {
    fn from(retention: &RetentionConfig) -> Self {
        Self {
            ai_calls_days: retention.ai_calls_days,
            system_logs_days: retention.system_logs_days,
            alerts_days: retention.alerts_days,
        }
    }
}
