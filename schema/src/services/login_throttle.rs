//! The login throttle: slows password guessing without letting anyone lock an account's owner out.
//!
//! Every attempt is counted under three keys, each a log of failures in the database (so it holds
//! across instances) read over a **sliding** window, so no window boundary can double what an
//! attacker gets (a fixed window allowed 10 guesses just before a boundary and 10 just after):
//!
//! - **the pair** (this account from this address): the first `free_failures` failures cost
//!   nothing; after that, each further attempt must wait `1 s × 2^(failures − free_failures)` since
//!   the last failure, at most `backoff_max`. Failures count for a day. This is the tight limit,
//!   and it applies to everyone, so guessing one account from one place gets slower and slower.
//! - **the account** (from every address): past `failures_per_account` failures in `window`,
//!   attempts are refused, but only from addresses the account has not signed in from within
//!   `trusted_for` (a session started there; see [`sessions::address_known`]). A botnet spreading
//!   guesses over many addresses is held to that many per window, and the owner, at an address
//!   they have used before, still gets in with the right password.
//! - **the address** (against every account): past `failures_per_address` failures in `window`,
//!   the address is refused for every account it has not signed in to before. Someone spraying
//!   passwords over many accounts from one address is stopped, while the other people behind the
//!   same NAT keep signing in to their own accounts (the pair limit still applies to them).
//!
//! An unknown email, a wrong password and the right password of a disabled account are all the
//! same failure: the same answer, the same work, the same counting. An attempt is logged as a
//! failure *before* the password is checked (check and log are one step under a lock of the keys;
//! [`rate_limits::lock`](crate::db::rate_limits::lock)), so a burst of parallel guesses cannot
//! all pass one check; a success then takes its entry back and clears the pair.
//!
//! An address with no trusted sign-in waits when an attack on the account or from the address is
//! under way: that is the price of a limit an attacker cannot aim at someone else. The wait is at
//! most `window`, and `retryAfterMs` says how long. IPv6 addresses count per /64 (one customer's
//! allocation), so rotating through a prefix does not reset the count.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};

use super::App;
use super::rate_limits::address_key;
use crate::Error;
use crate::db::rate_limits as queries;
use crate::db::{DbConn, sessions};

/// Login limits, from `[rate_limits]`.
#[derive(Debug, Clone)]
pub struct LoginLimits {
    /// Failures per account in `window` before untrusted addresses are refused.
    pub failures_per_account: i64,
    /// Failures per address in `window` before it is refused for accounts it has not used.
    pub failures_per_address: i64,
    /// The sliding window of the account and address counts.
    pub window: Duration,
    /// Failures of one account from one address before the backoff starts.
    pub free_failures: i64,
    /// The longest backoff (zero turns the backoff off).
    pub backoff_max: Duration,
    /// How long a sign-in makes its address trusted for the account (zero: never).
    pub trusted_for: Duration,
}

/// How long the pair's failures count.
const PAIR_MEMORY: Duration = Duration::days(1);

/// An admitted attempt, counted as a failure until [`succeeded`] takes it back.
#[derive(Debug)]
pub struct Attempt {
    at: NaiveDateTime,
    account: String,
    pair: Option<String>,
    address: Option<String>,
}

impl Attempt {
    fn keys(&self) -> impl Iterator<Item = &String> {
        self.pair
            .iter()
            .chain(std::iter::once(&self.account))
            .chain(self.address.iter())
    }
}

fn limited(message: &str, now: DateTime<Utc>, until: NaiveDateTime) -> Error {
    Error::RateLimited {
        message: message.into(),
        retry_after_ms: (until.and_utc() - now).num_milliseconds().max(1),
    }
}

/// The wait after `failures` failures of a pair: none for the free ones, then 1 s doubling.
fn backoff(limits: &LoginLimits, failures: i64) -> Duration {
    let over = failures - limits.free_failures;
    if over < 0 || limits.backoff_max <= Duration::zero() {
        return Duration::zero();
    }
    let doubled = Duration::seconds(1i64 << over.min(40));
    doubled.min(limits.backoff_max)
}

