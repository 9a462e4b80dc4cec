//! Calls that never finished: their server died (a `kill -9`, a crash, a power cut) between
//! opening the `PENDING` record and finishing it. Once a call is past its deadline (it started
//! longer ago than the reservation lifetime, `[budgets] reservation_ttl_secs`, the longest any
//! call is given), it is finished `FAILED` with the code `INTERRUPTED`, added to the rollups as
//! the request it was, and its budget reservations are released, all in one transaction. A call
//! its live server finishes first is left alone (it finishes once). Safe on every instance at
//! once, and a live instance's calls within their deadline are never touched.
//!
//! A server shutting down gracefully does the same at once for its own calls still running at
//! the end of its grace period ([`interrupt`]), instead of leaving them to the next sweep.

use super::App;
use crate::Error;
use crate::db::ai_calls::{self, Finish};
use crate::db::budgets as budget_queries;
use crate::db::models::AiCall;
use crate::domain::CallStatus;
use crate::events::Event;
use crate::services::budgets;

/// The code an interrupted call is recorded with.
pub const INTERRUPTED: &str = "INTERRUPTED";

/// Calls finished per sweep at most (the next sweep takes the rest).
const BATCH: i64 = 500;

/// Finishes the calls left `PENDING` past their deadline; returns how many.
pub async fn sweep(app: &App) -> Result<usize, Error> {
    let deadline = app.now() - app.budgets.reservation_ttl;
    let stale = {
        let mut conn = app.db.get().await?;
        ai_calls::stale_pending(&mut conn, deadline, BATCH).await?
    };
    finish_abandoned(app, stale).await
}

/// Finishes `calls`, left `PENDING` past their deadline, as interrupted (unless they finished
/// meanwhile); returns how many it finished. The sweep of expired reservations finishes the
/// calls it finds this way too.
pub(crate) async fn finish_abandoned(app: &App, calls: Vec<AiCall>) -> Result<usize, Error> {
    let finished = finish(
        app,
        calls,
        "the call never finished: its server stopped while it ran",
    )
    .await?;
    if finished > 0 {
        tracing::warn!(
            target: "cloudbase::event::call",
            interrupted = finished,
            "calls left unfinished by a stopped server were recorded as interrupted"
        );
    }
    Ok(finished)
}

/// Finishes calls `ids` of this instance, still running when its shutdown grace period ended,
/// as interrupted; returns how many were still `PENDING`.
pub async fn interrupt(app: &App, ids: &[String]) -> Result<usize, Error> {
    let mut left = 0;
    for chunk in ids.chunks(usize::try_from(BATCH).unwrap_or(500)) {
        let pending = {
            let mut conn = app.db.get().await?;
            ai_calls::pending_among(&mut conn, chunk).await?
        };
        left += finish(
            app,
            pending,
            "the call did not finish before its server's shutdown deadline",
        )
        .await?;
    }
    if left > 0 {
        tracing::warn!(
            target: "cloudbase::event::call",
            interrupted = left,
            "calls still running at the end of the shutdown grace period were recorded as interrupted"
        );
    }
    Ok(left)
}

/// Finishes each of `calls` `FAILED` with [`INTERRUPTED`] and `message`, unless it finished
/// meanwhile; returns how many it finished.
async fn finish(app: &App, calls: Vec<AiCall>, message: &str) -> Result<usize, Error> {
    let now = app.now();
    let mut finished = Vec::new();
    for call in calls {
        let finish = Finish {
            provider: call.provider.clone(),
            model: call.model.clone(),
            status: CallStatus::Failed,
            error_code: Some(INTERRUPTED.into()),
            error_message: Some(message.to_owned()),
            prompt_tokens: 0,
            cached_prompt_tokens: 0,
            completion_tokens: 0,
            usage_source: None,
            finished_at: Some(now),
            latency_ms: None,
            ttft_ms: None,
            upstream_ms: None,
            price_id: None,
            cost_micros: 0,
            currency: None,
            priced: false,
            cached: false,
            attempts: call.attempts.clone(),
            prompt_log: None,
        };
        let day = budgets::report_day(&app.budgets, call.started_at);
        // Its tokens are unknown: no token counter gains any.
        let add_to = budget_queries::AddTo {
            day: &day,
            token_counters: &[],
            minute: finish.finished_at.unwrap_or_default(),
        };
        let mut conn = app.db.get().await?;
        let done = conn
            .transaction(async |tx| {
                let record =
                    budget_queries::finish_and_add_to_daily(tx, &call, &finish, &add_to, None)
                        .await?
                        .ok_or_else(|| Error::Conflict("finished meanwhile".into()))?;
                budgets::settle(tx, &call.id, 0, None, 0).await?;
                Ok(record)
            })
            .await;
        match done {
            Ok(record) => finished.push(record),
            // Its server finished it first: nothing to do.
            Err(Error::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    for record in &finished {
        app.events.publish(Event::call_updated(record));
        app.events.publish(Event::UsageUpdated {
            user_id: record.user_id.clone(),
        });
    }
    Ok(finished.len())
}
