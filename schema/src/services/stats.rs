//! Monitoring without Prometheus: `systemStats` over a window, read from the call records, so
//! every instance gives the same answer.

use chrono::NaiveDateTime;

use super::breakers::BreakerView;
use super::{App, Viewer};
use crate::Error;
use crate::db::stats::{self as queries, ModelTotals, Scope};
use crate::domain::CallStatus;

/// Longest window: 30 days.
pub const MAX_WINDOW_MINUTES: i32 = 43_200;

/// The numbers of one window.
#[derive(Debug, Clone)]
pub struct SystemStats {
    /// Start of the window.
    pub since: NaiveDateTime,
    /// Finished calls.
    pub calls: i64,
    /// Of which failed.
    pub failed: i64,
    /// Latency percentiles of finished calls, ms.
    pub p50_latency_ms: Option<i64>,
    /// 95th percentile.
    pub p95_latency_ms: Option<i64>,
    /// Users with a call in the window.
    pub active_users: i64,
    /// Per provider, model and currency.
    pub models: Vec<ModelTotals>,
    /// Per provider.
    pub providers: Vec<ProviderHealth>,
}

/// How a provider instance is doing.
#[derive(Debug, Clone)]
pub struct ProviderHealth {
    /// The provider instance.
    pub provider: String,
    /// Finished calls in the window.
    pub calls: i64,
    /// Of which failed.
    pub failed: i64,
    /// Its last successful call, ever.
    pub last_success_at: Option<NaiveDateTime>,
    /// Its last failed call, ever.
    pub last_failure_at: Option<NaiveDateTime>,
    /// The server instance this breaker is on.
    pub node: String,
    /// Its circuit breaker on this server instance.
    pub breaker: BreakerView,
}

/// Fraction of `failed` in `calls` (0 when there were none).
pub fn rate(failed: i64, calls: i64) -> f64 {
    if calls == 0 {
        0.0
    } else {
        failed as f64 / calls as f64
    }
}

/// The stats of the last `window_minutes` (admin only).
pub async fn system_stats(
    app: &App,
    viewer: &Viewer,
    window_minutes: i32,
) -> Result<SystemStats, Error> {
    viewer.require_admin()?;
    if !(1..=MAX_WINDOW_MINUTES).contains(&window_minutes) {
        return Err(Error::bad_input(
            "windowMinutes",
            format!("windowMinutes must be between 1 and {MAX_WINDOW_MINUTES}"),
        ));
    }
    let since = app.now() - chrono::Duration::minutes(i64::from(window_minutes));
    let scope = Scope {
        since,
        ..Scope::default()
    };
    let mut conn = app.db.get().await?;
    let (calls, failed) = queries::outcomes(&mut conn, &scope).await?;
    let p50_latency_ms = queries::latency_quantile(&mut conn, &scope, 0.5).await?;
    let p95_latency_ms = queries::latency_quantile(&mut conn, &scope, 0.95).await?;
    let active_users = queries::active_users(&mut conn, since).await?;
    let models = queries::per_model(&mut conn, since).await?;
    let mut names = queries::providers_since(&mut conn, since).await?;
    names.extend(app.plugins.models().into_iter().map(|m| m.provider));
    names.sort();
    names.dedup();
    let mut providers = Vec::with_capacity(names.len());
    for provider in names {
        let scope = Scope {
            since,
            provider: Some(&provider),
            model: None,
        };
        let (calls, failed) = queries::outcomes(&mut conn, &scope).await?;
        providers.push(ProviderHealth {
            calls,
            failed,
            last_success_at: queries::last_finished(&mut conn, &provider, CallStatus::Succeeded)
                .await?,
            last_failure_at: queries::last_finished(&mut conn, &provider, CallStatus::Failed)
                .await?,
            node: app.node.clone(),
            breaker: app.breakers.view(&provider, app.clock.now()),
            provider,
        });
    }
    Ok(SystemStats {
        since,
        calls,
        failed,
        p50_latency_ms,
        p95_latency_ms,
        active_users,
        models,
        providers,
    })
}
