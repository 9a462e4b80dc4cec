//! WeChat mini-program sign-in: a `wx.login` code, traded through WeChat's `code2Session` (the
//! [`WeChat`](crate::ports::WeChat) port; the server calls it with its app id and secret), signs
//! in the user linked to the `openid` (or, failing that, to the `unionid` when WeChat gives one),
//! or, when registration is open, a new user made for it. A signed-in user can link and unlink
//! WeChat.
//!
//! An account made by WeChat sign-in has a reserved address (`wx_…@wechat.invalid`, which no one
//! can register) and a random password no one knows: it signs in with WeChat only, and it cannot
//! be unlinked.

use sha2::{Digest, Sha256};

use super::mfa::{self, SignIn};
use super::sessions::{confirm_password, open_session};
use super::{RequestMeta, Viewer};
use crate::Error;
use crate::db::models::User;
use crate::db::{identities, users as user_queries};
use crate::error::is_unique_violation;
use crate::ports::{WeChat, WeChatIdentity};
use crate::services::registration::{self, RegistrationMode};
use crate::services::{App, Role, rate_limits, tokens, users};

const PROVIDER: &str = "wechat";
/// The domain of the addresses of accounts WeChat sign-in made.
pub const RESERVED_DOMAIN: &str = "wechat.invalid";

fn port(app: &App) -> Result<&dyn WeChat, Error> {
    app.wechat.as_deref().ok_or_else(|| {
        Error::Forbidden("WeChat sign-in is not set up on this server ([wechat] secrets)".into())
    })
}

fn check_code(code: &str) -> Result<&str, Error> {
    let code = code.trim();
    if code.is_empty() || code.len() > 128 || !code.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::bad_input(
            "code",
            "expected the code from wx.login (1-128 visible ASCII characters)",
        ));
    }
    Ok(code)
}

/// WeChat sign-ins (and links) per client address, per hour: each asks WeChat, whose quota is the
/// app's.
const PER_CLIENT: i64 = 60;

async fn identity(app: &App, meta: &RequestMeta, code: &str) -> Result<WeChatIdentity, Error> {
    let wechat = port(app)?;
    let code = check_code(code)?;
    if let Some(ip) = meta.client_ip.as_deref() {
        let key = format!("wechat-address:{}", rate_limits::address_key(ip));
        rate_limits::take_hourly(app, &key, PER_CLIENT, || {
            format!(
                "too many WeChat sign-ins from your address ({PER_CLIENT} an hour); try again later"
            )
        })
        .await?;
    }
    wechat.code2session(code).await
}

/// Signs in with a `wx.login` code: the linked user (tokens, or a challenge when two-step sign-in
/// is on), or a new one when registration is open. `FORBIDDEN` when WeChat sign-in is not set up,
/// or when no user is linked and registration is not open.
pub async fn login(app: &App, meta: &RequestMeta, code: &str) -> Result<SignIn, Error> {
    let who = identity(app, meta, code).await?;
    let mut conn = app.db.get().await?;
    let linked =
        identities::find_user(&mut conn, PROVIDER, &who.openid, who.unionid.as_deref()).await?;
    drop(conn);
    let user = match linked {
        Some(user_id) => sign_in_linked(app, &who, &user_id).await?,
        None => match create(app, meta, &who).await {
            Ok(user) => user,
            // Two first sign-ins of one WeChat user at once (a double tap, a retry): the other
            // made the account and its link; this one signs that account in.
            Err(Error::Conflict(why)) => {
                let mut conn = app.db.get().await?;
                let found =
                    identities::find_user(&mut conn, PROVIDER, &who.openid, who.unionid.as_deref())
                        .await?;
                drop(conn);
                match found {
                    Some(user_id) => sign_in_linked(app, &who, &user_id).await?,
                    None => return Err(Error::Conflict(why)),
                }
            }
            Err(e) => return Err(e),
        },
    };
    let mut conn = app.db.get().await?;
    if user.mfa_enabled_at.is_some() {
        return Ok(SignIn::Challenge(
            mfa::open_challenge(app, &mut conn, &user).await?,
        ));
    }
    tracing::info!(user.id = %user.id, "user logged in with WeChat");
    Ok(SignIn::Tokens(Box::new(
        open_session(app, &mut conn, user, meta).await?,
    )))
}

/// The account a WeChat user is linked to, unless it is disabled; the link notes the use.
async fn sign_in_linked(app: &App, who: &WeChatIdentity, user_id: &str) -> Result<User, Error> {
    let mut conn = app.db.get().await?;
    let user = user_queries::find(&mut conn, user_id).await?;
    if user.disabled_at.is_some() {
        return Err(Error::Unauthenticated("this account is disabled".into()));
    }
    // Found by `openid`, its link notes the use; found by `unionid` (the same person from
    // another of the developer's apps), the account keeps its one link.
    identities::used(
        &mut conn,
        PROVIDER,
        &who.openid,
        who.unionid.as_deref(),
        app.now(),
    )
    .await?;
    Ok(user)
}

