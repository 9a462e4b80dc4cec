//! Alerting in GraphQL: rules (admins manage all; a user opts in to alerts on their own
//! budgets), the alerts sent with their deliveries, and `alertFired`.

use crate::domain::DeliveryStatus;
use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::futures_util::stream::{BoxStream, StreamExt};
use async_graphql::{Context, ID, InputObject, Object, SimpleObject, Subscription};
use chrono::{DateTime, Utc};

use super::ContextExt;
use super::events::{app_of, events, until_expiry};
use crate::Error;
use crate::db::models::{AlertRow, AlertRule as RuleRow, DeliveryRow};
use crate::events::Event;
use crate::services::alerts::{self, PersonalChannel, RuleInput, RuleKind, RuleParams, Target};

/// A rule's settings; which apply depends on its kind.
#[derive(SimpleObject, InputObject, Clone, Default)]
#[graphql(input_name = "AlertParamsInput")]
pub struct AlertParams {
    /// `BUDGET_THRESHOLD`: percent of the limit; `ERROR_RATE`: percent of calls failing.
    pub threshold_percent: Option<i64>,
    /// `ERROR_RATE`, `LATENCY_P95`: the window, seconds (default 300).
    pub window_secs: Option<i64>,
    /// `ERROR_RATE`, `LATENCY_P95`: fewest calls in the window to judge (default 5).
    pub min_calls: Option<i64>,
    /// `PROVIDER_FAILING`: failures in a row (default 3).
    pub consecutive_failures: Option<i64>,
    /// `LATENCY_P95`: the limit, ms.
    pub latency_ms: Option<i64>,
    /// Only this provider instance (every one when null).
    pub provider: Option<String>,
    /// Only this model.
    pub model: Option<String>,
    /// `BUDGET_THRESHOLD`: only this budget.
    pub budget_id: Option<ID>,
    /// `PLUGIN_FAILED`: only this plugin or instance.
    pub plugin: Option<String>,
}

impl From<RuleParams> for AlertParams {
    fn from(p: RuleParams) -> Self {
        Self {
            threshold_percent: p.threshold_percent,
            window_secs: p.window_secs,
            min_calls: p.min_calls,
            consecutive_failures: p.consecutive_failures,
            latency_ms: p.latency_ms,
            provider: p.provider,
            model: p.model,
            budget_id: p.budget_id.map(ID),
            plugin: p.plugin,
        }
    }
}

impl From<AlertParams> for RuleParams {
    fn from(p: AlertParams) -> Self {
        Self {
            threshold_percent: p.threshold_percent,
            window_secs: p.window_secs,
            min_calls: p.min_calls,
            consecutive_failures: p.consecutive_failures,
            latency_ms: p.latency_ms,
            provider: p.provider,
            model: p.model,
            budget_id: p.budget_id.map(|id| id.0),
            plugin: p.plugin,
        }
    }
}

/// Where alerts go.
#[derive(SimpleObject, InputObject, Clone)]
#[graphql(input_name = "AlertTargetInput")]
pub struct AlertTarget {
    /// A notifier instance (see `plugins`).
    pub channel: String,
    /// For email and webhook channels: an address or URL instead of the instance's own.
    pub to: Option<String>,
}

