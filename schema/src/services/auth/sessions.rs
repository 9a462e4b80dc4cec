//! Sessions and credentials: register, login, refresh-token rotation, logout, password change.

use chrono::{DateTime, Utc};

use super::mfa::{self, SignIn};
use super::{AuthTokens, RequestMeta, Viewer, change_access};
use crate::Error;
use crate::db::models::{NewRefreshToken, NewSession, User};
use crate::db::{DbConn, sessions, users as user_queries};
use crate::services::{App, login_throttle, registration, tokens, validate};

/// Creates an account with the `USER` role, if registration allows it, and signs it in.
pub async fn register(
    app: &App,
    meta: &RequestMeta,
    input: registration::Registration<'_>,
) -> Result<AuthTokens, Error> {
    let user = registration::register(app, meta.client_ip.as_deref(), input).await?;
    let mut conn = app.db.get().await?;
    open_session(app, &mut conn, user, meta).await
}

/// Signs in. An unknown email, a wrong password and the right password of a disabled account get
/// the same `UNAUTHENTICATED` answer, after the same work, and count the same in the
/// [`login_throttle`], which may refuse the attempt before the password is even checked. With
/// two-step sign-in on, the right password gets a challenge instead of tokens
/// ([`mfa::complete_login`]).
pub async fn login(
    app: &App,
    meta: &RequestMeta,
    email: &str,
    password: &str,
) -> Result<SignIn, Error> {
    // Looked up the way it is stored; too long to be anyone's, it is still counted, cut short.
    let email: String = validate::email_key(email)
        .chars()
        .take(validate::EMAIL_MAX)
        .collect();
    let mut conn = app.db.get().await?;
    let attempt = login_throttle::admit(app, &mut conn, &email, meta.client_ip.as_deref()).await?;
    let user = user_queries::find_by_email(&mut conn, &email).await?;
    drop(conn);
    let verified = match &user {
        Some(user) => app.passwords.verify(password, &user.password_hash).await?,
        None => app.passwords.verify_dummy(password).await?,
    };
    let Some(user) = user.filter(|u| verified && u.disabled_at.is_none()) else {
        tracing::info!(target: "cloudbase::event::auth", client_ip = meta.client_ip.as_deref().unwrap_or("unknown"), "login failed");
        return Err(Error::Unauthenticated("invalid email or password".into()));
    };
    let mut conn = app.db.get().await?;
    login_throttle::succeeded(&mut conn, &attempt).await?;
    if user.mfa_enabled_at.is_some() {
        tracing::info!(user.id = %user.id, "password accepted; a second factor is owed");
        return Ok(SignIn::Challenge(
            mfa::open_challenge(app, &mut conn, &user).await?,
        ));
    }
    tracing::info!(user.id = %user.id, "user logged in");
    let tokens = open_session(app, &mut conn, user, meta).await?;
    Ok(SignIn::Tokens(Box::new(tokens)))
}

/// Starts a session for `user` and issues its first tokens.
pub(super) async fn open_session(
    app: &App,
    conn: &mut DbConn,
    user: User,
    meta: &RequestMeta,
) -> Result<AuthTokens, Error> {
    let now = app.clock.now();
    let session_id = uuid::Uuid::now_v7().to_string();
    let expires_at = now + app.tokens.refresh_ttl;
    let user_agent = meta.user_agent.as_deref();
    let client_ip = meta.client_ip.as_deref();
    let (refresh_token, refresh_hash) = tokens::new_refresh_token();
    conn.transaction(async |tx| {
        let new_session = NewSession {
            id: &session_id,
            user_id: &user.id,
            created_at: now.naive_utc(),
            last_refreshed_at: now.naive_utc(),
            expires_at: expires_at.naive_utc(),
            user_agent,
            client_ip,
        };
        sessions::insert(tx, &new_session).await?;
        insert_refresh(tx, &session_id, &refresh_hash, now, expires_at).await
    })
    .await?;
    let (access_token, access_expires_at) = app.tokens.issue_access(&user.id, &session_id, now)?;
    Ok(AuthTokens {
        access_token,
        access_token_expires_at: access_expires_at,
        refresh_token,
        refresh_token_expires_at: expires_at,
        user,
    })
}

async fn insert_refresh(
    conn: &mut DbConn,
    session_id: &str,
    hash: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), Error> {
    let id = uuid::Uuid::now_v7().to_string();
    let new = NewRefreshToken {
        id: &id,
        session_id,
        token_hash: hash,
        created_at: now.naive_utc(),
        expires_at: expires_at.naive_utc(),
    };
    sessions::insert_refresh_token(conn, &new).await?;
    Ok(())
}

