//! Two-step sign-in with TOTP (RFC 6238: SHA-1, 6 digits, 30-second steps, one step of skew
//! either way), the authenticator-app standard.
//!
//! - **Enrolment**: the password gives a new secret (base32, an `otpauth://` URI and its QR code
//!   as SVG), pending until a code from the app confirms it; confirming turns two-step sign-in on
//!   and returns 10 single-use recovery codes (only their SHA-256 is stored).
//! - **Login** with two-step sign-in on answers the right password with a challenge (256 random
//!   bits, valid 5 minutes, single-use, dead after 5 wrong codes), which [`complete_login`]
//!   trades with a code or a recovery code for tokens.
//! - **No code works twice**: the last accepted time step is stored, and a code of that step or
//!   an earlier one is refused (atomically, so two requests racing with one code cannot both win).
//! - **Every code check is throttled like a password**, through the [`login_throttle`] under the
//!   account's email, and counted before it is checked.
//! - Turning it off needs the password and a code; an admin can reset it for a user who lost
//!   their device. Both, and enrolment, change the account's access (`change_access`), so every
//!   instance's access cache learns of it before they return.
//! - `[auth] require_mfa_for_admins`: an admin without it gets `MFA_REQUIRED` for everything but
//!   enrolling (see [`super::Due`]).

use chrono::{DateTime, Duration, Utc};
use totp_rs::{Builder, Secret, Totp};

use super::sessions::{confirm_password, open_session};
use super::{AuthTokens, RequestMeta, Viewer, change_access};
use crate::Error;
use crate::db::models::User;
use crate::db::{DbConn, mfa as queries, users as user_queries};
use crate::services::{App, login_throttle, rate_limits, tokens, users, validate};

/// A pending enrolment: what to put into the authenticator app.
#[derive(Debug)]
pub struct Enrolment {
    /// The secret, base32 (for typing in by hand).
    pub secret: String,
    /// `otpauth://totp/...`: what the QR code holds.
    pub otpauth_uri: String,
    /// The URI as a QR code, an SVG document.
    pub qr_svg: String,
}

