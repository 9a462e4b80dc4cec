//! Getting back into an account: a password reset link by email, and an admin's requirement of a
//! new password.
//!
//! - [`request_reset`] answers the same whatever the address (an account, a disabled one, none),
//!   after the same work on the request path: the token is made and the email sent in the
//!   background, only for an enabled account. Requests are throttled per address asked for and per
//!   client address, which never depends on whether the account exists.
//! - The token is 256 random bits, stored as its SHA-256, valid 30 minutes, used once; using one
//!   ends the account's other tokens too.
//! - [`reset_password`] sets the new password, ends **every** session of the account on every
//!   instance, and settles an admin's requirement of a new password. Two-step sign-in stays on:
//!   the next login still asks for a code.
//! - [`require_change`] (admins): ends the user's sessions, and until the user changes the
//!   password after signing in again, that is all the account may do (`PASSWORD_CHANGE_REQUIRED`
//!   for everything else; see [`super::Due`]).

use std::sync::Arc;

use chrono::Duration;
use cloudbase_plugin_api::{Notification, Severity};

use super::{RequestMeta, Viewer, change_access};
use crate::Error;
use crate::db::models::User;
use crate::db::{password_resets as queries, sessions, users as user_queries};
use crate::ports::Destination;
use crate::services::plugins::count_call_error;
use crate::services::rate_limits::{address_key, take_hourly};
use crate::services::{App, tokens, users, validate};

const TOKEN_TTL: Duration = Duration::minutes(30);
/// Reset emails per address asked for, per hour.
const PER_EMAIL: i64 = 3;
/// Reset requests per client address, per hour.
const PER_CLIENT: i64 = 10;

/// Asks for a reset link for `email`. `Ok` whether or not such an account exists; `FORBIDDEN`
/// when this server has no `[auth] password_reset_channel`; `RATE_LIMITED` past the limits.
pub async fn request_reset(app: &Arc<App>, meta: &RequestMeta, email: &str) -> Result<(), Error> {
    let Some(channel) = app.account.reset_channel.clone() else {
        return Err(Error::Forbidden(
            "password reset by email is not set up on this server; ask an administrator".into(),
        ));
    };
    let email: String = validate::email_key(email)
        .chars()
        .take(validate::EMAIL_MAX)
        .collect();
    if let Some(ip) = meta.client_ip.as_deref() {
        take_hourly(app, &format!("reset-address:{}", address_key(ip)), PER_CLIENT, || {
            format!("too many password reset requests from your address ({PER_CLIENT} an hour); try again later")
        })
        .await?;
    }
    take_hourly(app, &format!("reset-email:{email}"), PER_EMAIL, || {
        format!("too many password reset emails for this address ({PER_EMAIL} an hour); check your inbox, or try again later")
    })
    .await?;
    let mut conn = app.db.get().await?;
    let user = user_queries::find_by_email(&mut conn, &email).await?;
    drop(conn);
    match user.filter(|u| u.disabled_at.is_none()) {
        Some(user) => send_link(app, meta, user, channel),
        None => {
            tracing::info!(target: "cloudbase::event::auth", "password reset asked for an address with no enabled account");
        }
    }
    Ok(())
}

/// Makes the token and sends the link, off the request path (so the answer takes as long with an
/// account as without one).
fn send_link(app: &Arc<App>, meta: &RequestMeta, user: User, channel: String) {
    let app = Arc::clone(app);
    let now = app.clock.now();
    let ip = meta.client_ip.clone();
    let (token, hash) = tokens::new_reset_token();
    let link = app.account.reset_url.replace("{token}", &token);
    tokio::spawn(async move {
        let stored = async {
            let mut conn = app.db.get().await?;
            let expires = (now + TOKEN_TTL).naive_utc();
            queries::insert(
                &mut conn,
                &hash,
                &user.id,
                now.naive_utc(),
                expires,
                ip.as_deref(),
            )
            .await?;
            Ok::<_, Error>(())
        };
        if let Err(e) = stored.await {
            tracing::warn!(user.id = %user.id, error = %e, "storing a password reset token failed");
            return;
        }
        let notification = email(&user, &token, &link, ip.as_deref(), now.timestamp_millis());
        match app
            .plugins
            .notify(&channel, notification, Destination::Operator)
            .await
        {
            Ok(report) if report.ok => {
                tracing::info!(user.id = %user.id, "password reset link sent");
            }
            Ok(report) => {
                tracing::warn!(user.id = %user.id, channel, detail = %report.detail, "password reset email refused");
            }
            Err(e) => {
                count_call_error(&app, &channel, &e);
                tracing::warn!(user.id = %user.id, channel, error = %e, "password reset email failed");
            }
        }
    });
}

