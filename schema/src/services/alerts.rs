//! Alerting: rules, their evaluation, and delivery through notifier plugins.
//!
//! [`run`] ticks every `evaluate_interval` on every instance, but only the holder of the
//! `alerts` lease (a row in `leases`, renewed each tick) evaluates and delivers, so N instances
//! do the work once. Exactly-once does not rest on the lease alone: each state change of a rule
//! for a subject is a compare-and-set on its `alert_states` row, the cooldown is a conditional
//! update of the rule, and each delivery attempt is claimed by a conditional update, all inside
//! one transaction per change. Everything lives in the database, so evaluation carries on after
//! a restart, and a delivery that was due is sent by whichever instance holds the lease.
//!
//! A firing inside the cooldown is recorded as suppressed: neither it nor its recovery is sent.

use std::sync::Arc;
use std::time::Duration;

use async_graphql::Enum;
use chrono::NaiveDateTime;
use cloudbase_plugin_api::{Notification, Severity};
use serde::{Deserialize, Serialize};

use super::{App, Viewer, validate};
use crate::Error;
use crate::db::alerts::{self as queries, AlertRow, AlertRule, DeliveryRow};
use crate::db::budgets as budget_queries;
use crate::db::stats::{self, Scope};
use crate::events::Event;
use crate::plugins::{PluginKind, PluginStatus};

/// The evaluator's settings.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// How often rules are evaluated and due deliveries sent.
    pub evaluate_interval: Duration,
    /// Attempts per delivery.
    pub max_attempts: u32,
    /// Wait before the first retry; doubles each time.
    pub retry_backoff: Duration,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            evaluate_interval: Duration::from_secs(15),
            max_attempts: 5,
            retry_backoff: Duration::from_secs(5),
        }
    }
}

/// What a rule watches.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RuleKind {
    /// A budget's spend reached `thresholdPercent` of its limit (once per budget and period).
    BudgetThreshold,
    /// More than `thresholdPercent` of calls failed over `windowSecs` (at least `minCalls`).
    ErrorRate,
    /// A provider's last `consecutiveFailures` calls all failed; resolved by its next success.
    ProviderFailing,
    /// The p95 latency over `windowSecs` is above `latencyMs` (at least `minCalls`).
    LatencyP95,
    /// A plugin library or instance failed to load.
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

fn range(
    field: &'static str,
    v: Option<i64>,
    default: Option<i64>,
    lo: i64,
    hi: i64,
) -> Result<Option<i64>, Error> {
    match v.or(default) {
        Some(n) if !(lo..=hi).contains(&n) => Err(Error::bad_input(
            field,
            format!("{field} must be between {lo} and {hi}"),
        )),
        Some(n) => Ok(Some(n)),
        None => Err(Error::bad_input(
            field,
            format!("{field} is required for this kind"),
        )),
    }
}

/// Checks params for `kind` and fills in defaults.
fn check_params(kind: RuleKind, p: RuleParams) -> Result<RuleParams, Error> {
    let mut out = RuleParams {
        provider: p.provider.filter(|s| !s.trim().is_empty()),
        model: p.model.filter(|s| !s.trim().is_empty()),
        ..RuleParams::default()
    };
    match kind {
        RuleKind::BudgetThreshold => {
            out.threshold_percent = range(
                "params.thresholdPercent",
                p.threshold_percent,
                None,
                1,
                1000,
            )?;
            if let Some(id) = p.budget_id {
                validate::id("params.budgetId", &id)?;
                out.budget_id = Some(id);
            }
            (out.provider, out.model) = (None, None);
        }
        RuleKind::ErrorRate => {
            out.threshold_percent =
                range("params.thresholdPercent", p.threshold_percent, None, 1, 100)?;
            out.window_secs = range("params.windowSecs", p.window_secs, Some(300), 10, 86_400)?;
            out.min_calls = range("params.minCalls", p.min_calls, Some(5), 1, 100_000)?;
        }
        RuleKind::ProviderFailing => {
            out.consecutive_failures = range(
                "params.consecutiveFailures",
                p.consecutive_failures,
                Some(3),
                1,
                1000,
            )?;
            out.model = None;
        }
        RuleKind::LatencyP95 => {
            out.latency_ms = range("params.latencyMs", p.latency_ms, None, 1, 3_600_000)?;
            out.window_secs = range("params.windowSecs", p.window_secs, Some(300), 10, 86_400)?;
            out.min_calls = range("params.minCalls", p.min_calls, Some(5), 1, 100_000)?;
        }
        RuleKind::PluginFailed => {
            out.plugin = p.plugin.filter(|s| !s.trim().is_empty());
            (out.provider, out.model) = (None, None);
        }
    }
    Ok(out)
}

