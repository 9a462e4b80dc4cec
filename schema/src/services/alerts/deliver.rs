//! Deliveries: each queued one is claimed by one instance, sent through its notifier plugin,
//! and retried with doubling backoff up to `max_attempts`. A claim lasts [`CLAIM`] from the
//! moment it is taken; an attempt that outlives it (and was taken over) records nothing.

use cloudbase_plugin_api::{Notification, Severity};

use super::targets;
use crate::Error;
use crate::db::deliveries::{self as queries, AttemptEnd};
use crate::db::models::DeliveryRow;
use crate::domain::DeliveryStatus;
use crate::ports::Destination;
use crate::services::App;

/// How long one instance holds a delivery it is sending.
const CLAIM: chrono::Duration = chrono::Duration::seconds(120);

/// Sends every due delivery once; failures are retried later with backoff, up to the bound.
pub async fn deliver_due(app: &App) -> Result<(), Error> {
    let now = app.now();
    let due = {
        let mut conn = app.db.get().await?;
        queries::due_deliveries(&mut conn, &app.sealer, now, 100).await?
    };
    for d in due {
        let claimed = {
            let mut conn = app.db.get().await?;
            let until = app.now() + CLAIM;
            conn.write(async |c| Ok(queries::claim_delivery(c, &d, until).await?))
                .await?
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
        crate::db::alerts::find_alert(&mut conn, &d.alert_id).await?
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
    // A user's own webhook is checked again: its DNS answer may have changed since the rule was
    // made.
    let refused = match d.recipient.as_deref() {
        Some(url)
            if alert.owner_id.is_some()
                && url.starts_with("http")
                && !app.alert_settings.allow_private_targets =>
        {
            targets::check_public(url).await.err()
        }
        _ => None,
    };
    let destination = match alert.owner_id {
        Some(_) => Destination::User,
        None => Destination::Operator,
    };
    let outcome = match refused {
        Some(why) => Err(format!("not sent: {why}")),
        None => send(app, &d.channel, notification, destination).await,
    }
    // The address is sealed where it is stored; an error (an SMTP refusal, a client error with
    // the URL) must not copy it into `last_error` or the log in clear.
    .map_err(|e| match d.recipient.as_deref() {
        Some(to) if !to.is_empty() => e.replace(to, "[recipient]"),
        _ => e,
    });
    let now = app.now();
    let max = i64::from(app.alert_settings.max_attempts);
    let (status, error, next) = match &outcome {
        Ok(()) => (DeliveryStatus::Delivered, None, now),
        Err(e) if attempt >= max => (
            DeliveryStatus::Failed,
            Some(e.chars().take(500).collect::<String>()),
            now,
        ),
        Err(e) => {
            let backoff = app.alert_settings.retry_backoff
                * 2u32.saturating_pow(u32::try_from(attempt - 1).unwrap_or(16).min(16));
            let wait = chrono::Duration::from_std(backoff).unwrap_or(chrono::Duration::hours(1));
            (
                DeliveryStatus::Pending,
                Some(e.chars().take(500).collect::<String>()),
                now + wait,
            )
        }
    };
    if let Err(e) = &outcome {
        tracing::warn!(
            target: "cloudbase::event::alert",
            channel = %d.channel, alert.id = %alert.id, attempt, error = %e, %status,
            "alert delivery failed"
        );
    }
    let end = AttemptEnd {
        status,
        error: error.as_deref(),
        next_attempt_at: next,
        delivered_at: outcome.is_ok().then_some(now),
    };
    let mut conn = app.db.get().await?;
    if conn
        .write(async |c| Ok(queries::finish_delivery(c, &d.id, attempt, &end).await?))
        .await?
    {
        app.metrics.record(|| {
            metrics::counter!("cloudbase_alert_deliveries_total", "status" => status.as_str())
                .increment(1);
        });
    }
    Ok(())
}

/// Sends through notifier instance `channel`; the error is what the delivery record keeps.
async fn send(
    app: &App,
    channel: &str,
    notification: Notification,
    destination: Destination,
) -> Result<(), String> {
    match app.plugins.notify(channel, notification, destination).await {
        Ok(report) if report.ok => Ok(()),
        Ok(report) => Err(report.detail),
        Err(e) => {
            crate::services::plugins::count_call_error(app, channel, &e);
            Err(e.to_string())
        }
    }
}
