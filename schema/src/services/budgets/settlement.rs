//! Settlement: a finished call's reservations are released and its actual cost added, raising
//! threshold events; the sweeper releases the reservations a crash left behind.

use crate::Error;
use crate::db::budgets as queries;
use crate::db::models::Budget;
use crate::db::{DbConn, ai_calls};
use crate::events::Event;
use crate::services::App;

/// Settles a finished call inside the caller's transaction: releases its reservations and adds
/// what it really used (`micros` only to budgets in `currency`).
pub async fn settle(
    conn: &mut DbConn,
    call_id: &str,
    micros: i64,
    currency: Option<&str>,
    tokens: i64,
) -> Result<Vec<Event>, Error> {
    // No budget's currency is empty: without a currency, no cost counts.
    let settled =
        queries::settle_call(conn, call_id, micros, currency.unwrap_or(""), tokens).await?;
    raise_thresholds(conn, &settled).await
}

/// Raises, for each of `settled` (budgets as a settlement left them), the highest threshold it
/// has crossed and not yet raised this period; returns the events to publish once the
/// transaction commits.
pub async fn raise_thresholds(conn: &mut DbConn, settled: &[Budget]) -> Result<Vec<Event>, Error> {
    let mut alerts = Vec::new();
    for now in settled {
        if let Some(alert) = raise_threshold(conn, now).await? {
            alerts.push(alert);
        }
    }
    Ok(alerts)
}

/// The percentage of the spend limit used (past 100 when over; 100 for a zero limit once used).
fn percent_used(b: &Budget) -> i64 {
    match b.limit_micros {
        0 if b.spent_micros > 0 => 100,
        0 => 0,
        limit => {
            i64::try_from(i128::from(b.spent_micros) * 100 / i128::from(limit)).unwrap_or(i64::MAX)
        }
    }
}

/// Raises the highest threshold the budget has crossed and not yet raised this period, returning
/// the event to publish once the transaction commits. The conditional update makes each
/// threshold fire once per period, however many instances settle.
async fn raise_threshold(conn: &mut DbConn, b: &Budget) -> Result<Option<Event>, Error> {
    let used = percent_used(b);
    let crossed = b
        .threshold_list()
        .into_iter()
        .filter(|t| *t <= used && *t > b.alerted_percent)
        .max();
    if let Some(threshold) = crossed
        && queries::mark_alerted(conn, &b.id, threshold).await?
    {
        // The budget event: logged now; the event bus publishes it to subscribers and alert rules.
        tracing::warn!(
            target: "cloudbase::event::budget",
            threshold, budget.id = %b.id, user.id = ?b.user_id, percent_used = used,
            spent_micros = b.spent_micros, limit_micros = b.limit_micros, currency = %b.currency,
            "budget threshold crossed"
        );
        return Ok(Some(Event::BudgetAlert {
            budget_id: b.id.clone(),
            user_id: b.user_id.clone(),
            threshold,
            percent_used: used,
        }));
    }
    Ok(None)
}

/// Releases reservations whose time is up (left by a crash). A call still `PENDING` that holds
/// one is past its deadline (a reservation lives as long as a call may run): it is finished as
/// the interrupted-call sweep finishes it (`INTERRUPTED`, added to the rollups, its reservations
/// released, in one transaction), so a call its server left ends the same way whichever sweep
/// finds it first (that sweep logs and counts them). Returns how many reservations of finished
/// calls it released.
pub async fn sweep(app: &App) -> Result<usize, Error> {
    let now = app.now();
    let (expired, pending) = {
        let mut conn = app.db.get().await?;
        let expired = queries::expired(&mut conn, now, 500).await?;
        let ids: Vec<String> = expired.iter().map(|r| r.ai_call_id.clone()).collect();
        let pending = if ids.is_empty() {
            Vec::new()
        } else {
            ai_calls::pending_among(&mut conn, &ids).await?
        };
        (expired, pending)
    };
    let pending_ids: std::collections::HashSet<String> =
        pending.iter().map(|c| c.id.clone()).collect();
    crate::services::chat::interrupted::finish_abandoned(app, pending).await?;
    let mut released = 0;
    let mut conn = app.db.get().await?;
    for r in expired
        .iter()
        .filter(|r| !pending_ids.contains(&r.ai_call_id))
    {
        let settled = conn
            .transaction(async |tx| Ok(queries::settle(tx, r, (0, 0, 0)).await?.is_some()))
            .await?;
        released += usize::from(settled);
    }
    if released > 0 {
        tracing::warn!(released, "expired budget reservations released");
    }
    Ok(released)
}
