//! Background housekeeping, every `interval` and once at start: finish the calls a stopped server
//! left `PENDING` past their deadline, release budget reservations a crash left behind,
//! delete finished call records, system logs and alerts past their retention (the rollups are kept),
//! and drop old rate counters. Safe to run on
//! every instance at once: each step is an idempotent conditional statement.

use std::sync::Arc;
use std::time::Duration;

use super::{App, alerts, budgets, logs, rate_limits};
use crate::Error;
use crate::db::ai_calls;

/// How long records are kept, in days; 0 keeps them forever.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Finished AI call records.
    pub ai_calls_days: u64,
    /// System log entries.
    pub system_logs_days: u64,
    /// Alerts sent, with their delivery records.
    pub alerts_days: u64,
}

/// Runs until the task is aborted.
pub async fn run(app: Arc<App>, interval: Duration, retention: Retention) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // The first tick is at once: calls a crash left are finished as the server starts.
        ticker.tick().await;
        if let Err(e) = super::chat::interrupted::sweep(&app).await {
            tracing::warn!(error = %e, "finishing interrupted calls failed");
        }
        if let Err(e) = budgets::sweep(&app).await {
            tracing::warn!(error = %e, "releasing expired reservations failed");
        }
        if let Err(e) = rate_limits::prune(&app).await {
            tracing::warn!(error = %e, "pruning old rate counters failed");
        }
        if let Err(e) = super::auth::mfa::prune_challenges(&app, 10_000).await {
            tracing::warn!(error = %e, "pruning expired sign-in challenges failed");
        }
        if let Err(e) = super::auth::reset::prune(&app, 10_000).await {
            tracing::warn!(error = %e, "pruning expired password reset tokens failed");
        }
        if retention.ai_calls_days > 0
            && let Err(e) = prune(&app, retention.ai_calls_days).await
        {
            tracing::warn!(error = %e, "pruning old call records failed");
        }
        if retention.system_logs_days > 0
            && let Err(e) = logs::prune(&app, retention.system_logs_days).await
        {
            tracing::warn!(error = %e, "pruning old system logs failed");
        }
        if retention.alerts_days > 0
            && let Err(e) = alerts::prune(&app, retention.alerts_days).await
        {
            tracing::warn!(error = %e, "pruning old alerts failed");
        }
    }
}

/// Deletes finished call records that started more than `days` days ago; returns how many.
pub async fn prune(app: &App, days: u64) -> Result<usize, Error> {
    let cutoff =
        app.now() - chrono::Duration::days(i64::try_from(days).unwrap_or(i64::MAX / 86_400_000));
    let mut conn = app.db.get().await?;
    let deleted = conn
        .write(async |c| Ok(ai_calls::delete_finished_before(c, cutoff, 10_000).await?))
        .await?;
    if deleted > 0 {
        tracing::info!(deleted, retention_days = days, "old call records deleted");
    }
    Ok(deleted)
}
