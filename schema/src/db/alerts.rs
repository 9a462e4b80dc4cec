//! Queries on `alert_rules`, `alert_states`, `alerts` and `alert_deliveries`.
//!
//! Every step that must happen once across instances is a conditional statement whose affected
//! row count says who won: a state transition, the cooldown, a delivery claim.
//!
//! Rules' targets and deliveries' recipients (people's addresses) are sealed here, on their way
//! in and out.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::models::{AlertRow, AlertRule, DeliveryRow};
use super::schema::{alert_deliveries, alert_rules, alert_states, alerts};
use super::{DbConn, db_run};
use crate::services::sealing::{self, Column, Sealer};

/// `rule` as stored: its targets sealed.
fn sealed_rule(sealer: &Sealer, rule: &AlertRule) -> AlertRule {
    AlertRule {
        targets: sealer.seal(Column::AlertTargets, &rule.id, &rule.targets),
        ..rule.clone()
    }
}

/// A stored rule with its targets opened.
fn open_rule(sealer: &Sealer, mut rule: AlertRule) -> QueryResult<AlertRule> {
    rule.targets = sealer
        .open(Column::AlertTargets, &rule.id, rule.targets)
        .map_err(sealing::db_error)?;
    Ok(rule)
}

/// `d` as stored: its recipient sealed.
pub(super) fn sealed_delivery(sealer: &Sealer, d: &DeliveryRow) -> DeliveryRow {
    DeliveryRow {
        recipient: d
            .recipient
            .as_deref()
            .map(|r| sealer.seal(Column::DeliveryRecipient, &d.id, r)),
        ..d.clone()
    }
}

/// A stored delivery with its recipient opened.
pub(super) fn open_delivery(sealer: &Sealer, mut d: DeliveryRow) -> QueryResult<DeliveryRow> {
    d.recipient = match d.recipient {
        Some(r) => Some(
            sealer
                .open(Column::DeliveryRecipient, &d.id, r)
                .map_err(sealing::db_error)?,
        ),
        None => None,
    };
    Ok(d)
}

/// Inserts a rule.
pub async fn insert_rule(conn: &mut DbConn, sealer: &Sealer, rule: &AlertRule) -> QueryResult<()> {
    let rule = sealed_rule(sealer, rule);
    db_run!(conn, |c| {
        diesel::insert_into(alert_rules::table)
            .values(&rule)
            .execute(c)
            .await
    })?;
    Ok(())
}

/// Overwrites a rule's editable columns.
pub async fn update_rule(
    conn: &mut DbConn,
    sealer: &Sealer,
    rule: &AlertRule,
) -> QueryResult<usize> {
    let rule = sealed_rule(sealer, rule);
    db_run!(conn, |c| {
        diesel::update(alert_rules::table.find(&rule.id))
            .set((
                alert_rules::name.eq(&rule.name),
                alert_rules::params.eq(&rule.params),
                alert_rules::targets.eq(&rule.targets),
                alert_rules::cooldown_secs.eq(rule.cooldown_secs),
                alert_rules::enabled.eq(rule.enabled),
                alert_rules::updated_at.eq(rule.updated_at),
            ))
            .execute(c)
            .await
    })
}

/// Deletes a rule (its states, alerts and deliveries go with it).
pub async fn delete_rule(conn: &mut DbConn, id: &str) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::delete(alert_rules::table.find(id)).execute(c).await
    })
}

/// One rule.
pub async fn find_rule(
    conn: &mut DbConn,
    sealer: &Sealer,
    id: &str,
) -> QueryResult<Option<AlertRule>> {
    let rule: Option<AlertRule> = db_run!(conn, |c| {
        alert_rules::table
            .find(id)
            .select(AlertRule::as_select())
            .first(c)
            .await
            .optional()
    })?;
    rule.map(|r| open_rule(sealer, r)).transpose()
}

/// Rules, oldest first: everyone's (`owner` `None`) or one user's own.
pub async fn list_rules(
    conn: &mut DbConn,
    sealer: &Sealer,
    owner: Option<&str>,
) -> QueryResult<Vec<AlertRule>> {
    let rules: Vec<AlertRule> = db_run!(conn, |c| {
        let mut q = alert_rules::table
            .select(AlertRule::as_select())
            .order(alert_rules::id.asc())
            .into_boxed();
        if let Some(o) = owner {
            q = q.filter(alert_rules::owner_id.eq(o));
        }
        q.load(c).await
    })?;
    rules.into_iter().map(|r| open_rule(sealer, r)).collect()
}

/// Enabled rules.
pub async fn enabled_rules(conn: &mut DbConn, sealer: &Sealer) -> QueryResult<Vec<AlertRule>> {
    let rules: Vec<AlertRule> = db_run!(conn, |c| {
        alert_rules::table
            .filter(alert_rules::enabled.eq(true))
            .select(AlertRule::as_select())
            .order(alert_rules::id.asc())
            .load(c)
            .await
    })?;
    rules.into_iter().map(|r| open_rule(sealer, r)).collect()
}