/// The plugin behind notifier instance `channel`, if it is loaded.
fn notifier_plugin(app: &App, channel: &str) -> Option<String> {
    app.plugins
        .plugins()
        .into_iter()
        .find(|r| {
            r.instance.as_deref() == Some(channel)
                && r.kind == Some(PluginKind::Notifier)
                && r.status == PluginStatus::Loaded
        })
        .map(|r| r.name)
}

fn check_targets(app: &App, targets: Vec<Target>) -> Result<Vec<Target>, Error> {
    if targets.is_empty() || targets.len() > 10 {
        return Err(Error::bad_input("targets", "give 1 to 10 targets"));
    }
    targets
        .into_iter()
        .map(|t| {
            let Some(plugin) = notifier_plugin(app, &t.channel) else {
                return Err(Error::bad_input(
                    "targets.channel",
                    format!(
                        "`{}` is not a loaded notifier instance; see `plugins`",
                        t.channel
                    ),
                ));
            };
            let to = match (t.to.as_deref().map(str::trim), plugin.as_str()) {
                (None | Some(""), _) => None,
                (Some(to), "email") => Some(validate::email("targets.to", to)?),
                (Some(to), "webhook") => Some(validate::url("targets.to", to)?),
                (Some(_), _) => {
                    return Err(Error::bad_input(
                        "targets.to",
                        "only email and webhook channels take their own destination",
                    ));
                }
            };
            Ok(Target {
                channel: t.channel,
                to,
            })
        })
        .collect()
}

fn check_name(name: &str) -> Result<String, Error> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(Error::bad_input("name", "name must be 1-100 characters"));
    }
    Ok(name.to_owned())
}

fn check_cooldown(secs: Option<i64>) -> Result<i64, Error> {
    range("cooldownSecs", secs, Some(600), 0, 7 * 86_400).map(|v| v.unwrap_or(600))
}

fn json<T: Serialize>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| Error::Internal(format!("encoding a rule: {e}")))
}

/// Creates a rule (admin only).
pub async fn create_rule(app: &App, viewer: &Viewer, input: RuleInput) -> Result<AlertRule, Error> {
    viewer.require_admin()?;
    let now = app.now();
    let rule = AlertRule {
        id: uuid::Uuid::now_v7().to_string(),
        name: check_name(&input.name)?,
        kind: input.kind.as_str().to_owned(),
        params: json(&check_params(input.kind, input.params)?)?,
        targets: json(&check_targets(app, input.targets)?)?,
        cooldown_secs: check_cooldown(input.cooldown_secs)?,
        enabled: input.enabled.unwrap_or(true),
        owner_id: None,
        last_fired_at: None,
        created_at: now,
        updated_at: now,
    };
    let mut conn = app.db.get().await?;
    queries::insert_rule(&mut conn, &rule).await?;
    Ok(rule)
}

/// How a user wants their own budget alerts.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonalChannel {
    /// By email, through the `email` plugin.
    Email,
    /// To a webhook URL, through the `webhook` plugin.
    Webhook,
}