/// A new account for a WeChat user no account is linked to.
async fn create(app: &App, meta: &RequestMeta, who: &WeChatIdentity) -> Result<User, Error> {
    if app.registration.mode != RegistrationMode::Open {
        return Err(Error::Forbidden(
            "no account is linked to this WeChat user, and registration is not open: sign in another way and link WeChat".into(),
        ));
    }
    rate_limits::take_registration(app, meta.client_ip.as_deref()).await?;
    let digest = Sha256::digest(format!("wechat:{}", who.openid).as_bytes());
    let tag = hex::encode(&digest[..8]);
    let account = users::NewAccount {
        email: format!("wx_{tag}@{RESERVED_DOMAIN}"),
        display_name: format!("WeChat user {}", &tag[..6]),
        // A password nobody knows: the account signs in with WeChat.
        password_hash: app.passwords.hash(&tokens::random_secret()).await?,
    };
    let now = app.now();
    let mut conn = app.db.get().await?;
    let user = conn
        .transaction(async |tx| {
            let user = users::insert(tx, &account, Role::User, now).await?;
            registration::provision(app, tx, &user).await?;
            identities::link(
                tx,
                PROVIDER,
                &who.openid,
                &user.id,
                who.unionid.as_deref(),
                now,
            )
            .await?;
            Ok::<_, Error>(user)
        })
        .await?;
    tracing::info!(user.id = %user.id, "user registered with WeChat");
    Ok(user)
}

/// Links the WeChat user of `code` to the signed-in viewer, after checking the password (a link
/// is a way in, which a stolen access token must not be able to add). `CONFLICT` when that WeChat
/// user is linked to another account, or the viewer already has a WeChat link.
pub async fn link(
    app: &App,
    meta: &RequestMeta,
    viewer: &Viewer,
    code: &str,
    password: &str,
) -> Result<User, Error> {
    if viewer.key.is_some() {
        return Err(Error::Forbidden(
            "link WeChat from a signed-in session, not with an API key".into(),
        ));
    }
    check_code(code)?;
    let mut conn = app.db.get().await?;
    let user = user_queries::find(&mut conn, &viewer.user_id).await?;
    drop(conn);
    confirm_password(app, meta, &user, password, "password").await?;
    let who = identity(app, meta, code).await?;
    let now = app.now();
    let mut conn = app.db.get().await?;
    if let Some(owner) = identities::find_user(&mut conn, PROVIDER, &who.openid, None).await? {
        if owner == viewer.user_id {
            return Ok(user_queries::find(&mut conn, &owner).await?);
        }
        return Err(Error::Conflict(
            "this WeChat user is linked to another account".into(),
        ));
    }
    match identities::link(
        &mut conn,
        PROVIDER,
        &who.openid,
        &viewer.user_id,
        who.unionid.as_deref(),
        now,
    )
    .await
    {
        Err(e) if is_unique_violation(&e) => {
            return Err(Error::Conflict(
                "this account is linked to another WeChat user already; unlink it first".into(),
            ));
        }
        other => other?,
    }
    tracing::info!(user.id = %viewer.user_id, "WeChat linked");
    Ok(user_queries::find(&mut conn, &viewer.user_id).await?)
}

/// Unlinks WeChat from the viewer. `CONFLICT` for an account WeChat sign-in made (it has no other
/// way in).
pub async fn unlink(app: &App, viewer: &Viewer) -> Result<User, Error> {
    if viewer.key.is_some() {
        return Err(Error::Forbidden(
            "unlink WeChat from a signed-in session, not with an API key".into(),
        ));
    }
    let mut conn = app.db.get().await?;
    let user = user_queries::find(&mut conn, &viewer.user_id).await?;
    if user.email.ends_with(&format!("@{RESERVED_DOMAIN}")) {
        return Err(Error::Conflict(
            "this account signs in with WeChat only; it cannot be unlinked".into(),
        ));
    }
    identities::unlink(&mut conn, PROVIDER, &user.id).await?;
    tracing::info!(user.id = %user.id, "WeChat unlinked");
    Ok(user)
}

/// Whether `user_id` has WeChat linked.
pub async fn linked(app: &App, user_id: &str) -> Result<bool, Error> {
    let mut conn = app.db.get().await?;
    Ok(identities::has(&mut conn, PROVIDER, user_id).await?)
}
