//! Aggregates over `ai_calls` for monitoring (`systemStats`) and alert rules.

use chrono::NaiveDateTime;
use diesel::dsl::{count_star, max, sql};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable};
use diesel_async::RunQueryDsl;

use super::schema::ai_calls;
use super::{DbConn, db_run};
use crate::domain::CallStatus;

/// Which calls: started at or after `since`, optionally one provider and model.
#[derive(Debug, Clone, Default)]
pub struct Scope<'a> {
    /// Start of the window.
    pub since: NaiveDateTime,
    /// Only this provider instance.
    pub provider: Option<&'a str>,
    /// Only this model.
    pub model: Option<&'a str>,
}

/// Narrows a boxed `ai_calls` query to `scope` (its window start, provider and model).
macro_rules! scoped {
    ($query:expr, $scope:expr) => {{
        let scope: &Scope<'_> = $scope;
        let mut query = $query.filter(ai_calls::started_at.ge(scope.since));
        if let Some(p) = scope.provider {
            query = query.filter(ai_calls::provider.eq(p));
        }
        if let Some(m) = scope.model {
            query = query.filter(ai_calls::model.eq(m));
        }
        query
    }};
}

/// Finished calls in the scope, and how many of them failed.
pub async fn outcomes(conn: &mut DbConn, scope: &Scope<'_>) -> QueryResult<(i64, i64)> {
    let rows: Vec<(CallStatus, i64)> = db_run!(conn, |c| {
        let q = ai_calls::table
            .filter(ai_calls::status.ne(CallStatus::Pending))
            .group_by(ai_calls::status)
            .select((ai_calls::status, count_star()))
            .into_boxed();
        scoped!(q, scope).load(c).await
    })?;
    let total = rows.iter().map(|(_, n)| n).sum();
    let failed = rows
        .iter()
        .filter(|(s, _)| *s == CallStatus::Failed)
        .map(|(_, n)| n)
        .sum();
    Ok((total, failed))
}

/// The latency (ms) at quantile `q` (0–1) of finished calls in the scope, nearest rank.
pub async fn latency_quantile(
    conn: &mut DbConn,
    scope: &Scope<'_>,
    q: f64,
) -> QueryResult<Option<i64>> {
    let n: i64 = db_run!(conn, |c| {
        let query = ai_calls::table
            .filter(ai_calls::latency_ms.is_not_null())
            .count()
            .into_boxed();
        scoped!(query, scope).get_result(c).await
    })?;
    if n == 0 {
        return Ok(None);
    }
    // Nearest rank: the ceil(q·n)-th smallest, 1-based.
    let rank = ((q * n as f64).ceil() as i64).clamp(1, n);
    db_run!(conn, |c| {
        let query = ai_calls::table
            .filter(ai_calls::latency_ms.is_not_null())
            .select(ai_calls::latency_ms)
            .order(ai_calls::latency_ms.asc())
            .offset(rank - 1)
            .limit(1)
            .into_boxed();
        scoped!(query, scope)
            .get_result::<Option<i64>>(c)
            .await
            .optional()
    })
    .map(Option::flatten)
}

/// Distinct users with a call in the window.
pub async fn active_users(conn: &mut DbConn, since: NaiveDateTime) -> QueryResult<i64> {
    db_run!(conn, |c| {
        ai_calls::table
            .filter(ai_calls::started_at.ge(since))
            .select(sql::<BigInt>("COUNT(DISTINCT user_id)"))
            .get_result(c)
            .await
    })
}

/// One provider, model and currency in a window.
#[derive(Debug, Clone)]
pub struct ModelTotals {
    /// Provider instance.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Currency of the cost (`""` when unpriced).
    pub currency: String,
    /// Calls started.
    pub calls: i64,
    /// Of which failed.
    pub failed: i64,
    /// Tokens in and out.
    pub tokens: i64,
    /// Cost, micro-units.
    pub cost_micros: i64,
}

/// Calls, failures, tokens and cost per provider, model and currency since `since`.
pub async fn per_model(conn: &mut DbConn, since: NaiveDateTime) -> QueryResult<Vec<ModelTotals>> {
    type Row = (
        String,
        String,
        Option<String>,
        CallStatus,
        i64,
        Option<i64>,
        Option<i64>,
        Option<i64>,
    );
    let rows: Vec<Row> = db_run!(conn, |c| {
        ai_calls::table
            .filter(ai_calls::started_at.ge(since))
            .group_by((
                ai_calls::provider,
                ai_calls::model,
                ai_calls::currency,
                ai_calls::status,
            ))
            .select((
                ai_calls::provider,
                ai_calls::model,
                ai_calls::currency,
                ai_calls::status,
                count_star(),
                sql::<Nullable<BigInt>>("CAST(SUM(prompt_tokens) AS BIGINT)"),
                sql::<Nullable<BigInt>>("CAST(SUM(completion_tokens) AS BIGINT)"),
                sql::<Nullable<BigInt>>("CAST(SUM(cost_micros) AS BIGINT)"),
            ))
            .load(c)
            .await
    })?;
    let mut out: Vec<ModelTotals> = Vec::new();
    for (provider, model, currency, status, n, prompt, completion, cost) in rows {
        let currency = currency.unwrap_or_default();
        let i = match out
            .iter()
            .position(|t| t.provider == provider && t.model == model && t.currency == currency)
        {
            Some(i) => i,
            None => {
                out.push(ModelTotals {
                    provider,
                    model,
                    currency,
                    calls: 0,
                    failed: 0,
                    tokens: 0,
                    cost_micros: 0,
                });
                out.len() - 1
            }
        };
        let t = &mut out[i];
        t.calls += n;
        if status == CallStatus::Failed {
            t.failed += n;
        }
        t.tokens += prompt.unwrap_or(0) + completion.unwrap_or(0);
        t.cost_micros += cost.unwrap_or(0);
    }
    out.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.model.cmp(&b.model)));
    Ok(out)
}

/// Providers with a call in the window.
pub async fn providers_since(conn: &mut DbConn, since: NaiveDateTime) -> QueryResult<Vec<String>> {
    db_run!(conn, |c| {
        ai_calls::table
            .filter(ai_calls::started_at.ge(since))
            .select(ai_calls::provider)
            .distinct()
            .order(ai_calls::provider.asc())
            .load(c)
            .await
    })
}

/// When `provider` last finished a call with `status`.
pub async fn last_finished(
    conn: &mut DbConn,
    provider: &str,
    status: CallStatus,
) -> QueryResult<Option<NaiveDateTime>> {
    db_run!(conn, |c| {
        ai_calls::table
            .filter(ai_calls::provider.eq(provider))
            .filter(ai_calls::status.eq(status))
            .select(max(ai_calls::finished_at))
            .get_result(c)
            .await
    })
}

/// The statuses and error codes of `provider`'s last `n` finished calls, newest first.
pub async fn last_statuses(
    conn: &mut DbConn,
    provider: &str,
    n: i64,
) -> QueryResult<Vec<(CallStatus, Option<String>)>> {
    db_run!(conn, |c| {
        ai_calls::table
            .filter(ai_calls::provider.eq(provider))
            .filter(ai_calls::status.eq_any([CallStatus::Succeeded, CallStatus::Failed]))
            .select((ai_calls::status, ai_calls::error_code))
            .order((ai_calls::started_at.desc(), ai_calls::id.desc()))
            .limit(n)
            .load(c)
            .await
    })
}