/// Opts the viewer in to alerts when one of their budgets reaches `threshold_percent`.
pub async fn create_personal_budget_alert(
    app: &App,
    viewer: &Viewer,
    threshold_percent: i64,
    channel: PersonalChannel,
    address: &str,
    cooldown_secs: Option<i64>,
) -> Result<AlertRule, Error> {
    let plugin = match channel {
        PersonalChannel::Email => "email",
        PersonalChannel::Webhook => "webhook",
    };
    let instance = app
        .plugins
        .plugins()
        .into_iter()
        .find(|r| {
            r.name == plugin
                && r.kind == Some(PluginKind::Notifier)
                && r.status == PluginStatus::Loaded
        })
        .and_then(|r| r.instance)
        .ok_or_else(|| {
            Error::Unavailable(format!(
                "no {plugin} channel is configured on this server; ask an admin to add one"
            ))
        })?;
    let targets = check_targets(
        app,
        vec![Target {
            channel: instance,
            to: Some(address.to_owned()),
        }],
    )
    .map_err(|e| match e {
        Error::BadInput { message, .. } => Error::bad_input("address", message),
        other => other,
    })?;
    let params = check_params(
        RuleKind::BudgetThreshold,
        RuleParams {
            threshold_percent: Some(threshold_percent),
            ..RuleParams::default()
        },
    )?;
    let now = app.now();
    let rule = AlertRule {
        id: uuid::Uuid::now_v7().to_string(),
        name: format!("My budgets at {threshold_percent}%"),
        kind: RuleKind::BudgetThreshold.as_str().to_owned(),
        params: json(&params)?,
        targets: json(&targets)?,
        cooldown_secs: check_cooldown(cooldown_secs)?,
        enabled: true,
        owner_id: Some(viewer.user_id.clone()),
        last_fired_at: None,
        created_at: now,
        updated_at: now,
    };
    let mut conn = app.db.get().await?;
    queries::insert_rule(&mut conn, &rule).await?;
    Ok(rule)
}

/// A rule the viewer may change: any for an admin, their own for a user.
async fn owned_rule(app: &App, viewer: &Viewer, id: &str) -> Result<AlertRule, Error> {
    validate::id("id", id)?;
    let mut conn = app.db.get().await?;
    match queries::find_rule(&mut conn, id).await? {
        Some(r) if viewer.is_admin() || r.owner_id.as_deref() == Some(viewer.user_id.as_str()) => {
            Ok(r)
        }
        _ => Err(Error::NotFound("no such alert rule")),
    }
}

/// Replaces a rule's settings (admin only; the kind stays).
pub async fn update_rule(
    app: &App,
    viewer: &Viewer,
    id: &str,
    input: RuleInput,
) -> Result<AlertRule, Error> {
    viewer.require_admin()?;
    let mut rule = owned_rule(app, viewer, id).await?;
    if rule.kind != input.kind.as_str() {
        return Err(Error::bad_input(
            "kind",
            "a rule's kind cannot change; create a new rule",
        ));
    }
    rule.name = check_name(&input.name)?;
    rule.params = json(&check_params(input.kind, input.params)?)?;
    rule.targets = json(&check_targets(app, input.targets)?)?;
    rule.cooldown_secs = check_cooldown(input.cooldown_secs)?;
    rule.enabled = input.enabled.unwrap_or(rule.enabled);
    rule.updated_at = app.now();
    let mut conn = app.db.get().await?;
    queries::update_rule(&mut conn, &rule).await?;
    Ok(rule)
}

/// Turns a rule on or off (admin, or the owner of a personal rule).
pub async fn set_enabled(
    app: &App,
    viewer: &Viewer,
    id: &str,
    enabled: bool,
) -> Result<AlertRule, Error> {
    let mut rule = owned_rule(app, viewer, id).await?;
    rule.enabled = enabled;
    rule.updated_at = app.now();
    let mut conn = app.db.get().await?;
    queries::update_rule(&mut conn, &rule).await?;
    Ok(rule)
}