/// An alert rule.
#[derive(SimpleObject)]
pub struct AlertRule {
    /// Its id.
    pub id: ID,
    /// Its name.
    pub name: String,
    /// What it watches.
    pub kind: RuleKind,
    /// Its settings.
    pub params: AlertParams,
    /// Where its alerts go.
    pub targets: Vec<AlertTarget>,
    /// Least time between two firings, seconds.
    pub cooldown_secs: i64,
    /// Evaluated.
    pub enabled: bool,
    /// The user whose own rule it is (null for an admin rule).
    pub owner_id: Option<ID>,
    /// When it last fired.
    pub last_fired_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<RuleRow> for AlertRule {
    fn from(r: RuleRow) -> Self {
        let (params, targets) = alerts::decode(&r);
        Self {
            kind: RuleKind::parse(&r.kind).unwrap_or(RuleKind::ErrorRate),
            id: ID(r.id),
            name: r.name,
            params: params.into(),
            targets: targets
                .into_iter()
                .map(|t| AlertTarget {
                    channel: t.channel,
                    to: t.to,
                })
                .collect(),
            cooldown_secs: r.cooldown_secs,
            enabled: r.enabled,
            owner_id: r.owner_id.map(ID),
            last_fired_at: r.last_fired_at.map(|t| t.and_utc()),
            created_at: r.created_at.and_utc(),
            updated_at: r.updated_at.and_utc(),
        }
    }
}

/// One delivery of an alert to one target.
#[derive(SimpleObject)]
pub struct AlertDelivery {
    /// The notifier instance.
    pub channel: String,
    /// Its own destination, if the rule gave one.
    pub recipient: Option<String>,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it is next tried (while pending).
    pub next_attempt_at: DateTime<Utc>,
    /// When it was delivered.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// An alert: a rule started firing for a subject, or stopped.
#[derive(SimpleObject)]
pub struct Alert {
    /// Its id (also the cursor).
    pub id: ID,
    /// The rule.
    pub rule_id: ID,
    /// What it is about: a provider, plugin, budget period, or `*`.
    pub subject: String,
    /// `FIRING` or `RESOLVED`.
    pub state: String,
    /// `WARNING`, `CRITICAL` or `RESOLVED`.
    pub severity: String,
    /// Headline.
    pub title: String,
    /// What was seen.
    pub body: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Its deliveries.
    pub deliveries: Vec<AlertDelivery>,
}

impl From<(AlertRow, Vec<DeliveryRow>)> for Alert {
    fn from((a, ds): (AlertRow, Vec<DeliveryRow>)) -> Self {
        Self {
            id: ID(a.id),
            rule_id: ID(a.rule_id),
            subject: a.subject,
            state: a.state,
            severity: a.severity,
            title: a.title,
            body: a.body,
            at: a.at.and_utc(),
            deliveries: ds
                .into_iter()
                .map(|d| AlertDelivery {
                    channel: d.channel,
                    recipient: d.recipient,
                    status: d.status,
                    attempts: d.attempts,
                    last_error: d.last_error,
                    next_attempt_at: d.next_attempt_at.and_utc(),
                    delivered_at: d.delivered_at.map(|t| t.and_utc()),
                })
                .collect(),
        }
    }
}

/// A rule as created or replaced.
#[derive(InputObject)]
pub struct AlertRuleInput {
    /// A name for people (1–100 characters).
    pub name: String,
    /// What it watches (cannot change later).
    pub kind: RuleKind,
    /// Its settings.
    #[graphql(default)]
    pub params: AlertParams,
    /// Where alerts go (1–10 notifier instances).
    pub targets: Vec<AlertTarget>,
    /// Least time between two firings, seconds (0–604800, default 600).
    pub cooldown_secs: Option<i64>,
    /// Evaluated (default true).
    pub enabled: Option<bool>,
}

impl From<AlertRuleInput> for RuleInput {
    fn from(i: AlertRuleInput) -> Self {
        Self {
            name: i.name,
            kind: i.kind,
            params: i.params.into(),
            targets: i
                .targets
                .into_iter()
                .map(|t| Target {
                    channel: t.channel,
                    to: t.to,
                })
                .collect(),
            cooldown_secs: i.cooldown_secs,
            enabled: i.enabled,
        }
    }
}

/// Alert queries.
#[derive(Default)]
pub struct AlertsQuery;

#[Object]
impl AlertsQuery {
    /// Alert rules: every rule for an admin, your own for a user.
    async fn alert_rules(&self, ctx: &Context<'_>) -> Result<Vec<AlertRule>, Error> {
        let rules = alerts::list_rules(ctx.app()?, ctx.viewer()?).await?;
        Ok(rules.into_iter().map(AlertRule::from).collect())
    }

