//! `systemStats`: an admin dashboard's numbers without Prometheus.

use async_graphql::{Context, Enum, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::ContextExt;
use super::money::Micros;
use crate::Error;
use crate::domain::BreakerState;
use crate::services::stats::{self, ProviderHealth as Health};

/// Calls, failures, tokens and cost of one model in the window.
#[derive(SimpleObject)]
pub struct ModelStats {
    /// Provider instance.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Currency of `cost` (empty when unpriced).
    pub currency: String,
    /// Calls started.
    pub calls: i64,
    /// Of which failed.
    pub failed: i64,
    /// Prompt and completion tokens.
    pub tokens: i64,
    /// Cost.
    pub cost: Micros,
}

/// A provider's state, from its recent calls.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum ProviderState {
    /// No finished calls in the window.
    Idle,
    /// Under 10% of calls failed.
    Healthy,
    /// 10–50% failed.
    Degraded,
    /// More than half failed.
    Failing,
}

/// How one provider instance is doing.
#[derive(SimpleObject)]
pub struct ProviderHealth {
    /// The provider instance.
    pub provider: String,
    /// Its state in the window.
    pub state: ProviderState,
    /// Finished calls in the window.
    pub calls: i64,
    /// Of which failed.
    pub failed: i64,
    /// Fraction failed (0–1).
    pub error_rate: f64,
    /// Its last successful call (any time).
    pub last_success_at: Option<DateTime<Utc>>,
    /// Its last failed call (any time).
    pub last_failure_at: Option<DateTime<Utc>>,
    /// Its circuit breaker on the server instance that answered this query (each instance has
    /// its own).
    pub breaker: CircuitBreaker,
}

/// A provider instance's circuit breaker on one server instance.
#[derive(SimpleObject)]
pub struct CircuitBreaker {
    /// The server instance (`host:port`).
    pub node: String,
    /// Closed (calls go through), open (calls fail over at once) or half-open (probing).
    pub state: BreakerState,
    /// Failed attempts in the breaker's window.
    pub failures: i32,
    /// Attempts in the breaker's window.
    pub attempts: i32,
    /// When it last opened, unless it is closed.
    pub opened_at: Option<DateTime<Utc>>,
    /// While open: when probe calls will be let through.
    pub retry_at: Option<DateTime<Utc>>,
    /// The failure that opened it.
    pub last_error: Option<String>,
}

impl From<Health> for ProviderHealth {
    fn from(h: Health) -> Self {
        let error_rate = stats::rate(h.failed, h.calls);
        let state = match (h.calls, error_rate) {
            (0, _) => ProviderState::Idle,
            (_, r) if r > 0.5 => ProviderState::Failing,
            (_, r) if r >= 0.1 => ProviderState::Degraded,
            _ => ProviderState::Healthy,
        };
        Self {
            provider: h.provider,
            state,
            calls: h.calls,
            failed: h.failed,
            error_rate,
            last_success_at: h.last_success_at.map(|t| t.and_utc()),
            last_failure_at: h.last_failure_at.map(|t| t.and_utc()),
            breaker: CircuitBreaker {
                node: h.node,
                state: h.breaker.state,
                failures: i32::try_from(h.breaker.failures).unwrap_or(i32::MAX),
                attempts: i32::try_from(h.breaker.attempts).unwrap_or(i32::MAX),
                opened_at: h.breaker.opened_at,
                retry_at: h.breaker.retry_at,
                last_error: h.breaker.last_error,
            },
        }
    }
}

/// The gateway over a window.
#[derive(SimpleObject)]
pub struct SystemStats {
    /// The window, in minutes.
    pub window_minutes: i32,
    /// Its start.
    pub since: DateTime<Utc>,
    /// Finished AI calls.
    pub calls: i64,
    /// Of which failed.
    pub failed: i64,
    /// Fraction failed (0–1).
    pub error_rate: f64,
    /// Median latency of finished calls, ms.
    pub p50_latency_ms: Option<i64>,
    /// 95th percentile latency, ms.
    pub p95_latency_ms: Option<i64>,
    /// Users who made a call.
    pub active_users: i64,
    /// Per provider, model and currency, busiest first.
    pub models: Vec<ModelStats>,
    /// Per provider instance (configured ones included).
    pub providers: Vec<ProviderHealth>,
}

/// Monitoring queries.
#[derive(Default)]
pub struct StatsQuery;

#[Object]
impl StatsQuery {
    /// Requests, error rate, latency, active users, calls and cost per model, and provider
    /// health over the last `windowMinutes` (admin only; 1 to 43200, default 60).
    async fn system_stats(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 60)] window_minutes: i32,
    ) -> Result<SystemStats, Error> {
        let s = stats::system_stats(ctx.app()?, ctx.viewer()?, window_minutes).await?;
        Ok(SystemStats {
            window_minutes,
            since: s.since.and_utc(),
            calls: s.calls,
            failed: s.failed,
            error_rate: stats::rate(s.failed, s.calls),
            p50_latency_ms: s.p50_latency_ms,
            p95_latency_ms: s.p95_latency_ms,
            active_users: s.active_users,
            models: s
                .models
                .into_iter()
                .map(|m| ModelStats {
                    provider: m.provider,
                    model: m.model,
                    currency: m.currency,
                    calls: m.calls,
                    failed: m.failed,
                    tokens: m.tokens,
                    cost: Micros(m.cost_micros),
                })
                .collect(),
            providers: s.providers.into_iter().map(ProviderHealth::from).collect(),
        })
    }
}