/// Deletes a rule (admin, or the owner of a personal rule).
pub async fn delete_rule(app: &App, viewer: &Viewer, id: &str) -> Result<bool, Error> {
    let rule = owned_rule(app, viewer, id).await?;
    let mut conn = app.db.get().await?;
    Ok(queries::delete_rule(&mut conn, &rule.id).await? == 1)
}

/// Rules: all for an admin, their own for a user.
pub async fn list_rules(app: &App, viewer: &Viewer) -> Result<Vec<AlertRule>, Error> {
    let mut conn = app.db.get().await?;
    let owner = (!viewer.is_admin()).then_some(viewer.user_id.as_str());
    Ok(queries::list_rules(&mut conn, owner).await?)
}

/// A page of alerts, newest first, with their deliveries: all for an admin, their own for a user.
pub async fn list_alerts(
    app: &App,
    viewer: &Viewer,
    rule_id: Option<&str>,
    first: Option<i32>,
    after: Option<&str>,
) -> Result<(Vec<(AlertRow, Vec<DeliveryRow>)>, bool), Error> {
    let limit = validate::page_size(first)?;
    for (field, v) in [("ruleId", rule_id), ("after", after)] {
        if let Some(v) = v {
            validate::id(field, v)?;
        }
    }
    let owner = (!viewer.is_admin()).then_some(viewer.user_id.as_str());
    let mut conn = app.db.get().await?;
    let mut rows = queries::page_alerts(&mut conn, owner, rule_id, after, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok((with_deliveries(&mut conn, rows).await?, more))
}

/// One alert with its deliveries, if the viewer may see it.
pub async fn find_alert(
    app: &App,
    viewer: &Viewer,
    id: &str,
) -> Result<Option<(AlertRow, Vec<DeliveryRow>)>, Error> {
    let mut conn = app.db.get().await?;
    let Some(alert) = queries::find_alert(&mut conn, id).await? else {
        return Ok(None);
    };
    if !viewer.is_admin() && alert.owner_id.as_deref() != Some(viewer.user_id.as_str()) {
        return Ok(None);
    }
    Ok(with_deliveries(&mut conn, vec![alert]).await?.pop())
}

async fn with_deliveries(
    conn: &mut crate::db::DbConn,
    alerts: Vec<AlertRow>,
) -> Result<Vec<(AlertRow, Vec<DeliveryRow>)>, Error> {
    let ids: Vec<String> = alerts.iter().map(|a| a.id.clone()).collect();
    let mut deliveries = queries::deliveries_of(conn, &ids).await?;
    Ok(alerts
        .into_iter()
        .map(|a| {
            let mine;
            (mine, deliveries) = deliveries.drain(..).partition(|d| d.alert_id == a.id);
            (a, mine)
        })
        .collect())
}

/// Runs the evaluator until the task is aborted.
pub async fn run(app: Arc<App>) {
    let interval = app.alert_settings.evaluate_interval;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(e) = tick(&app).await {
            tracing::warn!(error = %e, "alert evaluation failed");
        }
    }
}

/// One round: take or renew the lease; if held, evaluate every rule and send due deliveries.
pub async fn tick(app: &App) -> Result<bool, Error> {
    let now = app.now();
    let ttl = chrono::Duration::from_std(app.alert_settings.evaluate_interval * 3)
        .unwrap_or(chrono::Duration::seconds(45));
    let leader = {
        let mut conn = app.db.get().await?;
        queries::acquire_lease(&mut conn, "alerts", app.events.origin(), now, now + ttl).await?
    };
    if !leader {
        return Ok(false);
    }
    let rules = {
        let mut conn = app.db.get().await?;
        queries::enabled_rules(&mut conn).await?
    };
    for rule in rules {
        if let Err(e) = evaluate(app, &rule).await {
            tracing::warn!(alert_rule.id = %rule.id, error = %e, "evaluating an alert rule failed");
        }
    }
    deliver_due(app).await?;
    Ok(true)
}

/// What a rule saw for one subject: firing or not, and why.
struct Observation {
    subject: String,
    firing: bool,
    detail: String,
}

