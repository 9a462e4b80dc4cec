//! Alerting: rules, their evaluation, and delivery through notifier plugins.
//!
//! [`run`] ticks every `evaluate_interval` on every instance, but only the holder of the
//! `alerts` lease (a row in `leases`, renewed each tick) evaluates and delivers, so N instances
//! do the work once (except `PLUGIN_FAILED`, which each instance evaluates for its own plugins). Exactly-once does not rest on the lease alone: each state change of a rule
//! for a subject is a compare-and-set on its `alert_states` row, the cooldown is a conditional
//! update of the rule, and each delivery attempt is claimed by a conditional update, all inside
//! one transaction per change. Everything lives in the database, so evaluation carries on after
//! a restart, and a delivery that was due is sent by whichever instance holds the lease.
//!
//! A firing inside the cooldown is recorded as suppressed: neither it nor its recovery is sent.
//!
//! - [`rules`]: checking, creating, changing and listing rules and the alerts they sent.
//! - [`evaluate`]: the lease-led loop and what each kind of rule watches.
//! - [`deliver`]: sending queued deliveries through notifier plugins, with bounded retries.
//! - [`targets`]: keeping users' own webhooks off this network.

pub mod deliver;
pub mod evaluate;
pub mod rules;
pub mod targets;

use std::time::Duration;

use async_graphql::Enum;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::db::alerts as queries;
use crate::db::models::AlertRule;
use crate::services::App;

pub use deliver::deliver_due;
pub use evaluate::{run, tick};
pub use rules::{
    PersonalChannel, create_personal_budget_alert, create_rule, delete_rule, find_alert,
    list_alerts, list_rules, set_enabled, update_rule,
};

/// The evaluator's settings.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// How often rules are evaluated and due deliveries sent.
    pub evaluate_interval: Duration,
    /// Attempts per delivery.
    pub max_attempts: u32,
    /// Wait before the first retry; doubles each time.
    pub retry_backoff: Duration,
    /// Users' own webhooks may point at loopback or private addresses.
    pub allow_private_targets: bool,
}

/// Most personal rules one user may have.
pub const MAX_PERSONAL_RULES: usize = 10;

/// What a rule watches.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RuleKind {
    /// A budget's spend reached `thresholdPercent` of its limit (once per budget and period).
    BudgetThreshold,
    /// More than `thresholdPercent` (1–99) of calls failed over `windowSecs` (at least `minCalls`).
    ErrorRate,
    /// A provider's last `consecutiveFailures` calls all failed, or its last call was refused for
    /// billing (`UPSTREAM_BILLING`: balance or quota used up); subject the provider, resolved by
    /// its next success. Or its circuit breaker is open or half-open on a node (subject
    /// `breaker:<provider>@<node>`; resolved when it closes).
    ProviderFailing,
    /// The p95 latency over `windowSecs` is above `latencyMs` (at least `minCalls`).
    LatencyP95,
    /// A plugin library or instance failed to load on a node (subject `<plugin>@<node>`); resolved
    /// when that node starts with it loaded. Every instance reports its own plugins.
    PluginFailed,
}

impl RuleKind {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BudgetThreshold => "BUDGET_THRESHOLD",
            Self::ErrorRate => "ERROR_RATE",
            Self::ProviderFailing => "PROVIDER_FAILING",
            Self::LatencyP95 => "LATENCY_P95",
            Self::PluginFailed => "PLUGIN_FAILED",
        }
    }

    /// From the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::BudgetThreshold,
            Self::ErrorRate,
            Self::ProviderFailing,
            Self::LatencyP95,
            Self::PluginFailed,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A rule's settings; which apply depends on its kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RuleParams {
    /// Percent: of the budget's limit, or of calls failing.
    pub threshold_percent: Option<i64>,
    /// Window, seconds.
    pub window_secs: Option<i64>,
    /// Fewest finished calls in the window before the rule judges.
    pub min_calls: Option<i64>,
    /// Failures in a row.
    pub consecutive_failures: Option<i64>,
    /// Latency limit, ms.
    pub latency_ms: Option<i64>,
    /// Only this provider instance.
    pub provider: Option<String>,
    /// Only this model.
    pub model: Option<String>,
    /// Only this budget.
    pub budget_id: Option<String>,
    /// Only this plugin (name or instance).
    pub plugin: Option<String>,
}

/// Where a rule's alerts go: a notifier instance, and optionally a destination of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// The notifier instance.
    pub channel: String,
    /// An email address or webhook URL instead of the instance's own (email and webhook only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// A rule as created or replaced.
#[derive(Debug, Clone)]
pub struct RuleInput {
    /// A name for people.
    pub name: String,
    /// What it watches.
    pub kind: RuleKind,
    /// Its settings.
    pub params: RuleParams,
    /// Where alerts go.
    pub targets: Vec<Target>,
    /// Least time between two firings (default 600).
    pub cooldown_secs: Option<i64>,
    /// Evaluated (default true).
    pub enabled: Option<bool>,
}

/// The rule's params and targets, parsed.
pub fn decode(rule: &AlertRule) -> (RuleParams, Vec<Target>) {
    (
        serde_json::from_str(&rule.params).unwrap_or_default(),
        serde_json::from_str(&rule.targets).unwrap_or_default(),
    )
}

/// Deletes alerts (with their deliveries) older than `days` days, and rule states that have
/// been quiet as long; returns how many alerts.
pub async fn prune(app: &App, days: u64) -> Result<usize, Error> {
    let cutoff =
        app.now() - chrono::Duration::days(i64::try_from(days).unwrap_or(i64::MAX / 86_400_000));
    let mut conn = app.db.get().await?;
    conn.write(async |c| {
        queries::delete_quiet_states_before(c, cutoff).await?;
        Ok(queries::delete_alerts_before(c, cutoff).await?)
    })
    .await
}
