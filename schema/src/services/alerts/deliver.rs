//! Deliveries: each queued one is claimed by one instance, sent through its notifier plugin,
//! and retried with doubling backoff up to `max_attempts`.

use chrono::NaiveDateTime;
use cloudbase_plugin_api::{Notification, Severity};

use crate::Error;
use crate::db::alerts::{self as queries, DeliveryRow};
use crate::services::App;

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
            crate::services::plugins::count_call_error(app, &d.channel, &e);
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
