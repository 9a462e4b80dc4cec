//! Alert rules: checking their settings and targets, creating, changing and listing them, and
//! reading the alerts they sent.

use async_graphql::Enum;
use serde::Serialize;

use super::{MAX_PERSONAL_RULES, RuleInput, RuleKind, RuleParams, Target, targets};
use crate::Error;
use crate::db::alerts as queries;
use crate::db::models::{AlertRow, AlertRule, DeliveryRow};
use crate::ports::{PluginKind, PluginStatus};
use crate::services::{App, Viewer, validate};

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
                range("params.thresholdPercent", p.threshold_percent, None, 1, 99)?;
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
    queries::insert_rule(&mut conn, &app.sealer, &rule).await?;
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
    if channel == PersonalChannel::Webhook && !app.alert_settings.allow_private_targets {
        targets::require_public("address", address).await?;
    }
    let mut conn = app.db.get().await?;
    if queries::list_rules(&mut conn, &app.sealer, Some(&viewer.user_id))
        .await?
        .len()
        >= MAX_PERSONAL_RULES
    {
        return Err(Error::bad_input(
            "thresholdPercent",
            format!("you have {MAX_PERSONAL_RULES} alerts already; delete one first"),
        ));
    }
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
    queries::insert_rule(&mut conn, &app.sealer, &rule).await?;
    Ok(rule)
}

/// A rule the viewer may change: any for an admin, their own for a user.
async fn owned_rule(app: &App, viewer: &Viewer, id: &str) -> Result<AlertRule, Error> {
    validate::id("id", id)?;
    let mut conn = app.db.get().await?;
    match queries::find_rule(&mut conn, &app.sealer, id).await? {
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
    queries::update_rule(&mut conn, &app.sealer, &rule).await?;
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
    queries::update_rule(&mut conn, &app.sealer, &rule).await?;
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
    Ok(queries::list_rules(&mut conn, &app.sealer, owner).await?)
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
    Ok((with_deliveries(app, &mut conn, rows).await?, more))
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
    Ok(with_deliveries(app, &mut conn, vec![alert]).await?.pop())
}

async fn with_deliveries(
    app: &App,
    conn: &mut crate::db::DbConn,
    alerts: Vec<AlertRow>,
) -> Result<Vec<(AlertRow, Vec<DeliveryRow>)>, Error> {
    let ids: Vec<String> = alerts.iter().map(|a| a.id.clone()).collect();
    let mut deliveries = crate::db::deliveries::deliveries_of(conn, &app.sealer, &ids).await?;
    Ok(alerts
        .into_iter()
        .map(|a| {
            let mine;
            (mine, deliveries) = deliveries.drain(..).partition(|d| d.alert_id == a.id);
            (a, mine)
        })
        .collect())
}