/// Moves `(rule, subject)` to `firing`, if it is not there yet; true for the one caller that
/// made the change. A missing state row reads as not firing.
pub async fn transition(
    conn: &mut DbConn,
    rule_id: &str,
    subject: &str,
    firing: bool,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    db_run!(conn, |c| {
        diesel::insert_into(alert_states::table)
            .values((
                alert_states::rule_id.eq(rule_id),
                alert_states::subject.eq(subject),
                alert_states::firing.eq(false),
                alert_states::suppressed.eq(false),
                alert_states::changed_at.eq(now),
            ))
            .on_conflict((alert_states::rule_id, alert_states::subject))
            .do_nothing()
            .execute(c)
            .await
    })?;
    let changed = db_run!(conn, |c| {
        diesel::update(
            alert_states::table
                .filter(alert_states::rule_id.eq(rule_id))
                .filter(alert_states::subject.eq(subject))
                .filter(alert_states::firing.eq(!firing)),
        )
        .set((
            alert_states::firing.eq(firing),
            alert_states::changed_at.eq(now),
        ))
        .execute(c)
        .await
    })?;
    Ok(changed == 1)
}

/// Whether `(rule, subject)` is firing, and whether that firing was suppressed.
pub async fn state(
    conn: &mut DbConn,
    rule_id: &str,
    subject: &str,
) -> QueryResult<Option<(bool, bool)>> {
    db_run!(conn, |c| {
        alert_states::table
            .filter(alert_states::rule_id.eq(rule_id))
            .filter(alert_states::subject.eq(subject))
            .select((alert_states::firing, alert_states::suppressed))
            .first(c)
            .await
            .optional()
    })
}

/// Subjects of a rule that are firing.
pub async fn firing_subjects(conn: &mut DbConn, rule_id: &str) -> QueryResult<Vec<String>> {
    db_run!(conn, |c| {
        alert_states::table
            .filter(alert_states::rule_id.eq(rule_id))
            .filter(alert_states::firing.eq(true))
            .select(alert_states::subject)
            .load(c)
            .await
    })
}

/// Marks whether the current firing of `(rule, subject)` was suppressed by the cooldown.
pub async fn set_suppressed(
    conn: &mut DbConn,
    rule_id: &str,
    subject: &str,
    suppressed: bool,
) -> QueryResult<()> {
    db_run!(conn, |c| {
        diesel::update(
            alert_states::table
                .filter(alert_states::rule_id.eq(rule_id))
                .filter(alert_states::subject.eq(subject)),
        )
        .set(alert_states::suppressed.eq(suppressed))
        .execute(c)
        .await
    })?;
    Ok(())
}

/// Starts the cooldown of `(rule, subject)` if it is over (or never started); true when it was.
/// Also notes the time as the rule's `last_fired_at`.
pub async fn take_cooldown(
    conn: &mut DbConn,
    rule_id: &str,
    subject: &str,
    now: NaiveDateTime,
    over_before: NaiveDateTime,
) -> QueryResult<bool> {
    let n = db_run!(conn, |c| {
        diesel::update(
            alert_states::table
                .filter(alert_states::rule_id.eq(rule_id))
                .filter(alert_states::subject.eq(subject))
                .filter(
                    alert_states::last_fired_at
                        .is_null()
                        .or(alert_states::last_fired_at.le(over_before)),
                ),
        )
        .set(alert_states::last_fired_at.eq(now))
        .execute(c)
        .await
    })?;
    if n == 1 {
        db_run!(conn, |c| {
            diesel::update(alert_rules::table.find(rule_id))
                .set(alert_rules::last_fired_at.eq(now))
                .execute(c)
                .await
        })?;
    }
    Ok(n == 1)
}

/// Deletes states that are not firing and last changed before `cutoff` (a missing state reads
/// as not firing, so nothing is lost); returns how many.
pub async fn delete_quiet_states_before(
    conn: &mut DbConn,
    cutoff: NaiveDateTime,
) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::delete(
            alert_states::table
                .filter(alert_states::firing.eq(false))
                .filter(alert_states::changed_at.lt(cutoff)),
        )
        .execute(c)
        .await
    })
}

/// Inserts an alert and its deliveries.
pub async fn insert_alert(
    conn: &mut DbConn,
    sealer: &Sealer,
    alert: &AlertRow,
    deliveries: &[DeliveryRow],
) -> QueryResult<()> {
    db_run!(conn, |c| {
        diesel::insert_into(alerts::table)
            .values(alert)
            .execute(c)
            .await
    })?;
    for d in deliveries {
        let d = sealed_delivery(sealer, d);
        db_run!(conn, |c| {
            diesel::insert_into(alert_deliveries::table)
                .values(&d)
                .execute(c)
                .await
        })?;
    }
    Ok(())
}

/// One alert.
pub async fn find_alert(conn: &mut DbConn, id: &str) -> QueryResult<Option<AlertRow>> {
    db_run!(conn, |c| {
        alerts::table
            .find(id)
            .select(AlertRow::as_select())
            .first(c)
            .await
            .optional()
    })
}

/// Alerts newest first, with ids below `before`: everyone's, or one owner's.
pub async fn page_alerts(
    conn: &mut DbConn,
    owner: Option<&str>,
    rule_id: Option<&str>,
    before: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<AlertRow>> {
    db_run!(conn, |c| {
        let mut q = alerts::table
            .select(AlertRow::as_select())
            .order(alerts::id.desc())
            .limit(limit)
            .into_boxed();
        if let Some(o) = owner {
            q = q.filter(alerts::owner_id.eq(o));
        }
        if let Some(r) = rule_id {
            q = q.filter(alerts::rule_id.eq(r));
        }
        if let Some(b) = before {
            q = q.filter(alerts::id.lt(b));
        }
        q.load(c).await
    })
}

/// Deletes alerts older than `cutoff` (their deliveries go with them); returns how many.
pub async fn delete_alerts_before(conn: &mut DbConn, cutoff: NaiveDateTime) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::delete(alerts::table.filter(alerts::at.lt(cutoff)))
            .execute(c)
            .await
    })
}
