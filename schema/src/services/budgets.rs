//! Budgets that cannot be overspent, even under concurrency or across instances.
//!
//! At admission a call reserves its worst-case cost in every budget that applies (the user's and
//! the global ones) with one conditional UPDATE each (`spent + reserved + cost <= limit`), in the
//! transaction that inserts its `PENDING` record: all or nothing. When the call ends, its
//! reservations are released and the actual cost added, in the transaction that finishes the
//! record and updates the daily rollup. Reservations expire, and the sweeper releases those a
//! crash left behind. Periods (day, week, month) start over in the configured time zone.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::{App, Viewer, validate};
use crate::Error;
use crate::db::budgets as queries;
use crate::db::models::{AiCall, Budget, Reservation};
use crate::db::{DbConn, ai_calls};
use crate::events::Event;

/// Budget settings, from config.
#[derive(Debug, Clone)]
pub struct BudgetSettings {
    /// Periods start over at local midnight (and Monday, and the 1st) in this zone.
    pub timezone: Tz,
    /// How long a reservation holds before the sweeper releases it.
    pub reservation_ttl: Duration,
}

/// A budget period.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "BudgetPeriod")]
pub enum Period {
    /// From local midnight to the next.
    Day,
    /// From Monday 00:00 local to the next.
    Week,
    /// From the 1st 00:00 local to the next.
    Month,
    /// Never starts over.
    Total,
}

impl Period {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "DAY",
            Period::Week => "WEEK",
            Period::Month => "MONTH",
            Period::Total => "TOTAL",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "DAY" => Some(Period::Day),
            "WEEK" => Some(Period::Week),
            "MONTH" => Some(Period::Month),
            "TOTAL" => Some(Period::Total),
            _ => None,
        }
    }
}

fn local_midnight(tz: Tz, day: NaiveDate) -> NaiveDateTime {
    let naive = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    tz.from_local_datetime(&naive)
        .earliest()
        .map_or(naive, |t| t.with_timezone(&Utc).naive_utc())
}

/// The period containing `now`: `(start, end)` in UTC; `end` is `None` for `TOTAL`.
pub fn window(
    period: Period,
    tz: Tz,
    now: DateTime<Utc>,
    created: NaiveDateTime,
) -> (NaiveDateTime, Option<NaiveDateTime>) {
    let today = now.with_timezone(&tz).date_naive();
    let (first, next) = match period {
        Period::Total => return (created, None),
        Period::Day => (today, today + Duration::days(1)),
        Period::Week => {
            let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
            (monday, monday + Duration::days(7))
        }
        Period::Month => {
            let first = today.with_day(1).unwrap_or(today);
            let next = if first.month() == 12 {
                NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
            } else {
                NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
            };
            (first, next.unwrap_or(first + Duration::days(31)))
        }
    };
    (local_midnight(tz, first), Some(local_midnight(tz, next)))
}