async fn evaluate(app: &App, rule: &AlertRule) -> Result<(), Error> {
    let Some(kind) = RuleKind::parse(&rule.kind) else {
        return Ok(());
    };
    let (p, _) = decode(rule);
    let now = app.now();
    let mut seen = Vec::new();
    let mut conn = app.db.get().await?;
    let window = |secs: Option<i64>| now - chrono::Duration::seconds(secs.unwrap_or(300));
    let scope_name = |p: &RuleParams| match (&p.provider, &p.model) {
        (None, None) => "*".to_owned(),
        (prov, model) => format!(
            "{}/{}",
            prov.as_deref().unwrap_or("*"),
            model.as_deref().unwrap_or("*")
        ),
    };
    match kind {
        RuleKind::ErrorRate => {
            let scope = Scope {
                since: window(p.window_secs),
                provider: p.provider.as_deref(),
                model: p.model.as_deref(),
            };
            let (total, failed) = stats::outcomes(&mut conn, &scope).await?;
            if total >= p.min_calls.unwrap_or(1) {
                let percent = failed * 100 / total.max(1);
                let limit = p.threshold_percent.unwrap_or(100);
                seen.push(Observation {
                    subject: scope_name(&p),
                    firing: failed * 100 > limit * total,
                    detail: format!(
                        "{failed} of {total} calls failed ({percent}%) in the last {}s; the limit is {limit}%",
                        p.window_secs.unwrap_or(300)
                    ),
                });
            }
        }
        RuleKind::LatencyP95 => {
            let scope = Scope {
                since: window(p.window_secs),
                provider: p.provider.as_deref(),
                model: p.model.as_deref(),
            };
            let (total, _) = stats::outcomes(&mut conn, &scope).await?;
            if total >= p.min_calls.unwrap_or(1)
                && let Some(p95) = stats::latency_quantile(&mut conn, &scope, 0.95).await?
            {
                let limit = p.latency_ms.unwrap_or(i64::MAX);
                seen.push(Observation {
                    subject: scope_name(&p),
                    firing: p95 > limit,
                    detail: format!(
                        "p95 latency {p95} ms over {total} calls in the last {}s; the limit is {limit} ms",
                        p.window_secs.unwrap_or(300)
                    ),
                });
            }
        }
        RuleKind::ProviderFailing => {
            let n = p.consecutive_failures.unwrap_or(3);
            let providers = match &p.provider {
                Some(one) => vec![one.clone()],
                None => stats::providers_since(&mut conn, now - chrono::Duration::days(1)).await?,
            };
            for provider in providers {
                let last = stats::last_statuses(&mut conn, &provider, n).await?;
                let all_failed = last.len() as i64 == n && last.iter().all(|s| s == "FAILED");
                let recovered = last.first().is_some_and(|s| s == "SUCCEEDED");
                if all_failed || recovered {
                    seen.push(Observation {
                        detail: if all_failed {
                            format!("the last {n} calls to `{provider}` failed")
                        } else {
                            format!("`{provider}` answered again")
                        },
                        subject: provider,
                        firing: all_failed,
                    });
                }
            }
        }
        RuleKind::BudgetThreshold => {
            let threshold = p.threshold_percent.unwrap_or(100);
            let budgets = budget_queries::list(&mut conn, rule.owner_id.as_deref()).await?;
            for b in budgets {
                let current = b.period_end.is_none_or(|end| end > now);
                let mine = rule.owner_id.is_none() || b.user_id == rule.owner_id;
                let wanted = p.budget_id.as_ref().is_none_or(|id| *id == b.id);
                if !(current && mine && wanted) || b.limit_micros <= 0 {
                    continue;
                }
                let used = i128::from(b.spent_micros) * 100 / i128::from(b.limit_micros);
                if used >= i128::from(threshold) {
                    seen.push(Observation {
                        subject: format!("{}@{}", b.id, b.period_start.and_utc().to_rfc3339()),
                        firing: true,
                        detail: format!(
                            "{} of {} {} spent ({used}%) of the {} budget; the alert is at {threshold}%",
                            b.spent_micros as f64 / 1e6,
                            b.limit_micros as f64 / 1e6,
                            b.currency,
                            b.period.to_lowercase()
                        ),
                    });
                }
            }
        }
        RuleKind::PluginFailed => {
            for row in app.plugins.plugins() {
                let subject = row.instance.clone().unwrap_or_else(|| row.name.clone());
                if p.plugin
                    .as_ref()
                    .is_some_and(|w| *w != subject && *w != row.name)
                {
                    continue;
                }
                match row.status {
                    PluginStatus::Failed => seen.push(Observation {
                        detail: format!(
                            "plugin `{subject}` failed: {}",
                            row.reason.as_deref().unwrap_or("unknown reason")
                        ),
                        subject,
                        firing: true,
                    }),
                    PluginStatus::Loaded => seen.push(Observation {
                        detail: format!("plugin `{subject}` loaded"),
                        subject,
                        firing: false,
                    }),
                    PluginStatus::Disabled => {}
                }
            }
        }
    }
    drop(conn);
    for o in seen {
        apply(app, rule, kind, o).await?;
    }
    Ok(())
}