/// Admits a login attempt for `email` (normalised) from `address`, or refuses it with
/// `RATE_LIMITED` and `retryAfterMs`. An admitted attempt is already logged as a failure.
pub async fn admit(
    app: &App,
    conn: &mut DbConn,
    email: &str,
    address: Option<&str>,
) -> Result<Attempt, Error> {
    let limits = &app.rate_limits.login;
    let now = app.clock.now();
    let at = now.naive_utc();
    let trusted = match address {
        Some(ip) if limits.trusted_for > Duration::zero() => {
            sessions::address_known(conn, email, ip, at - limits.trusted_for).await?
        }
        _ => false,
    };
    let address = address.map(address_key);
    let attempt = Attempt {
        at,
        account: format!("login-account:{email}"),
        pair: address.as_ref().map(|a| format!("login-pair:{a}|{email}")),
        address: address.map(|a| format!("login-address:{a}")),
    };
    conn.transaction(async |tx| {
        for key in attempt.keys() {
            queries::lock(tx, key).await?;
        }
        if let Some(pair) = &attempt.pair {
            let recent = queries::recent(tx, pair, at - PAIR_MEMORY).await?;
            let wait = backoff(limits, recent.count);
            if let Some(last) = recent.newest
                && wait > Duration::zero()
                && last + wait > at
            {
                return Err(limited(
                    "too many failed logins for this account from your address; wait before trying again",
                    now,
                    last + wait,
                ));
            }
        }
        if !trusted {
            let since = at - limits.window;
            let recent = queries::recent(tx, &attempt.account, since).await?;
            if recent.count >= limits.failures_per_account {
                let oldest = recent.oldest.unwrap_or(at);
                return Err(limited(
                    "too many failed logins for this account; try again later",
                    now,
                    oldest + limits.window,
                ));
            }
            if let Some(address) = &attempt.address {
                let recent = queries::recent(tx, address, since).await?;
                if recent.count >= limits.failures_per_address {
                    let oldest = recent.oldest.unwrap_or(at);
                    return Err(limited(
                        "too many failed logins from your address; try again later",
                        now,
                        oldest + limits.window,
                    ));
                }
            }
        }
        for key in attempt.keys() {
            queries::add(tx, key, at, 1).await?;
        }
        Ok(())
    })
    .await?;
    Ok(attempt)
}

/// The attempt signed in: its failure entry is taken back, and the pair starts afresh. (The
/// account's and the address's other failures stay: they measure attacks, not this person.)
pub async fn succeeded(conn: &mut DbConn, attempt: &Attempt) -> Result<(), Error> {
    conn.transaction(async |tx| {
        queries::unlog(tx, &attempt.account, attempt.at).await?;
        if let Some(address) = &attempt.address {
            queries::unlog(tx, address, attempt.at).await?;
        }
        if let Some(pair) = &attempt.pair {
            queries::forget(tx, pair).await?;
        }
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three free failures and a 15-minute cap (the other limits play no part in the backoff).
    fn fifteen_minute_cap() -> LoginLimits {
        LoginLimits {
            failures_per_account: 10,
            failures_per_address: 100,
            window: Duration::minutes(15),
            free_failures: 3,
            backoff_max: Duration::minutes(15),
            trusted_for: Duration::days(30),
        }
    }

    #[test]
    fn backoff_doubles_after_the_free_failures_up_to_the_cap() {
        let limits = fifteen_minute_cap();
        let waits: Vec<i64> = (0..8).map(|n| backoff(&limits, n).num_seconds()).collect();
        assert_eq!(waits, [0, 0, 0, 1, 2, 4, 8, 16]);
        assert_eq!(backoff(&limits, 1000), Duration::minutes(15));
        let off = LoginLimits {
            backoff_max: Duration::zero(),
            ..fifteen_minute_cap()
        };
        assert_eq!(backoff(&off, 50), Duration::zero());
    }
}
