//! Alerting: rules, the alerts they raised, and their deliveries.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::{alert_deliveries, alert_rules, alerts};
use crate::domain::DeliveryStatus;

/// A row of `alert_rules`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = alert_rules, treat_none_as_null = true, treat_none_as_default_value = false)]
pub struct AlertRule {
    /// UUIDv7.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// `BUDGET_THRESHOLD`, `ERROR_RATE`, `PROVIDER_FAILING`, `LATENCY_P95` or `PLUGIN_FAILED`.
    pub kind: String,
    /// The kind's settings, JSON.
    pub params: String,
    /// Notifier targets, a JSON array of `{channel, to}`.
    pub targets: String,
    /// Least time between two firings.
    pub cooldown_secs: i64,
    /// Evaluated at all.
    pub enabled: bool,
    /// The user whose own rule this is; `None` for an admin rule.
    pub owner_id: Option<String>,
    /// When it last fired (the cooldown clock).
    pub last_fired_at: Option<NaiveDateTime>,
    /// Created.
    pub created_at: NaiveDateTime,
    /// Last changed.
    pub updated_at: NaiveDateTime,
}

/// A row of `alerts`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = alerts, treat_none_as_default_value = false)]
pub struct AlertRow {
    /// UUIDv7.
    pub id: String,
    /// The rule.
    pub rule_id: String,
    /// The rule's owner, if a user's.
    pub owner_id: Option<String>,
    /// What it is about: a provider, plugin, budget period, or `*`.
    pub subject: String,
    /// `FIRING` or `RESOLVED`.
    pub state: String,
    /// `INFO`, `WARNING` or `CRITICAL`.
    pub severity: String,
    /// Headline.
    pub title: String,
    /// Text.
    pub body: String,
    /// When.
    pub at: NaiveDateTime,
}

/// A row of `alert_deliveries`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = alert_deliveries, treat_none_as_default_value = false)]
pub struct DeliveryRow {
    /// UUIDv7.
    pub id: String,
    /// The alert.
    pub alert_id: String,
    /// The notifier instance.
    pub channel: String,
    /// A per-message destination (a user's own email or webhook).
    pub recipient: Option<String>,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it is due.
    pub next_attempt_at: NaiveDateTime,
    /// A claim by one instance, until then.
    pub claimed_until: Option<NaiveDateTime>,
    /// When it was delivered.
    pub delivered_at: Option<NaiveDateTime>,
}