    /// Alerts sent, newest first, with their deliveries: all for an admin, your own for a user.
    async fn alerts(
        &self,
        ctx: &Context<'_>,
        rule_id: Option<ID>,
        #[graphql(desc = "Page size, 1–100 (default 20).")] first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, Alert, EmptyFields, EmptyFields>, Error> {
        let (rows, more) = alerts::list_alerts(
            ctx.app()?,
            ctx.viewer()?,
            rule_id.as_ref().map(|id| id.as_str()),
            first,
            after.as_deref(),
        )
        .await?;
        let mut connection = Connection::new(after.is_some(), more);
        connection.edges.extend(
            rows.into_iter()
                .map(|r| Edge::new(r.0.id.clone(), Alert::from(r))),
        );
        Ok(connection)
    }
}

/// Alert mutations.
#[derive(Default)]
pub struct AlertsMutation;

#[Object]
impl AlertsMutation {
    /// Creates an alert rule (admin only).
    async fn create_alert_rule(
        &self,
        ctx: &Context<'_>,
        input: AlertRuleInput,
    ) -> Result<AlertRule, Error> {
        let rule = alerts::create_rule(ctx.app()?, ctx.viewer()?, input.into()).await?;
        Ok(rule.into())
    }

    /// Replaces an alert rule's settings (admin only; the kind stays).
    async fn update_alert_rule(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: AlertRuleInput,
    ) -> Result<AlertRule, Error> {
        let rule = alerts::update_rule(ctx.app()?, ctx.viewer()?, &id, input.into()).await?;
        Ok(rule.into())
    }

    /// Turns a rule on or off (admins any rule, users their own).
    async fn set_alert_rule_enabled(
        &self,
        ctx: &Context<'_>,
        id: ID,
        enabled: bool,
    ) -> Result<AlertRule, Error> {
        let rule = alerts::set_enabled(ctx.app()?, ctx.viewer()?, &id, enabled).await?;
        Ok(rule.into())
    }

    /// Deletes a rule with its alerts (admins any rule, users their own).
    async fn delete_alert_rule(&self, ctx: &Context<'_>, id: ID) -> Result<bool, Error> {
        alerts::delete_rule(ctx.app()?, ctx.viewer()?, &id).await
    }

    /// Opts you in to an alert when one of your budgets reaches `thresholdPercent` of its limit,
    /// by email or to your webhook (once per budget and period).
    async fn create_my_budget_alert(
        &self,
        ctx: &Context<'_>,
        threshold_percent: i64,
        channel: PersonalChannel,
        #[graphql(desc = "An email address, or an http(s) URL for WEBHOOK.")] address: String,
        cooldown_secs: Option<i64>,
    ) -> Result<AlertRule, Error> {
        let rule = alerts::create_personal_budget_alert(
            ctx.app()?,
            ctx.viewer()?,
            threshold_percent,
            channel,
            &address,
            cooldown_secs,
        )
        .await?;
        Ok(rule.into())
    }
}

/// Alert subscriptions.
#[derive(Default)]
pub struct AlertsSubscription;

#[Subscription]
impl AlertsSubscription {
    /// Alerts as they fire or resolve, on any instance: all for an admin, your own for a user.
    async fn alert_fired(
        &self,
        ctx: &Context<'_>,
    ) -> Result<BoxStream<'static, async_graphql::Result<Alert>>, Error> {
        let (app, viewer) = (app_of(ctx)?, ctx.viewer()?.clone());
        let me = viewer.clone();
        let stream = events(&app)
            .filter_map(move |item| {
                let (app, me) = (app.clone(), me.clone());
                async move {
                    let event = match item {
                        Ok(event) => event,
                        Err(e) => return Some(Err(e)),
                    };
                    let Event::AlertFired { alert_id, owner_id } = &*event else {
                        return None;
                    };
                    if !me.is_admin() && owner_id.as_deref() != Some(me.user_id.as_str()) {
                        return None;
                    }
                    match alerts::find_alert(&app, &me, alert_id).await {
                        Ok(found) => found.map(|a| Ok(Alert::from(a))),
                        Err(e) => Some(Err(e)),
                    }
                }
            })
            .boxed();
        Ok(until_expiry(&viewer, stream))
    }
}
