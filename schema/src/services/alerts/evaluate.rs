//! Evaluation: the lease-led loop, what each kind of rule watches, and the one transaction
//! that moves a rule's state for a subject and queues its alert.

use std::sync::Arc;

use super::{RuleKind, RuleParams, Target, decode, deliver};
use crate::Error;
use crate::db::alerts as queries;
use crate::db::budgets as budget_queries;
use crate::db::leases;
use crate::db::models::{AlertRow, AlertRule, DeliveryRow};
use crate::db::stats::{self, Scope};
use crate::domain::{BreakerState, CallStatus, DeliveryStatus, PluginStatus};
use crate::events::Event;
use crate::services::App;

/// Runs the evaluator until the task is aborted.
pub async fn run(app: Arc<App>) {
    let interval = app.alert_settings.evaluate_interval;
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = crate::recurring::Recurring::default();
    loop {
        ticker.tick().await;
        match tick(&app).await {
            Ok(_) => failing.worked(|| tracing::info!("alert evaluation works again")),
            Err(e) => failing.failed(|unsaid| {
                tracing::warn!(error = %e, rounds_failed_unlogged = unsaid, "alert evaluation failed");
            }),
        }
    }
}

/// One round. Every instance evaluates the `PLUGIN_FAILED` rules for its own plugins, and the
/// circuit-breaker half of `PROVIDER_FAILING` for its own breakers (both are per instance, so
/// each reports on its own node). The holder of the `alerts` lease, taken or renewed here,
/// evaluates the other rules and sends due deliveries. Returns whether this instance held the
/// lease.
pub async fn tick(app: &App) -> Result<bool, Error> {
    let now = app.now();
    let ttl = chrono::Duration::from_std(app.alert_settings.evaluate_interval * 3)
        .unwrap_or(chrono::Duration::seconds(45));
    let (leader, rules) = {
        let mut conn = app.db.get().await?;
        let origin = app.events.origin();
        let leader = conn
            .write(async |c| Ok(leases::acquire(c, "alerts", origin, now, now + ttl).await?))
            .await?;
        (
            leader,
            queries::enabled_rules(&mut conn, &app.sealer).await?,
        )
    };
    for rule in rules.iter() {
        let per_node = matches!(
            RuleKind::parse(&rule.kind),
            Some(RuleKind::PluginFailed | RuleKind::ProviderFailing)
        );
        if !(leader || per_node) {
            continue;
        }
        if let Err(e) = evaluate(app, rule, leader).await {
            tracing::warn!(alert_rule.id = %rule.id, error = %e, "evaluating an alert rule failed");
        }
    }
    if leader {
        deliver::deliver_due(app).await?;
    }
    Ok(leader)
}

/// What a rule saw for one subject: firing or not, and why.
struct Observation {
    subject: String,
    firing: bool,
    detail: String,
}

async fn evaluate(app: &App, rule: &AlertRule, leader: bool) -> Result<(), Error> {
    let Some(kind) = RuleKind::parse(&rule.kind) else {
        return Ok(());
    };
    let (p, targets) = decode(rule);
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
            for b in app.breakers.views(app.clock.now()) {
                if p.provider.as_ref().is_some_and(|w| *w != b.provider) {
                    continue;
                }
                let firing = b.state != BreakerState::Closed;
                seen.push(Observation {
                    subject: format!("breaker:{}@{}", b.provider, app.node),
                    firing,
                    detail: if firing {
                        format!(
                            "the circuit breaker of `{}` is {} on {}: {}",
                            b.provider,
                            b.state.as_str().to_lowercase().replace('_', "-"),
                            app.node,
                            b.last_error.as_deref().unwrap_or("the provider is failing")
                        )
                    } else {
                        format!(
                            "the circuit breaker of `{}` closed on {}",
                            b.provider, app.node
                        )
                    },
                });
            }
            let n = p.consecutive_failures.unwrap_or(3);
            let providers = match &p.provider {
                _ if !leader => Vec::new(),
                Some(one) => vec![one.clone()],
                None => stats::providers_since(&mut conn, now - chrono::Duration::days(1)).await?,
            };
            for provider in providers {
                let last = stats::last_statuses(&mut conn, &provider, n).await?;
                let all_failed =
                    last.len() as i64 == n && last.iter().all(|(s, _)| *s == CallStatus::Failed);
                // One billing refusal is enough: every call fails until someone tops up.
                let billing = last.first().is_some_and(|(_, code)| {
                    code.as_deref() == Some(crate::error::Code::UpstreamBilling.as_str())
                });
                let recovered = last
                    .first()
                    .is_some_and(|(s, _)| *s == CallStatus::Succeeded);
                if all_failed || billing || recovered {
                    seen.push(Observation {
                        detail: if billing {
                            format!(
                                "`{provider}` refused a call for billing (its balance or quota is used up); top up the provider account"
                            )
                        } else if all_failed {
                            format!("the last {n} calls to `{provider}` failed")
                        } else {
                            format!("`{provider}` answered again")
                        },
                        subject: provider,
                        firing: all_failed || billing,
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
                let plugin = row.instance.clone().unwrap_or_else(|| row.name.clone());
                if p.plugin
                    .as_ref()
                    .is_some_and(|w| *w != plugin && *w != row.name)
                {
                    continue;
                }
                let subject = format!("{plugin}@{}", app.node);
                match row.status {
                    PluginStatus::Failed => seen.push(Observation {
                        detail: format!(
                            "plugin `{plugin}` failed on {}: {}",
                            app.node,
                            row.reason.as_deref().unwrap_or("unknown reason")
                        ),
                        subject,
                        firing: true,
                    }),
                    PluginStatus::Loaded => seen.push(Observation {
                        detail: format!("plugin `{plugin}` loaded on {}", app.node),
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
        apply(app, rule, kind, &targets, o).await?;
    }
    Ok(())
}

/// Moves the rule's state for one subject and, when it changed and the cooldown allows, records
/// the alert and queues its deliveries; all in one transaction.
async fn apply(
    app: &App,
    rule: &AlertRule,
    kind: RuleKind,
    targets: &[Target],
    o: Observation,
) -> Result<(), Error> {
    let now = app.now();
    let cooldown_over = now - chrono::Duration::seconds(rule.cooldown_secs);
    let mut conn = app.db.get().await?;
    let fired = conn
        .transaction(async |tx| {
            if !queries::transition(tx, &rule.id, &o.subject, o.firing, now).await? {
                return Ok(None);
            }
            let send = if o.firing {
                let send =
                    queries::take_cooldown(tx, &rule.id, &o.subject, now, cooldown_over).await?;
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
                    status: DeliveryStatus::Pending,
                    attempts: 0,
                    last_error: None,
                    next_attempt_at: now,
                    claimed_until: None,
                    delivered_at: None,
                })
                .collect();
            queries::insert_alert(tx, &app.sealer, &alert, &deliveries).await?;
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
