//! Admission: a call reserves its worst-case cost in every budget that applies, with one
//! conditional UPDATE each, in the transaction that inserts its `PENDING` record.

use std::sync::Arc;

use chrono::NaiveDateTime;

use super::periods::{Period, window};
use crate::Error;
use crate::db::budgets as queries;
use crate::db::models::{AiCall, Budget, Reservation};
use crate::db::{DbConn, Lazy};
use crate::events::Event;
use crate::services::{App, call_reads};

/// The budgets that apply to a call of `user_id` (made with a key of `key_family`): read once on
/// the caller's connection (checked out only to read them), then kept until a budget changes
/// ([`call_reads`]). Only their ids, periods and currencies are used from here: every limit is
/// checked by the database.
pub async fn applicable(
    app: &App,
    conn: &mut Lazy<'_>,
    user_id: &str,
    key_family: Option<&str>,
) -> Result<Arc<Vec<Budget>>, Error> {
    let memo = &app.events.call_reads().budgets;
    let key = (user_id.to_owned(), key_family.unwrap_or("").to_owned());
    call_reads::through(memo, key, async || {
        Ok::<_, Error>(Arc::new(
            queries::applicable(conn.get().await?, user_id, key_family).await?,
        ))
    })
    .await
}

/// What a call reserves in one budget.
#[derive(Debug, Clone, Copy)]
pub struct Worst {
    /// Worst-case cost, in the currency of the price in force.
    pub micros: i64,
    /// Worst-case tokens (prompt upper bound plus the output cap).
    pub tokens: i64,
}

fn describe(b: &Budget) -> String {
    match &b.user_id {
        Some(_) => format!("your {} budget", b.period.to_lowercase()),
        None => format!("the team's {} budget", b.period.to_lowercase()),
    }
}

/// What a call wants of each budget that applies, once the periods that ended were rolled over
/// ([`plan`]): admitted by [`admit`], or with the calls beside it (`services::chat::admissions`).
#[derive(Debug)]
pub struct Planned {
    /// One reservation per budget, in the budgets' order (by id).
    pub wanted: Vec<Reservation>,
    /// Each budget's current period's end.
    ends: Vec<Option<NaiveDateTime>>,
}

/// Starts new periods where due (each its own statement, which only one instance's matches, on
/// `conn` checked out only then; a budget that starts a new period publishes `BudgetsChanged`,
/// whether the call is admitted or not) and says what the call reserves in each of `budgets`: its worst case, the cost only
/// where the budget counts in the price's `currency`.
pub async fn plan(
    conn: &mut Lazy<'_>,
    app: &App,
    call: &AiCall,
    budgets: &[Budget],
    worst: Worst,
    currency: Option<&str>,
) -> Result<Planned, Error> {
    let now = app.clock.now();
    let mut ends = Vec::with_capacity(budgets.len());
    let mut wanted = Vec::with_capacity(budgets.len());
    for budget in budgets {
        let period = Period::parse(&budget.period).unwrap_or(Period::Total);
        let mut current_end = budget.period_end;
        if let Some(end) = budget.period_end
            && now.naive_utc() >= end
        {
            // The period ended whether or not this call is admitted: its own statement, which
            // only one instance's matches.
            let (start, next_end) = window(period, app.budgets.timezone, now, budget.created_at);
            conn.get()
                .await?
                .write(async |c| Ok(queries::roll(c, &budget.id, end, start, next_end).await?))
                .await?;
            app.events.publish(Event::BudgetsChanged);
            current_end = next_end;
        }
        ends.push(current_end);
        // A cost in another currency cannot be compared with this limit.
        let micros = if currency == Some(budget.currency.as_str()) {
            worst.micros
        } else {
            0
        };
        wanted.push(Reservation {
            ai_call_id: call.id.clone(),
            budget_id: budget.id.clone(),
            amount_micros: micros,
            tokens: worst.tokens,
            requests: 1,
            expires_at: (now + app.budgets.reservation_ttl).naive_utc(),
        });
    }
    Ok(Planned { wanted, ends })
}

/// Admits a call on its own: inserts its `PENDING` record and reserves what it wants
/// ([`plan`]) in every budget, in one transaction of its own (on PostgreSQL sent in one flight:
/// [`queries::insert_and_reserve_in_one_flight`]; on SQLite on the writer connection). Fails
/// with `BUDGET_EXCEEDED`, having kept nothing of it, if any budget has no room.
pub async fn admit(conn: &mut DbConn, call: &AiCall, planned: &Planned) -> Result<(), Error> {
    let wanted = &planned.wanted;
    let full = match conn {
        DbConn::Pg(c) => queries::insert_and_reserve_in_one_flight(c, call, wanted).await?,
        DbConn::Sqlite(..) => {
            // Refused inside the transaction, so that it rolls back; the budget is read there.
            conn.transaction(async |tx| {
                let DbConn::Sqlite(c, _) = tx else {
                    return Err(Error::Internal(
                        "a SQLite transaction changed backend".into(),
                    ));
                };
                match queries::insert_and_reserve(c, call, wanted).await? {
                    Some(full) => Err(refused(tx, planned, full).await),
                    None => Ok(()),
                }
            })
            .await?;
            None
        }
    };
    match full {
        Some(full) => Err(refused(conn, planned, full).await),
        None => Ok(()),
    }
}

/// The refusal of a call by the budget of `planned.wanted[full]`, which had no room for it.
pub async fn refused(conn: &mut DbConn, planned: &Planned, full: usize) -> Error {
    no_room(conn, &planned.wanted[full], planned.ends[full]).await
}

/// The refusal of a call by the budget it wanted `r` in (read as it now stands), whose period
/// ends at `end`.
async fn no_room(conn: &mut DbConn, r: &Reservation, end: Option<NaiveDateTime>) -> Error {
    let fresh = match queries::find(conn, &r.budget_id).await {
        Ok(fresh) => fresh,
        Err(e) => return e.into(),
    };
    let remaining = fresh.limit_micros - fresh.spent_micros - fresh.reserved_micros;
    Error::BudgetExceeded {
        message: format!(
            "{} has no room for this call (it could cost up to {} micro-{}, {} remain)",
            describe(&fresh),
            r.amount_micros,
            fresh.currency,
            remaining.max(0)
        ),
        remaining_micros: remaining.max(0),
        reset_at: end.map(|t| t.and_utc()),
    }
}
