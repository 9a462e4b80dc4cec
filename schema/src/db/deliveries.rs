//! Queries on `alert_deliveries`: one row per alert and target. A delivery is claimed by one
//! instance at a time (a conditional update whose row count says who won), and an attempt's end
//! is recorded only while that attempt still holds the claim.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::alerts::open_delivery;
use super::models::DeliveryRow;
use super::schema::alert_deliveries;
use super::{DbConn, db_run};
use crate::domain::DeliveryStatus;
use crate::services::sealing::Sealer;

/// The deliveries of some alerts.
pub async fn deliveries_of(
    conn: &mut DbConn,
    sealer: &Sealer,
    alert_ids: &[String],
) -> QueryResult<Vec<DeliveryRow>> {
    let rows: Vec<DeliveryRow> = db_run!(conn, |c| {
        alert_deliveries::table
            .filter(alert_deliveries::alert_id.eq_any(alert_ids))
            .select(DeliveryRow::as_select())
            .order(alert_deliveries::id.asc())
            .load(c)
            .await
    })?;
    rows.into_iter().map(|d| open_delivery(sealer, d)).collect()
}

/// Deliveries that are due: pending and due, or claimed by an instance that did not finish.
pub async fn due_deliveries(
    conn: &mut DbConn,
    sealer: &Sealer,
    now: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<DeliveryRow>> {
    let rows: Vec<DeliveryRow> = db_run!(conn, |c| {
        alert_deliveries::table
            .filter(
                alert_deliveries::status
                    .eq(DeliveryStatus::Pending)
                    .and(alert_deliveries::next_attempt_at.le(now))
                    .or(alert_deliveries::status
                        .eq(DeliveryStatus::Sending)
                        .and(alert_deliveries::claimed_until.lt(now))),
            )
            .select(DeliveryRow::as_select())
            .order(alert_deliveries::next_attempt_at.asc())
            .limit(limit)
            .load(c)
            .await
    })?;
    rows.into_iter().map(|d| open_delivery(sealer, d)).collect()
}

/// Claims a due delivery until `until`; true for the one instance that got it.
pub async fn claim_delivery(
    conn: &mut DbConn,
    d: &DeliveryRow,
    until: NaiveDateTime,
) -> QueryResult<bool> {
    let n = db_run!(conn, |c| {
        diesel::update(
            alert_deliveries::table
                .find(&d.id)
                .filter(alert_deliveries::status.eq(&d.status))
                .filter(alert_deliveries::attempts.eq(d.attempts)),
        )
        .set((
            alert_deliveries::status.eq(DeliveryStatus::Sending),
            alert_deliveries::claimed_until.eq(until),
            alert_deliveries::attempts.eq(d.attempts + 1),
        ))
        .execute(c)
        .await
    })?;
    Ok(n == 1)
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub struct AttemptEnd<'a> {
    /// Delivered, pending (to retry) or failed.
    pub status: DeliveryStatus,
    /// Why it failed.
    pub error: Option<&'a str>,
    /// When to try again.
    pub next_attempt_at: NaiveDateTime,
    /// When it was delivered.
    pub delivered_at: Option<NaiveDateTime>,
}

/// Records how attempt number `attempt` ended, if that attempt still holds the claim (one whose
/// claim ran out and was taken over by another instance changes nothing); true if recorded.
pub async fn finish_delivery(
    conn: &mut DbConn,
    id: &str,
    attempt: i64,
    end: &AttemptEnd<'_>,
) -> QueryResult<bool> {
    let n = db_run!(conn, |c| {
        diesel::update(
            alert_deliveries::table
                .find(id)
                .filter(alert_deliveries::status.eq(DeliveryStatus::Sending))
                .filter(alert_deliveries::attempts.eq(attempt)),
        )
        .set((
            alert_deliveries::status.eq(end.status),
            alert_deliveries::last_error.eq(end.error),
            alert_deliveries::next_attempt_at.eq(end.next_attempt_at),
            alert_deliveries::claimed_until.eq(None::<NaiveDateTime>),
            alert_deliveries::delivered_at.eq(end.delivered_at),
        ))
        .execute(c)
        .await
    })?;
    Ok(n == 1)
}