/// The second step a login still owes.
#[derive(Debug)]
pub struct Challenge {
    /// What the client sends back with the code.
    pub token: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// How a right password signs in.
#[derive(Debug)]
pub enum SignIn {
    /// Tokens: the account has no two-step sign-in.
    Tokens(Box<AuthTokens>),
    /// A challenge: a code is owed first.
    Challenge(Challenge),
}

const CHALLENGE_TTL: Duration = Duration::minutes(5);
/// Wrong codes per account per hour, whatever the challenge or address: a right password, which
/// clears the login throttle's count, does not clear this one.
const WRONG_CODES_PER_HOUR: i64 = 10;
const CHALLENGE_FAILURES: i32 = 5;
const RECOVERY_CODES: usize = 10;
/// Recovery codes are `xxxxx-xxxxx` over this alphabet (no 0/o, 1/l/i), every character equally
/// likely: 10 × log2(31), about 49.5 bits each.
const RECOVERY_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
/// Longer than any code or recovery code, with room for spaces from a paste.
const CODE_MAX: usize = 64;

fn totp(secret: Secret, issuer: &str, account: &str) -> Result<Totp, Error> {
    Builder::new()
        .with_secret(secret)
        .with_issuer(Some(issuer))
        .with_account_name(account)
        .build()
        .map_err(|e| Error::Internal(format!("TOTP: {e}")))
}

fn stored_totp(secret: &str) -> Result<Totp, Error> {
    let secret = Secret::try_from_base32(secret)
        .map_err(|e| Error::Internal(format!("stored TOTP secret: {e}")))?;
    Builder::new()
        .with_secret(secret)
        .build()
        .map_err(|e| Error::Internal(format!("TOTP: {e}")))
}

/// What a code the user typed is.
enum Code {
    /// Six digits from the app.
    Totp(String),
    /// A recovery code, normalised (lower case, no separators).
    Recovery(String),
}

fn parse_code(code: &str) -> Result<Code, Error> {
    if code.len() > CODE_MAX {
        return Err(Error::bad_input(
            "code",
            "expected the 6-digit code from the authenticator app, or a recovery code",
        ));
    }
    let compact: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect::<String>()
        .to_lowercase();
    if compact.len() == 6 && compact.bytes().all(|b| b.is_ascii_digit()) {
        Ok(Code::Totp(compact))
    } else {
        Ok(Code::Recovery(compact))
    }
}

/// `n` characters of [`RECOVERY_ALPHABET`], each uniformly random: a byte is used only below
/// the largest multiple of the alphabet's size (248 of 256), so no character is likelier.
fn recovery_chars(n: usize) -> String {
    let size = RECOVERY_ALPHABET.len();
    let limit = 256 - 256 % size;
    let mut chars = String::with_capacity(n);
    while chars.len() < n {
        for b in tokens::random_bytes::<16>() {
            if usize::from(b) < limit && chars.len() < n {
                chars.push(char::from(RECOVERY_ALPHABET[usize::from(b) % size]));
            }
        }
    }
    chars
}

fn new_recovery_codes() -> (Vec<String>, Vec<String>) {
    (0..RECOVERY_CODES)
        .map(|_| {
            let chars = recovery_chars(10);
            let code = format!("{}-{}", &chars[..5], &chars[5..]);
            let hash = tokens::hash_presented(&chars);
            (code, hash)
        })
        .unzip()
}

/// Checks `code` for `user_id` and uses it up: a TOTP code's step is recorded (so it cannot be
/// replayed), a recovery code is spent. `false` when it is wrong, replayed or spent. Run it in
/// the transaction whose other changes it guards.
async fn use_code(app: &App, tx: &mut DbConn, user_id: &str, code: &str) -> Result<bool, Error> {
    let now = app.clock.now();
    match parse_code(code)? {
        Code::Totp(digits) => {
            let Some((secret, _)) = queries::secret(tx, &app.sealer, user_id).await? else {
                return Ok(false);
            };
            let seconds = u64::try_from(now.timestamp()).unwrap_or_default();
            let Some(step) = stored_totp(&secret)?.check(&digits, seconds) else {
                return Ok(false);
            };
            let step = i64::try_from(step).map_err(|e| Error::Internal(e.to_string()))?;
            Ok(queries::accept_step(tx, user_id, step).await?)
        }
        Code::Recovery(compact) => {
            let hash = tokens::hash_presented(&compact);
            Ok(queries::use_recovery_code(tx, user_id, &hash, now.naive_utc()).await?)
        }
    }
}

/// Opens the challenge a right password gets when the account has two-step sign-in on.
pub(super) async fn open_challenge(
    app: &App,
    conn: &mut DbConn,
    user: &User,
) -> Result<Challenge, Error> {
    let now = app.clock.now();
    let expires_at = now + CHALLENGE_TTL;
    let (token, hash) = tokens::new_mfa_challenge();
    queries::open_challenge(
        conn,
        &hash,
        &user.id,
        now.naive_utc(),
        expires_at.naive_utc(),
    )
    .await?;
    Ok(Challenge { token, expires_at })
}

fn wrong_code() -> Error {
    Error::bad_input("code", "the code is wrong or was already used")
}

fn wrong_codes_key(user_id: &str) -> String {
    format!("mfa-wrong:{user_id}")
}

/// `RATE_LIMITED` once the account had [`WRONG_CODES_PER_HOUR`] wrong codes in the last hour.
async fn check_wrong_codes(app: &App, conn: &mut DbConn, user_id: &str) -> Result<(), Error> {
    rate_limits::check_hourly(app, conn, &wrong_codes_key(user_id), WRONG_CODES_PER_HOUR, || {
        format!("too many wrong two-step sign-in codes for this account ({WRONG_CODES_PER_HOUR} an hour); try again later")
    })
    .await
}

/// The second step of a login: trades a live challenge and a code (or a recovery code) for
/// tokens. A wrong code (`BAD_USER_INPUT` on `code`) counts against the challenge and, like a
/// wrong password, in the login throttle; a dead challenge is `UNAUTHENTICATED`: sign in again.
pub async fn complete_login(
    app: &App,
    meta: &RequestMeta,
    challenge: &str,
    code: &str,
) -> Result<AuthTokens, Error> {
    parse_code(code)?;
    let now = app.clock.now();
    let id = tokens::hash_presented(challenge);
    let mut conn = app.db.get().await?;
    let dead = || {
        Error::Unauthenticated(
            "the sign-in challenge is unknown, used or expired; sign in again".into(),
        )
    };
    let user_id = queries::live_challenge(&mut conn, &id, now.naive_utc(), CHALLENGE_FAILURES)
        .await?
        .ok_or_else(dead)?;
    let user = user_queries::find(&mut conn, &user_id).await?;
    if user.disabled_at.is_some() || user.mfa_enabled_at.is_none() {
        return Err(dead());
    }
    // The throttles first (a refused attempt costs the challenge nothing), then the challenge's
    // own count, taken before the code is checked.
    check_wrong_codes(app, &mut conn, &user.id).await?;
    let attempt =
        login_throttle::admit(app, &mut conn, &user.email, meta.client_ip.as_deref()).await?;
    queries::take_attempt(&mut conn, &id, now.naive_utc(), CHALLENGE_FAILURES)
        .await?
        .ok_or_else(dead)?;
    let accepted = conn
        .transaction(async |tx| {
            if !use_code(app, tx, &user.id, code).await? {
                return Ok(false);
            }
            if !queries::close_challenge(tx, &id, now.naive_utc()).await? {
                // Another attempt closed it first: undo this one's use of its code.
                return Err(Error::Unauthenticated(
                    "the sign-in challenge was already used; sign in again".into(),
                ));
            }
            Ok(true)
        })
        .await?;
    if !accepted {
        drop(conn);
        rate_limits::note(app, &wrong_codes_key(&user.id)).await?;
        tracing::info!(target: "cloudbase::event::auth", user_id = %user.id, client_ip = meta.client_ip.as_deref().unwrap_or("unknown"), "two-step sign-in: wrong code");
        return Err(wrong_code());
    }
    login_throttle::succeeded(&mut conn, &attempt).await?;
    tracing::info!(user.id = %user.id, "user logged in with a second factor");
    open_session(app, &mut conn, user, meta).await
}

/// `FORBIDDEN` for an API key: two-step sign-in is managed from a signed-in session.
fn session_only(viewer: &Viewer) -> Result<(), Error> {
    match viewer.key {
        Some(_) => Err(Error::Forbidden(
            "two-step sign-in is managed from a signed-in session, not with an API key".into(),
        )),
        None => Ok(()),
    }
}

/// Starts (or starts over) enrolment: checks the password and stores a new pending secret.
/// `CONFLICT` when two-step sign-in is already on.
pub async fn start_enrolment(
    app: &App,
    meta: &RequestMeta,
    viewer: &Viewer,
    password: &str,
) -> Result<Enrolment, Error> {
    session_only(viewer)?;
    let mut conn = app.db.get().await?;
    let user = user_queries::find(&mut conn, &viewer.user_id).await?;
    drop(conn);
    if user.mfa_enabled_at.is_some() {
        return Err(Error::Conflict(
            "two-step sign-in is already on; turn it off first to enrol a new device".into(),
        ));
    }
    confirm_password(app, meta, &user, password, "password").await?;
    let secret = Secret::from(tokens::random_bytes::<20>().to_vec());
    // The apps split the label on `:`, which an address may hold.
    let totp = totp(
        secret,
        &app.account.mfa_issuer,
        &user.email.replace(':', "_"),
    )?;
    let otpauth_uri = totp
        .to_url()
        .map_err(|e| Error::Internal(format!("TOTP: {e}")))?;
    let qr_svg = qrcode::QrCode::new(otpauth_uri.as_bytes())
        .map_err(|e| Error::Internal(format!("QR code: {e}")))?
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    let secret = totp.secret().to_base32();
    let now = app.now();
    let mut conn = app.db.get().await?;
    conn.transaction(async |tx| {
        Ok::<_, Error>(queries::put_secret(tx, &app.sealer, &user.id, &secret, now).await?)
    })
    .await?;
    tracing::info!(user.id = %user.id, "two-step sign-in enrolment started");
    Ok(Enrolment {
        secret,
        otpauth_uri,
        qr_svg,
    })
}

/// Checks a code through the login throttle: counted as a failure before it is checked, taken
/// back when `check` says it was right.
async fn throttled<T>(
    app: &App,
    meta: &RequestMeta,
    user: &User,
    check: impl AsyncFnOnce() -> Result<Option<T>, Error>,
) -> Result<Option<T>, Error> {
    let mut conn = app.db.get().await?;
    check_wrong_codes(app, &mut conn, &user.id).await?;
    let attempt =
        login_throttle::admit(app, &mut conn, &user.email, meta.client_ip.as_deref()).await?;
    drop(conn);
    let out = check().await?;
    if out.is_some() {
        let mut conn = app.db.get().await?;
        login_throttle::succeeded(&mut conn, &attempt).await?;
    } else {
        rate_limits::note(app, &wrong_codes_key(&user.id)).await?;
    }
    Ok(out)
}

/// Confirms enrolment with a code from the app: turns two-step sign-in on and returns the
/// recovery codes (shown this once).
pub async fn confirm_enrolment(
    app: &App,
    meta: &RequestMeta,
    viewer: &Viewer,
    code: &str,
) -> Result<Vec<String>, Error> {
    session_only(viewer)?;
    parse_code(code)?;
    let mut conn = app.db.get().await?;
    let user = user_queries::find(&mut conn, &viewer.user_id).await?;
    let pending = queries::secret(&mut conn, &app.sealer, &user.id).await?;
    drop(conn);
    if user.mfa_enabled_at.is_some() {
        return Err(Error::Conflict("two-step sign-in is already on".into()));
    }
    if pending.is_none() {
        return Err(Error::Conflict(
            "no enrolment is pending; start one with startMfaEnrolment".into(),
        ));
    }
    let now = app.now();
    let (codes, hashes) = new_recovery_codes();
    let confirmed = throttled(app, meta, &user, async || {
        change_access(app, &user.id, async |tx| {
            if !use_code(app, tx, &user.id, code).await? {
                return Ok(None);
            }
            if !queries::enable(tx, &user.id, now).await? {
                return Err(Error::Conflict("two-step sign-in is already on".into()));
            }
            queries::replace_recovery_codes(tx, &user.id, &hashes, now).await?;
            Ok(Some(()))
        })
        .await
    })
    .await?;
    if confirmed.is_none() {
        return Err(Error::bad_input(
            "code",
            "the code is wrong or was already used; check the device's clock and enter the current code",
        ));
    }
    tracing::info!(target: "cloudbase::event::auth", user_id = %user.id, "two-step sign-in turned on");
    Ok(codes)
}

/// Replaces the recovery codes (after a code or an unused recovery code) and returns the new
/// ones; the old ones stop working.
pub async fn regenerate_recovery_codes(
    app: &App,
    meta: &RequestMeta,
    viewer: &Viewer,
    code: &str,
) -> Result<Vec<String>, Error> {
    session_only(viewer)?;
    parse_code(code)?;
    let user = enabled_user(app, &viewer.user_id).await?;
    let now = app.now();
    let (codes, hashes) = new_recovery_codes();
    let done = throttled(app, meta, &user, async || {
        let mut conn = app.db.get().await?;
        conn.transaction(async |tx| {
            if !use_code(app, tx, &user.id, code).await? {
                return Ok(None);
            }
            queries::replace_recovery_codes(tx, &user.id, &hashes, now).await?;
            Ok(Some(()))
        })
        .await
    })
    .await?;
    done.ok_or_else(wrong_code)?;
    tracing::info!(target: "cloudbase::event::auth", user_id = %user.id, "recovery codes replaced");
    Ok(codes)
}

async fn enabled_user(app: &App, user_id: &str) -> Result<User, Error> {
    let mut conn = app.db.get().await?;
    let user = user_queries::find(&mut conn, user_id).await?;
    if user.mfa_enabled_at.is_none() {
        return Err(Error::Conflict("two-step sign-in is not on".into()));
    }
    Ok(user)
}

/// Turns two-step sign-in off, given the password and a code (or a recovery code).
/// `FORBIDDEN` for an admin while `[auth] require_mfa_for_admins` is on.
pub async fn disable(
    app: &App,
    meta: &RequestMeta,
    viewer: &Viewer,
    password: &str,
    code: &str,
) -> Result<(), Error> {
    session_only(viewer)?;
    parse_code(code)?;
    if app.account.mfa_required_for_admins && viewer.is_admin() {
        return Err(Error::Forbidden(
            "admins must keep two-step sign-in on ([auth] require_mfa_for_admins)".into(),
        ));
    }
    let user = enabled_user(app, &viewer.user_id).await?;
    confirm_password(app, meta, &user, password, "password").await?;
    let now = app.now();
    let done = throttled(app, meta, &user, async || {
        change_access(app, &user.id, async |tx| {
            if !use_code(app, tx, &user.id, code).await? {
                return Ok(None);
            }
            queries::disable(tx, &user.id, now).await?;
            Ok(Some(()))
        })
        .await
    })
    .await?;
    done.ok_or_else(wrong_code)?;
    tracing::info!(target: "cloudbase::event::auth", user_id = %user.id, "two-step sign-in turned off");
    Ok(())
}

/// An admin turns a user's two-step sign-in off (a lost device): the user signs in with the
/// password alone until they enrol again. Returns the user.
pub async fn reset(app: &App, admin: &Viewer, user_id: &str) -> Result<User, Error> {
    admin.require_admin()?;
    validate::id("userId", user_id)?;
    if admin.user_id == user_id {
        return Err(Error::Forbidden(
            "turn your own two-step sign-in off with disableMfa (password and code)".into(),
        ));
    }
    let now = app.now();
    let user = change_access(app, user_id, async |tx| {
        queries::disable(tx, user_id, now).await?;
        user_queries::find(tx, user_id)
            .await
            .map_err(users::not_found)
    })
    .await?;
    tracing::warn!(target: "cloudbase::event::auth", user_id = %user.id, admin_id = %admin.user_id, "two-step sign-in reset by an admin");
    Ok(user)
}

/// How many unused recovery codes `user_id` has.
pub async fn recovery_codes_left(app: &App, user_id: &str) -> Result<i64, Error> {
    let mut conn = app.db.get().await?;
    Ok(queries::recovery_codes_left(&mut conn, user_id).await?)
}

/// Deletes challenges that expired more than a day ago, at most `limit`.
pub async fn prune_challenges(app: &App, limit: i64) -> Result<usize, Error> {
    let before = app.now() - Duration::days(1);
    let mut conn = app.db.get().await?;
    Ok(queries::prune_challenges(&mut conn, before, limit).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_told_apart_and_normalised() {
        assert!(matches!(parse_code(" 123 456 ").ok(), Some(Code::Totp(d)) if d == "123456"));
        assert!(
            matches!(parse_code("ABCDE-FGHJK").ok(), Some(Code::Recovery(r)) if r == "abcdefghjk")
        );
        assert!(matches!(parse_code("12345").ok(), Some(Code::Recovery(_))));
        assert!(parse_code(&"1".repeat(CODE_MAX + 1)).is_err());
    }

    #[test]
    fn recovery_characters_are_all_equally_likely() {
        // 31 characters over 310,000 draws: 10,000 each expected, standard deviation about 98.
        // The old `byte % 31` made the first 8 characters 9/8 as likely (about 11,100 each).
        let mut counts = std::collections::HashMap::new();
        for c in recovery_chars(310_000).chars() {
            *counts.entry(c).or_insert(0_u32) += 1;
        }
        assert_eq!(counts.len(), RECOVERY_ALPHABET.len());
        for (c, n) in counts {
            assert!((9_400..=10_600).contains(&n), "{c} drawn {n} times");
        }
    }

    #[test]
    fn recovery_codes_are_distinct_and_hash_as_typed() {
        let (codes, hashes) = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), RECOVERY_CODES);
        for (code, hash) in codes.iter().zip(&hashes) {
            assert_eq!(code.len(), 11);
            let Ok(Code::Recovery(typed)) = parse_code(&code.to_uppercase()) else {
                panic!("{code} is not a recovery code");
            };
            assert_eq!(&tokens::hash_presented(&typed), hash);
        }
    }
}