/// Moves the rule's state for one subject and, when it changed and the cooldown allows, records
/// the alert and queues its deliveries; all in one transaction.
async fn apply(app: &App, rule: &AlertRule, kind: RuleKind, o: Observation) -> Result<(), Error> {
    let now = app.now();
    let cooldown_over = now - chrono::Duration::seconds(rule.cooldown_secs);
    let (_, targets) = decode(rule);
    let mut conn = app.db.get().await?;
    let fired = conn
        .transaction(async |tx| {
            if !queries::transition(tx, &rule.id, &o.subject, o.firing, now).await? {
                return Ok(None);
            }
            let send = if o.firing {
                let send = queries::take_cooldown(tx, &rule.id, now, cooldown_over).await?;
                queries::set_suppressed(tx, &rule.id, &o.subject, !send).await?;
                send
            } else {
                let suppressed = queries::state(tx, &rule.id, &o.subject)
                    .await?
                    .is_some_and(|(_, s)| s);
                !suppressed
            };
            if !send {
                return Ok(None);
            }
            let (state, severity) = match (o.firing, kind) {
                (false, _) => ("RESOLVED", "RESOLVED"),
                (true, RuleKind::BudgetThreshold) => ("FIRING", "WARNING"),
                (true, _) => ("FIRING", "CRITICAL"),
            };
            let alert = AlertRow {
                id: uuid::Uuid::now_v7().to_string(),
                rule_id: rule.id.clone(),
                owner_id: rule.owner_id.clone(),
                subject: o.subject.clone(),
                state: state.to_owned(),
                severity: severity.to_owned(),
                title: match o.firing {
                    true => format!("{}: firing ({})", rule.name, o.subject),
                    false => format!("{}: resolved ({})", rule.name, o.subject),
                },
                body: o.detail.clone(),
                at: now,
            };
            let deliveries: Vec<DeliveryRow> = targets
                .iter()
                .map(|t| DeliveryRow {
                    id: uuid::Uuid::now_v7().to_string(),
                    alert_id: alert.id.clone(),
                    channel: t.channel.clone(),
                    recipient: t.to.clone(),
                    status: "PENDING".into(),
                    attempts: 0,
                    last_error: None,
                    next_attempt_at: now,
                    claimed_until: None,
                    delivered_at: None,
                })
                .collect();
            queries::insert_alert(tx, &alert, &deliveries).await?;
            Ok(Some(alert))
        })
        .await?;
    if let Some(alert) = fired {
        tracing::warn!(
            target: "cloudbase::event::alert",
            state = %alert.state, alert.id = %alert.id, alert_rule.id = %rule.id,
            subject = %alert.subject, "{}", alert.title
        );
        let labels = [("kind", rule.kind.clone()), ("state", alert.state.clone())];
        app.metrics
            .record(|| metrics::counter!("cloudbase_alerts_total", &labels).increment(1));
        app.events.publish(Event::AlertFired {
            alert_id: alert.id,
            owner_id: alert.owner_id,
        });
    }
    Ok(())
}