/// How a refresh attempt ended inside its transaction.
enum Rotation {
    Rotated(Box<AuthTokens>),
    Reused { session_id: String, user_id: String },
    Rejected(&'static str),
}

/// Trades a refresh token for new tokens. The old token is consumed atomically, so of two
/// concurrent refreshes with one token exactly one wins; presenting a used token revokes the
/// session (reuse detection).
pub async fn refresh(app: &App, refresh_token: &str) -> Result<AuthTokens, Error> {
    let now = app.clock.now();
    let hash = tokens::hash_refresh_token(refresh_token.trim());
    let mut conn = app.db.get().await?;
    let outcome = conn
        .transaction(async |tx| {
            let Some(session_id) =
                sessions::consume_refresh_token(tx, &hash, now.naive_utc()).await?
            else {
                return Ok(match sessions::refresh_token_state(tx, &hash).await? {
                    Some((session_id, Some(_used), _)) => Rotation::Reused {
                        user_id: sessions::find(tx, &session_id).await?.user_id,
                        session_id,
                    },
                    Some(_) => Rotation::Rejected("refresh token expired"),
                    None => Rotation::Rejected("invalid refresh token"),
                });
            };
            let session = sessions::find(tx, &session_id).await?;
            if session.revoked_at.is_some() || session.expires_at <= now.naive_utc() {
                return Ok(Rotation::Rejected("session has ended; log in again"));
            }
            let user = user_queries::find(tx, &session.user_id).await?;
            if user.disabled_at.is_some() {
                return Ok(Rotation::Rejected("this account is disabled"));
            }
            let expires_at = now + app.tokens.refresh_ttl;
            let (token, new_hash) = tokens::new_refresh_token();
            insert_refresh(tx, &session_id, &new_hash, now, expires_at).await?;
            sessions::touch(tx, &session_id, now.naive_utc(), expires_at.naive_utc()).await?;
            let (access_token, access_expires_at) =
                app.tokens.issue_access(&user.id, &session_id, now)?;
            Ok(Rotation::Rotated(Box::new(AuthTokens {
                access_token,
                access_token_expires_at: access_expires_at,
                refresh_token: token,
                refresh_token_expires_at: expires_at,
                user,
            })))
        })
        .await?;
    match outcome {
        Rotation::Rotated(tokens) => Ok(*tokens),
        Rotation::Rejected(why) => Err(Error::Unauthenticated(why.into())),
        Rotation::Reused {
            session_id,
            user_id,
        } => {
            drop(conn);
            change_access(app, &user_id, async |tx| {
                sessions::revoke(tx, &session_id, now.naive_utc(), "refresh_token_reuse").await?;
                Ok(())
            })
            .await?;
            tracing::warn!(target: "cloudbase::event::auth", session_id = %session_id, "refresh token reused; session revoked");
            Err(Error::Unauthenticated(
                "refresh token was already used; the session has been revoked".into(),
            ))
        }
    }
}

/// Ends the viewer's session. Its access and refresh tokens stop working at once.
pub async fn logout(app: &App, viewer: &Viewer) -> Result<(), Error> {
    change_access(app, &viewer.user_id, async |tx| {
        sessions::revoke(tx, &viewer.session_id, app.now(), "logout").await?;
        Ok(())
    })
    .await
}

/// Checks `user`'s password through the [`login_throttle`], like a login, so a stolen access
/// token is no way around it. A wrong one is `BAD_USER_INPUT` on `field`.
pub(super) async fn confirm_password(
    app: &App,
    meta: &RequestMeta,
    user: &User,
    password: &str,
    field: &'static str,
) -> Result<(), Error> {
    let mut conn = app.db.get().await?;
    let attempt =
        login_throttle::admit(app, &mut conn, &user.email, meta.client_ip.as_deref()).await?;
    drop(conn);
    if !app.passwords.verify(password, &user.password_hash).await? {
        return Err(Error::bad_input(field, "the password is wrong"));
    }
    let mut conn = app.db.get().await?;
    login_throttle::succeeded(&mut conn, &attempt).await?;
    Ok(())
}

/// Changes the viewer's password after checking the current one ([`confirm_password`]), and
/// revokes every other session.
pub async fn change_password(
    app: &App,
    meta: &RequestMeta,
    viewer: &Viewer,
    current: &str,
    new: &str,
) -> Result<(), Error> {
    let mut conn = app.db.get().await?;
    let user = user_queries::find(&mut conn, &viewer.user_id).await?;
    drop(conn);
    validate::password("newPassword", new, &[&user.email, &user.display_name])?;
    confirm_password(app, meta, &user, current, "currentPassword").await?;
    if current == new {
        return Err(Error::bad_input(
            "newPassword",
            "the new password must differ from the current one",
        ));
    }
    let hash = app.passwords.hash(new).await?;
    let now = app.now();
    change_access(app, &user.id, async |tx| {
        user_queries::set_password_hash(tx, &user.id, &hash, now).await?;
        crate::db::mfa::end_challenges(tx, &user.id).await?;
        sessions::revoke_all_for_user(
            tx,
            &user.id,
            Some(&viewer.session_id),
            now,
            "password_changed",
        )
        .await?;
        Ok(())
    })
    .await?;
    tracing::info!(user.id = %user.id, "password changed; other sessions revoked");
    Ok(())
}
