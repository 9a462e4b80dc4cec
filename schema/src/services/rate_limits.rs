//! Rate limits, enforced in the database so they hold across instances: requests and tokens per
//! minute per user (a configured default, overridden per user by admins) in fixed windows of a
//! minute, and registrations per client address in a sliding hour. Failed logins have their own
//! scheme in [`super::login_throttle`].
//!
//! Requests are counted at admission with a conditional statement, so a limit is never passed.
//! Tokens are only known afterwards: admission checks the minute's tokens so far, and each call
//! adds what it used, so calls already in flight can overshoot by their own size (bounded by the
//! number of calls the request limit lets in).

use std::net::IpAddr;

use chrono::{DateTime, Duration, DurationRound, NaiveDateTime, Utc};

use super::login_throttle::LoginLimits;
use super::{App, Viewer, call_reads, validate};
use crate::Error;
use crate::db::DbConn;
use crate::db::rate_limits as queries;

/// Limits from config.
#[derive(Debug, Clone)]
pub struct RateLimitSettings {
    /// Default requests per minute per user (`None`: unlimited).
    pub requests_per_minute: Option<i64>,
    /// Default tokens per minute per user (`None`: unlimited).
    pub tokens_per_minute: Option<i64>,
    /// The login throttle.
    pub login: LoginLimits,
    /// Registrations per client address in any hour (`None`: unlimited).
    pub registrations_per_address: Option<i64>,
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
    let memo = &app.events.call_reads().limits;
    let overrides = call_reads::through(memo, user_id.to_owned(), async || {
        let mut conn = app.db.get().await?;
        Ok::<_, Error>(queries::overrides(&mut conn, user_id).await?)
    })
    .await?;
    let defaults = &app.rate_limits;
    Ok(match overrides {
        Some((rpm, tpm)) => (
            rpm.or(defaults.requests_per_minute),
            tpm.or(defaults.tokens_per_minute),
        ),
        None => (defaults.requests_per_minute, defaults.tokens_per_minute),
    })
}

/// The token counters a call's tokens are added to once it ends (its user's and its API key's,
/// where a token limit applies).
#[derive(Debug, Clone, Default)]
pub struct TokenCounters(Vec<String>);

/// One holder of limits: the user, or an API key family.
struct Subject {
    /// Counter names are `rpm:<id>` and `tpm:<id>`.
    id: String,
    rpm: Option<i64>,
    tpm: Option<i64>,
    /// How a refusal names it.
    whose: &'static str,
}

/// Admits one AI call for the viewer under the user's limits and, for an API key, the key's own;
/// or fails with `RATE_LIMITED`. Returns the token counters the finished call adds its tokens to
/// (one lookup per call).
pub async fn admit(app: &App, viewer: &Viewer) -> Result<TokenCounters, Error> {
    crate::db::on_call_path(admit_call(app, viewer)).await
}

async fn admit_call(app: &App, viewer: &Viewer) -> Result<TokenCounters, Error> {
    let (rpm, tpm) = effective(app, &viewer.user_id).await?;
    let mut subjects = vec![Subject {
        id: viewer.user_id.clone(),
        rpm,
        tpm,
        whose: "",
    }];
    if let Some(key) = viewer.key.as_deref() {
        subjects.push(Subject {
            id: format!("key:{}", key.family_id),
            rpm: key.requests_per_minute,
            tpm: key.tokens_per_minute,
            whose: "this API key's ",
        });
    }
    subjects.retain(|s| s.rpm.is_some() || s.tpm.is_some());
    if subjects.is_empty() {
        return Ok(TokenCounters::default());
    }
    let now = app.clock.now();
    let (start, end) = window(now, Duration::minutes(1));
    let mut conn = app.db.get().await?;
    for s in &subjects {
        if let Some(limit) = s.tpm
            && queries::peek(&mut conn, &format!("tpm:{}", s.id), start).await? >= limit
        {
            return Err(limited(
                format!("{}token limit reached ({limit} tokens a minute)", s.whose),
                now,
                end,
            ));
        }
    }
    for s in &subjects {
        let key = format!("rpm:{}", s.id);
        if let Some(limit) = s.rpm
            && !conn
                .write(async |c| Ok(queries::take(c, &key, start, 1, limit).await?))
                .await?
        {
            return Err(limited(
                format!(
                    "{}request limit reached ({limit} requests a minute)",
                    s.whose
                ),
                now,
                end,
            ));
        }
    }
    Ok(TokenCounters(
        subjects
            .iter()
            .filter(|s| s.tpm.is_some())
            .map(|s| format!("tpm:{}", s.id))
            .collect(),
    ))
}