/// The day a call counts towards in reports: `YYYY-MM-DD` in the configured zone.
pub fn report_day(settings: &BudgetSettings, at: NaiveDateTime) -> String {
    at.and_utc()
        .with_timezone(&settings.timezone)
        .format("%Y-%m-%d")
        .to_string()
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

/// Admits a call: inside the caller's transaction, starts new periods where due and reserves the
/// worst case in every budget that applies. Fails with `BUDGET_EXCEEDED` (and the caller's
/// transaction rolls back) if any budget has no room.
pub async fn admit(
    conn: &mut DbConn,
    app: &App,
    call: &AiCall,
    budgets: &[Budget],
    worst: Worst,
    currency: Option<&str>,
) -> Result<(), Error> {
    let now = app.clock.now();
    for budget in budgets {
        let period = Period::parse(&budget.period).unwrap_or(Period::Total);
        let mut current_end = budget.period_end;
        if let Some(end) = budget.period_end
            && now.naive_utc() >= end
        {
            let (start, next_end) = window(period, app.budgets.timezone, now, budget.created_at);
            queries::roll(conn, &budget.id, end, start, next_end).await?;
            current_end = next_end;
        }
        // A cost in another currency cannot be compared with this limit.
        let micros = if currency == Some(budget.currency.as_str()) {
            worst.micros
        } else {
            0
        };
        if !queries::reserve(conn, &budget.id, micros, worst.tokens).await? {
            let fresh = queries::find(conn, &budget.id).await?;
            let remaining = fresh.limit_micros - fresh.spent_micros - fresh.reserved_micros;
            return Err(Error::BudgetExceeded {
                message: format!(
                    "{} has no room for this call (it could cost up to {} micro-{}, {} remain)",
                    describe(&fresh),
                    micros,
                    fresh.currency,
                    remaining.max(0)
                ),
                remaining_micros: remaining.max(0),
                reset_at: current_end.map(|t| t.and_utc()),
            });
        }
        queries::insert_reservation(
            conn,
            &Reservation {
                ai_call_id: call.id.clone(),
                budget_id: budget.id.clone(),
                amount_micros: micros,
                tokens: worst.tokens,
                requests: 1,
                expires_at: (now + app.budgets.reservation_ttl).naive_utc(),
            },
        )
        .await?;
    }
    Ok(())
}

/// Settles a finished call inside the caller's transaction: releases its reservations and adds
/// what it really used (`micros` only to budgets in `currency`).
pub async fn settle(
    conn: &mut DbConn,
    call_id: &str,
    micros: i64,
    currency: Option<&str>,
    tokens: i64,
) -> Result<Vec<Event>, Error> {
    let mut alerts = Vec::new();
    for r in queries::reservations_of(conn, call_id).await? {
        let budget = queries::find(conn, &r.budget_id).await?;
        let spent = if currency == Some(budget.currency.as_str()) {
            micros
        } else {
            0
        };
        if let Some(now) = queries::settle(conn, &r, (spent, tokens, 1)).await?
            && let Some(alert) = raise_thresholds(conn, &now).await?
        {
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
async fn raise_thresholds(conn: &mut DbConn, b: &Budget) -> Result<Option<Event>, Error> {
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

/// Checks and normalises a list of threshold percentages.
pub fn thresholds(list: &[i64]) -> Result<String, Error> {
    let mut sorted: Vec<i64> = list.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() > 10 || sorted.iter().any(|t| !(1..=100).contains(t)) {
        return Err(Error::bad_input(
            "input.thresholds",
            "up to 10 percentages between 1 and 100",
        ));
    }
    Ok(sorted
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(","))
}

/// Releases reservations whose time is up (left by a crash) and fails their calls if they are
/// still `PENDING`. Returns how many it released.
pub async fn sweep(app: &App) -> Result<usize, Error> {
    let now = app.now();
    let mut conn = app.db.get().await?;
    let expired = queries::expired(&mut conn, now, 500).await?;
    let mut released = 0;
    for r in &expired {
        let done = conn
            .transaction(async |tx| {
                let settled = queries::settle(tx, r, (0, 0, 0)).await?.is_some();
                ai_calls::expire(tx, &r.ai_call_id, now).await?;
                Ok(settled)
            })
            .await?;
        released += usize::from(done);
    }
    if released > 0 {
        tracing::warn!(released, "expired budget reservations released");
    }
    Ok(released)
}

/// The thresholds a budget raises events at unless it names its own.
const DEFAULT_THRESHOLDS: [i64; 3] = [50, 80, 100];

/// A budget row starting its first period now, with no token or request limit and the default
/// thresholds.
fn new_row(
    app: &App,
    user_id: Option<String>,
    period: Period,
    currency: String,
    limit_micros: i64,
) -> Budget {
    let now = app.clock.now();
    let (period_start, period_end) = window(period, app.budgets.timezone, now, now.naive_utc());
    Budget {
        id: uuid::Uuid::now_v7().to_string(),
        scope: if user_id.is_some() { "USER" } else { "GLOBAL" }.into(),
        user_id,
        period: period.as_str().into(),
        currency,
        limit_micros,
        limit_tokens: None,
        limit_requests: None,
        spent_micros: 0,
        reserved_micros: 0,
        spent_tokens: 0,
        reserved_tokens: 0,
        spent_requests: 0,
        reserved_requests: 0,
        period_start,
        period_end,
        created_at: now.naive_utc(),
        updated_at: now.naive_utc(),
        thresholds: DEFAULT_THRESHOLDS
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(","),
        alerted_percent: 0,
    }
}

/// The budget a self-registered user starts with (`[budgets] new_user_limit_micros`); the caller
/// inserts it in the transaction that creates the user.
pub fn new_user_budget(
    app: &App,
    user_id: &str,
    settings: &super::registration::NewUserBudget,
) -> Budget {
    new_row(
        app,
        Some(user_id.to_owned()),
        settings.period,
        settings.currency.clone(),
        settings.limit_micros,
    )
}

/// A new budget, from an admin.
#[derive(Debug, Clone)]
pub struct BudgetInput {
    /// `None` for a global budget.
    pub user_id: Option<String>,
    /// Day, week, month or total.
    pub period: Period,
    /// ISO 4217 code.
    pub currency: String,
    /// Spend limit, in micro-units.
    pub limit_micros: i64,
    /// Optional token limit.
    pub limit_tokens: Option<i64>,
    /// Optional request limit.
    pub limit_requests: Option<i64>,
    /// Percentages of the limit that raise a budget event (default 50, 80, 100).
    pub thresholds: Option<Vec<i64>>,
}

fn check_limits(micros: i64, tokens: Option<i64>, requests: Option<i64>) -> Result<(), Error> {
    if micros < 0 || tokens.is_some_and(|t| t < 0) || requests.is_some_and(|r| r < 0) {
        return Err(Error::bad_input(
            "input.limit",
            "limits must not be negative",
        ));
    }
    Ok(())
}

/// Creates a budget (admin only).
pub async fn create(app: &App, viewer: &Viewer, input: BudgetInput) -> Result<Budget, Error> {
    viewer.require_admin()?;
    check_limits(input.limit_micros, input.limit_tokens, input.limit_requests)?;
    if input.currency.len() != 3 || !input.currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Error::bad_input(
            "input.currency",
            "currency must be an ISO 4217 code such as CNY",
        ));
    }
    if let Some(user) = &input.user_id {
        validate::id("input.userId", user)?;
    }
    let thresholds = thresholds(input.thresholds.as_deref().unwrap_or(&DEFAULT_THRESHOLDS))?;
    let budget = Budget {
        limit_tokens: input.limit_tokens,
        limit_requests: input.limit_requests,
        thresholds,
        ..new_row(
            app,
            input.user_id,
            input.period,
            input.currency,
            input.limit_micros,
        )
    };
    let mut conn = app.db.get().await?;
    queries::insert(&mut conn, &budget)
        .await
        .map_err(|e| match e {
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::ForeignKeyViolation,
                _,
            ) => Error::bad_input("input.userId", "no such user"),
            other => other.into(),
        })?;
    tracing::info!(budget.id = %budget.id, admin.id = %viewer.user_id, "budget created");
    Ok(budget)
}

fn not_found(e: diesel::result::Error) -> Error {
    match e {
        diesel::result::Error::NotFound => Error::NotFound("budget"),
        other => other.into(),
    }
}

/// Changes a budget's limits (admin only).
pub async fn update(
    app: &App,
    viewer: &Viewer,
    id: &str,
    limit_micros: i64,
    limit_tokens: Option<i64>,
    limit_requests: Option<i64>,
) -> Result<Budget, Error> {
    viewer.require_admin()?;
    validate::id("id", id)?;
    check_limits(limit_micros, limit_tokens, limit_requests)?;
    let mut conn = app.db.get().await?;
    queries::set_limits(
        &mut conn,
        id,
        (limit_micros, limit_tokens, limit_requests),
        app.now(),
    )
    .await
    .map_err(not_found)
}

/// Removes a budget (admin only).
pub async fn delete(app: &App, viewer: &Viewer, id: &str) -> Result<(), Error> {
    viewer.require_admin()?;
    validate::id("id", id)?;
    let mut conn = app.db.get().await?;
    if queries::delete(&mut conn, id).await? == 0 {
        return Err(Error::NotFound("budget"));
    }
    Ok(())
}

/// Budgets visible to the viewer: for a user, theirs and the global ones; an admin may ask for
/// one user's (`Some`) or all (`None`).
pub async fn list(app: &App, viewer: &Viewer, user_id: Option<&str>) -> Result<Vec<Budget>, Error> {
    let target = match (user_id, viewer.is_admin()) {
        (Some(u), true) => Some(u.to_owned()),
        (None, true) => None,
        (Some(u), false) if u != viewer.user_id => {
            return Err(Error::Forbidden("you can only see your own budgets".into()));
        }
        _ => Some(viewer.user_id.clone()),
    };
    let mut conn = app.db.get().await?;
    Ok(queries::list(&mut conn, target.as_deref()).await?)
}