/// Sends every due delivery once; failures are retried later with backoff, up to the bound.
pub async fn deliver_due(app: &App) -> Result<(), Error> {
    let now = app.now();
    let due = {
        let mut conn = app.db.get().await?;
        queries::due_deliveries(&mut conn, now, 100).await?
    };
    for d in due {
        let claimed = {
            let mut conn = app.db.get().await?;
            queries::claim_delivery(&mut conn, &d, now + chrono::Duration::seconds(120)).await?
        };
        if claimed {
            deliver(app, d).await?;
        }
    }
    Ok(())
}

async fn deliver(app: &App, d: DeliveryRow) -> Result<(), Error> {
    let attempt = d.attempts + 1;
    let alert = {
        let mut conn = app.db.get().await?;
        queries::find_alert(&mut conn, &d.alert_id).await?
    };
    let Some(alert) = alert else {
        return Ok(());
    };
    let notification = Notification {
        title: alert.title.clone(),
        body: alert.body.clone(),
        severity: match alert.severity.as_str() {
            "RESOLVED" => Severity::Resolved,
            "WARNING" => Severity::Warning,
            "INFO" => Severity::Info,
            _ => Severity::Critical,
        },
        timestamp_ms: alert.at.and_utc().timestamp_millis(),
        fields: vec![
            ("state".into(), alert.state.clone()),
            ("subject".into(), alert.subject.clone()),
            ("alert".into(), alert.id.clone()),
        ],
        link: None,
        recipient: d.recipient.clone(),
    };
    let outcome = match app.plugins.notify(&d.channel, notification).await {
        Ok(report) if report.ok => Ok(()),
        Ok(report) => Err(report.detail),
        Err(e) => {
            super::plugins::count_call_error(app, &d.channel, &e);
            Err(e.to_string())
        }
    };
    let now = app.now();
    let max = i64::from(app.alert_settings.max_attempts);
    let (status, error, next) = match &outcome {
        Ok(()) => ("DELIVERED", None, now),
        Err(e) if attempt >= max => ("FAILED", Some(e.chars().take(500).collect::<String>()), now),
        Err(e) => {
            let backoff = app.alert_settings.retry_backoff
                * 2u32.saturating_pow(u32::try_from(attempt - 1).unwrap_or(16).min(16));
            let wait = chrono::Duration::from_std(backoff).unwrap_or(chrono::Duration::hours(1));
            (
                "PENDING",
                Some(e.chars().take(500).collect::<String>()),
                now + wait,
            )
        }
    };
    if let Err(e) = &outcome {
        tracing::warn!(
            target: "cloudbase::event::alert",
            channel = %d.channel, alert.id = %alert.id, attempt, error = %e, status,
            "alert delivery failed"
        );
    }
    let mut conn = app.db.get().await?;
    let delivered_at = outcome.is_ok().then_some(now);
    queries::finish_delivery(
        &mut conn,
        &d.id,
        status,
        error.as_deref(),
        next,
        delivered_at,
    )
    .await?;
    app.metrics.record(|| {
        metrics::counter!("cloudbase_alert_deliveries_total", "status" => status).increment(1);
    });
    Ok(())
}

/// Deletes alerts (and their deliveries) older than `days` days; returns how many.
pub async fn prune(app: &App, days: u64) -> Result<usize, Error> {
    let cutoff: NaiveDateTime =
        app.now() - chrono::Duration::days(i64::try_from(days).unwrap_or(i64::MAX / 86_400_000));
    let mut conn = app.db.get().await?;
    Ok(queries::delete_alerts_before(&mut conn, cutoff).await?)
}
