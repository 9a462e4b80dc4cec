//! Rate limits, enforced in the database so they hold across instances: requests and tokens per
//! minute per user (a configured default, overridden per user by admins), and failed logins per
//! account and per client address. Windows are fixed (a minute; a quarter of an hour for logins).
//!
//! Requests are counted at admission with a conditional statement, so a limit is never passed.
//! Tokens are only known afterwards: admission checks the minute's tokens so far, and each call
//! adds what it used, so calls already in flight can overshoot by their own size (bounded by the
//! number of calls the request limit lets in).

use chrono::{DateTime, Duration, DurationRound, NaiveDateTime, Utc};

use super::{App, Viewer, validate};
use crate::Error;
use crate::db::rate_limits as queries;

/// Limits from config.
#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    /// Default requests per minute per user (`None`: unlimited).
    pub requests_per_minute: Option<i64>,
    /// Default tokens per minute per user (`None`: unlimited).
    pub tokens_per_minute: Option<i64>,
    /// Failed logins allowed per account per window.
    pub login_failures_per_account: i64,
    /// Failed logins allowed per client address per window.
    pub login_failures_per_address: i64,
    /// The login window.
    pub login_window: Duration,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            requests_per_minute: Some(120),
            tokens_per_minute: None,
            login_failures_per_account: 10,
            login_failures_per_address: 100,
            login_window: Duration::minutes(15),
        }
    }
}

/// The window of length `len` containing `now`: its start and end.
fn window(now: DateTime<Utc>, len: Duration) -> (NaiveDateTime, DateTime<Utc>) {
    let start = now.duration_trunc(len).unwrap_or(now);
    (start.naive_utc(), start + len)
}

fn limited(what: String, now: DateTime<Utc>, end: DateTime<Utc>) -> Error {
    Error::RateLimited {
        message: what,
        retry_after_ms: (end - now).num_milliseconds().max(1),
    }
}

/// A user's effective limits: `(requests, tokens)` per minute.
pub async fn effective(app: &App, user_id: &str) -> Result<(Option<i64>, Option<i64>), Error> {
    let mut conn = app.db.get().await?;
    let overrides = queries::overrides(&mut conn, user_id).await?;
    let defaults = &app.rate_limits;
    Ok(match overrides {
        Some((rpm, tpm)) => (
            rpm.or(defaults.requests_per_minute),
            tpm.or(defaults.tokens_per_minute),
        ),
        None => (defaults.requests_per_minute, defaults.tokens_per_minute),
    })
}

/// Admits one AI call for `user_id`, or fails with `RATE_LIMITED`.
pub async fn admit(app: &App, user_id: &str) -> Result<(), Error> {
    let (rpm, tpm) = effective(app, user_id).await?;
    if rpm.is_none() && tpm.is_none() {
        return Ok(());
    }
    let now = app.clock.now();
    let (start, end) = window(now, Duration::minutes(1));
    let mut conn = app.db.get().await?;
    if let Some(limit) = tpm
        && queries::peek(&mut conn, &format!("tpm:{user_id}"), start).await? >= limit
    {
        return Err(limited(
            format!("token limit reached ({limit} tokens a minute)"),
            now,
            end,
        ));
    }
    if let Some(limit) = rpm
        && !queries::take(&mut conn, &format!("rpm:{user_id}"), start, 1, limit).await?
    {
        return Err(limited(
            format!("request limit reached ({limit} requests a minute)"),
            now,
            end,
        ));
    }
    Ok(())
}

/// Adds the tokens a finished call used to the user's minute.
pub async fn spend_tokens(app: &App, user_id: &str, tokens: i64) -> Result<(), Error> {
    if tokens <= 0 {
        return Ok(());
    }
    let (_, tpm) = effective(app, user_id).await?;
    if tpm.is_none() {
        return Ok(());
    }
    let (start, _) = window(app.clock.now(), Duration::minutes(1));
    let mut conn = app.db.get().await?;
    queries::add(&mut conn, &format!("tpm:{user_id}"), start, tokens).await?;
    Ok(())
}

fn login_keys(email: &str, address: Option<&str>) -> (String, Option<String>) {
    (
        format!("login-account:{email}"),
        address.map(|a| format!("login-address:{a}")),
    )
}

/// Refuses a login attempt when the account or the address failed too often lately.
pub async fn check_login(app: &App, email: &str, address: Option<&str>) -> Result<(), Error> {
    let settings = &app.rate_limits;
    let now = app.clock.now();
    let (start, end) = window(now, settings.login_window);
    let (account, address) = login_keys(email, address);
    let mut conn = app.db.get().await?;
    if queries::peek(&mut conn, &account, start).await? >= settings.login_failures_per_account {
        return Err(limited(
            "too many failed logins for this account; try again later".into(),
            now,
            end,
        ));
    }
    if let Some(address) = address
        && queries::peek(&mut conn, &address, start).await? >= settings.login_failures_per_address
    {
        return Err(limited(
            "too many failed logins from this address; try again later".into(),
            now,
            end,
        ));
    }
    Ok(())
}

/// Counts a failed login against the account and the address.
pub async fn login_failed(app: &App, email: &str, address: Option<&str>) -> Result<(), Error> {
    let (start, _) = window(app.clock.now(), app.rate_limits.login_window);
    let (account, address) = login_keys(email, address);
    let mut conn = app.db.get().await?;
    queries::add(&mut conn, &account, start, 1).await?;
    if let Some(address) = address {
        queries::add(&mut conn, &address, start, 1).await?;
    }
    Ok(())
}

/// A successful login clears the account's failures (the address keeps its count).
pub async fn login_succeeded(app: &App, email: &str) -> Result<(), Error> {
    let (start, _) = window(app.clock.now(), app.rate_limits.login_window);
    let mut conn = app.db.get().await?;
    queries::clear(&mut conn, &login_keys(email, None).0, start).await?;
    Ok(())
}

/// Sets a user's overrides (admin only); `None` means the default.
pub async fn set_overrides(
    app: &App,
    viewer: &Viewer,
    user_id: &str,
    rpm: Option<i64>,
    tpm: Option<i64>,
) -> Result<(Option<i64>, Option<i64>), Error> {
    viewer.require_admin()?;
    validate::id("userId", user_id)?;
    if rpm.is_some_and(|r| r < 1) || tpm.is_some_and(|t| t < 1) {
        return Err(Error::bad_input(
            "requestsPerMinute",
            "limits must be at least 1 (omit one for the default)",
        ));
    }
    let mut conn = app.db.get().await?;
    queries::set_overrides(&mut conn, user_id, rpm, tpm, app.now())
        .await
        .map_err(|e| match e {
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::ForeignKeyViolation,
                _,
            ) => Error::bad_input("userId", "no such user"),
            other => other.into(),
        })?;
    drop(conn);
    tracing::info!(user.id = %user_id, admin.id = %viewer.user_id, "rate limits changed");
    effective(app, user_id).await
}

/// Deletes counters older than a day (from the maintenance job).
pub async fn prune(app: &App) -> Result<usize, Error> {
    let mut conn = app.db.get().await?;
    Ok(queries::prune(&mut conn, app.now() - Duration::days(1)).await?)
}