/// The email, in the language the account chose (Chinese or English).
fn email(user: &User, token: &str, link: &str, ip: Option<&str>, at_ms: i64) -> Notification {
    let chinese = user.settings.get("lang").and_then(|l| l.as_str()) == Some("zh");
    let from = ip.unwrap_or("?");
    let (title, body) = if chinese {
        (
            "重置你的 CloudBase AI 密码".to_owned(),
            format!(
                "有人（希望是你）从 {from} 请求重置账户 {} 的密码。\n\n请在 30 分钟内打开下面的链接设置新密码。链接只能使用一次；重置后你的所有会话都会退出登录。\n\n如果不是你本人操作，请忽略此邮件，你的密码不会改变。\n\n重置码：{token}",
                user.email
            ),
        )
    } else {
        (
            "Reset your CloudBase AI password".to_owned(),
            format!(
                "Someone (hopefully you) asked from {from} to reset the password of {}.\n\nOpen the link below within 30 minutes to choose a new one. It works once, and a reset signs you out everywhere.\n\nIf it was not you, ignore this email: your password stays as it is.\n\nReset code: {token}",
                user.email
            ),
        )
    };
    Notification {
        title,
        body,
        severity: Severity::Info,
        timestamp_ms: at_ms,
        fields: Vec::new(),
        link: Some(link.to_owned()),
        recipient: Some(user.email.clone()),
    }
}

/// Sets a new password with a token from a reset email: ends every session of the account and
/// every other token. A token that is unknown, used or expired is `BAD_USER_INPUT` on `token`.
pub async fn reset_password(app: &App, token: &str, new_password: &str) -> Result<(), Error> {
    let dead = || {
        Error::bad_input(
            "token",
            "the reset link is invalid, used or expired; ask for a new one",
        )
    };
    let id = tokens::hash_presented(token);
    let now = app.now();
    let mut conn = app.db.get().await?;
    let user_id = queries::live(&mut conn, &id, now).await?.ok_or_else(dead)?;
    let user = user_queries::find(&mut conn, &user_id).await?;
    drop(conn);
    validate::password(
        "newPassword",
        new_password,
        &[&user.email, &user.display_name],
    )?;
    let hash = app.passwords.hash(new_password).await?;
    change_access(app, &user.id, async |tx| {
        queries::consume(tx, &id, now).await?.ok_or_else(dead)?;
        queries::end_all(tx, &user.id, now).await?;
        user_queries::set_password_hash(tx, &user.id, &hash, now).await?;
        crate::db::mfa::end_challenges(tx, &user.id).await?;
        sessions::revoke_all_for_user(tx, &user.id, None, now, "password_reset").await?;
        Ok(())
    })
    .await?;
    tracing::info!(target: "cloudbase::event::auth", user_id = %user.id, "password reset by email; every session ended");
    Ok(())
}

/// Requires a new password of `user_id` (admins): ends the user's sessions; after the next
/// sign-in the account may only change its password until it does.
pub async fn require_change(app: &App, admin: &Viewer, user_id: &str) -> Result<User, Error> {
    admin.require_admin()?;
    validate::id("userId", user_id)?;
    let now = app.now();
    let mut conn = app.db.get().await?;
    let target = user_queries::find(&mut conn, user_id)
        .await
        .map_err(users::not_found)?;
    drop(conn);
    if target
        .email
        .ends_with(&format!("@{}", super::wechat::RESERVED_DOMAIN))
    {
        return Err(Error::Conflict(
            "this account signs in with WeChat only and has no password to change".into(),
        ));
    }
    let user = change_access(app, user_id, async |tx| {
        let user = user_queries::require_password_change(tx, user_id, now)
            .await
            .map_err(users::not_found)?;
        crate::db::mfa::end_challenges(tx, user_id).await?;
        sessions::revoke_all_for_user(tx, user_id, None, now, "password_change_required").await?;
        Ok(user)
    })
    .await?;
    tracing::warn!(target: "cloudbase::event::auth", user_id = %user.id, admin_id = %admin.user_id, "a new password was required of a user; sessions ended");
    Ok(user)
}

/// Deletes tokens that expired more than a day ago, at most `limit`.
pub async fn prune(app: &App, limit: i64) -> Result<usize, Error> {
    let before = app.now() - Duration::days(1);
    let mut conn = app.db.get().await?;
    Ok(queries::prune(&mut conn, before, limit).await?)
}
