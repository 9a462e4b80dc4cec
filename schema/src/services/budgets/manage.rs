//! Budgets as admins manage them: create, change limits, remove, list; their thresholds; and
//! the budget a self-registered user starts with.

use super::periods::{Period, window};
use crate::Error;
use crate::db::budgets as queries;
use crate::db::models::Budget;
use crate::events::Event;
use crate::services::{App, Viewer, registration, validate};

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
        api_key_id: None,
    }
}

/// The budget of an API key family (a `USER` row of the key's owner that only the family's calls
/// count against); the caller inserts it.
pub fn key_budget(
    app: &App,
    user_id: &str,
    family_id: &str,
    period: Period,
    currency: String,
    limit_micros: i64,
) -> Result<Budget, Error> {
    check_limits(limit_micros, None, None)?;
    check_currency(&currency)?;
    Ok(Budget {
        api_key_id: Some(family_id.to_owned()),
        ..new_row(
            app,
            Some(user_id.to_owned()),
            period,
            currency,
            limit_micros,
        )
    })
}

/// `BAD_USER_INPUT` unless `currency` looks like an ISO 4217 code.
fn check_currency(currency: &str) -> Result<(), Error> {
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(Error::bad_input(
            "input.currency",
            "currency must be an ISO 4217 code such as CNY",
        ));
    }
    Ok(())
}

/// The budget a self-registered user starts with (`[budgets] new_user_limit_micros`); the caller
/// inserts it in the transaction that creates the user.
pub fn new_user_budget(app: &App, user_id: &str, settings: &registration::NewUserBudget) -> Budget {
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
    check_currency(&input.currency)?;
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
    drop(conn);
    app.events.publish(Event::BudgetsChanged);
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
    let budget = queries::set_limits(
        &mut conn,
        id,
        (limit_micros, limit_tokens, limit_requests),
        app.now(),
    )
    .await
    .map_err(not_found)?;
    drop(conn);
    app.events.publish(Event::BudgetsChanged);
    Ok(budget)
}

/// Removes a budget (admin only).
pub async fn delete(app: &App, viewer: &Viewer, id: &str) -> Result<(), Error> {
    viewer.require_admin()?;
    validate::id("id", id)?;
    let mut conn = app.db.get().await?;
    if queries::delete(&mut conn, id).await? == 0 {
        return Err(Error::NotFound("budget"));
    }
    drop(conn);
    app.events.publish(Event::BudgetsChanged);
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