impl TokenCounters {
    /// The counters' keys: a finishing call adds its tokens to each in the transaction that
    /// finishes it (`db::budgets::AddTo`).
    pub fn keys(&self) -> &[String] {
        &self.0
    }
}

/// Adds `tokens` to each of `counters` (of the minute starting at `minute`), each in a statement
/// of its own; for a call whose finish could not count them itself.
pub async fn spend(
    conn: &mut DbConn,
    counters: &[String],
    minute: NaiveDateTime,
    tokens: i64,
) -> Result<(), Error> {
    if tokens <= 0 {
        return Ok(());
    }
    for counter in counters {
        conn.write(async |c| Ok(queries::add(c, counter, minute, tokens).await?))
            .await?;
    }
    Ok(())
}

/// The start of the minute `now` is in: the window a call's tokens are counted in.
pub fn minute_of(now: DateTime<Utc>) -> NaiveDateTime {
    window(now, Duration::minutes(1)).0
}

/// The key an address is counted under: IPv4 as is, IPv6 by its /64, anything else (an
/// unparsable forwarded header) as given, cut to 64 characters.
pub fn address_key(ip: &str) -> String {
    match ip.trim().parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        Err(_) => ip.chars().take(64).collect(),
    }
}

/// Counts one registration from `address`, or refuses it with `RATE_LIMITED` when the address has
/// registered `registrations_per_address` accounts in the last hour.
pub async fn take_registration(app: &App, address: Option<&str>) -> Result<(), Error> {
    let (Some(limit), Some(address)) = (app.rate_limits.registrations_per_address, address) else {
        return Ok(());
    };
    let key = format!("register-address:{}", address_key(address));
    take_hourly(app, &key, limit, || {
        format!("too many accounts registered from your address ({limit} an hour); try again later")
    })
    .await
}

/// Counts one event under `key`, or refuses it with `RATE_LIMITED` (`refusal` says what) when
/// `limit` were counted in the last hour: a sliding hour, the check and the count one step under a
/// lock of the key, on any number of instances.
pub async fn take_hourly(
    app: &App,
    key: &str,
    limit: i64,
    refusal: impl FnOnce() -> String,
) -> Result<(), Error> {
    let now = app.clock.now();
    let at = now.naive_utc();
    let hour = Duration::hours(1);
    let mut conn = app.db.get().await?;
    conn.transaction(async |tx| {
        queries::lock(tx, key).await?;
        let recent = queries::recent(tx, key, at - hour).await?;
        if recent.count >= limit {
            let oldest = recent.oldest.unwrap_or(at).and_utc();
            return Err(limited(refusal(), now, oldest + hour));
        }
        queries::add(tx, key, at, 1).await?;
        Ok(())
    })
    .await
}

/// `RATE_LIMITED` (`refusal` says what) when `limit` events were noted under `key` ([`note`]) in
/// the last hour; counts nothing itself.
pub async fn check_hourly(
    app: &App,
    conn: &mut DbConn,
    key: &str,
    limit: i64,
    refusal: impl FnOnce() -> String,
) -> Result<(), Error> {
    let now = app.clock.now();
    let at = now.naive_utc();
    let hour = Duration::hours(1);
    let recent = queries::recent(conn, key, at - hour).await?;
    if recent.count >= limit {
        let oldest = recent.oldest.unwrap_or(at).and_utc();
        return Err(limited(refusal(), now, oldest + hour));
    }
    Ok(())
}

/// Notes one event under `key`, for [`check_hourly`].
pub async fn note(app: &App, key: &str) -> Result<(), Error> {
    let mut conn = app.db.get().await?;
    queries::add(&mut conn, key, app.now(), 1).await?;
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
    app.events.publish(crate::events::Event::LimitsChanged {
        user_id: user_id.to_owned(),
    });
    tracing::info!(user.id = %user_id, admin.id = %viewer.user_id, "rate limits changed");
    effective(app, user_id).await
}

/// Deletes counters older than a day (from the maintenance job).
pub async fn prune(app: &App) -> Result<usize, Error> {
    let mut conn = app.db.get().await?;
    let before = app.now() - Duration::days(1);
    conn.write(async |c| Ok(queries::prune(c, before).await?))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_keyed_by_ipv4_or_ipv6_prefix() {
        assert_eq!(address_key("203.0.113.7"), "203.0.113.7");
        assert_eq!(
            address_key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            address_key("2001:db8:1:2::1"),
            address_key("2001:db8:1:2:ffff::9")
        );
        assert_eq!(address_key("::ffff:203.0.113.7"), "203.0.113.7");
        assert_eq!(address_key("not an ip"), "not an ip");
    }
}
