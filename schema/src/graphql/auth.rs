//! Sign-up, sign-in and the session lifecycle.

use async_graphql::{Context, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::ContextExt;
use super::users::User;
use crate::Error;
use crate::services::auth::{self, AuthTokens, SignIn};
use crate::services::registration::Registration;

/// Tokens for a new or refreshed session.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// Send as `Authorization: Bearer <accessToken>` (HTTP) or in the WebSocket `connection_init`
    /// payload. Short-lived.
    pub access_token: String,
    /// When `accessToken` expires.
    pub access_token_expires_at: DateTime<Utc>,
    /// Single-use: trade it for new tokens with `refreshSession`. Reusing one ends the session.
    pub refresh_token: String,
    /// When `refreshToken` expires.
    pub refresh_token_expires_at: DateTime<Utc>,
    /// The signed-in user.
    pub user: User,
}

impl From<AuthTokens> for AuthPayload {
    fn from(t: AuthTokens) -> Self {
        Self {
            access_token: t.access_token,
            access_token_expires_at: t.access_token_expires_at,
            refresh_token: t.refresh_token,
            refresh_token_expires_at: t.refresh_token_expires_at,
            user: t.user.into(),
        }
    }
}

/// The password was right and the account has two-step sign-in on: send a code from the
/// authenticator app (or a recovery code) with `challenge` to `completeMfaLogin`.
#[derive(SimpleObject)]
pub struct MfaChallenge {
    /// Single-use; dies at `expiresAt` or after 5 wrong codes.
    pub challenge: String,
    /// When `challenge` stops working (5 minutes after the password was accepted).
    pub expires_at: DateTime<Utc>,
}

/// What a right password gets: tokens (as in `AuthPayload`), or, when the account has two-step
/// sign-in on, only `mfaChallenge`, to trade with a code in `completeMfaLogin`. Exactly one of
/// `accessToken` and `mfaChallenge` is set.
#[derive(SimpleObject)]
pub struct LoginPayload {
    /// As in `AuthPayload`; null while a code is owed.
    pub access_token: Option<String>,
    /// As in `AuthPayload`; null while a code is owed.
    pub access_token_expires_at: Option<DateTime<Utc>>,
    /// As in `AuthPayload`; null while a code is owed.
    pub refresh_token: Option<String>,
    /// As in `AuthPayload`; null while a code is owed.
    pub refresh_token_expires_at: Option<DateTime<Utc>>,
    /// The signed-in user; null while a code is owed.
    pub user: Option<User>,
    /// Set when the account has two-step sign-in on: no tokens yet.
    pub mfa_challenge: Option<MfaChallenge>,
}

impl From<SignIn> for LoginPayload {
    fn from(s: SignIn) -> Self {
        match s {
            SignIn::Tokens(t) => Self {
                access_token: Some(t.access_token),
                access_token_expires_at: Some(t.access_token_expires_at),
                refresh_token: Some(t.refresh_token),
                refresh_token_expires_at: Some(t.refresh_token_expires_at),
                user: Some(t.user.into()),
                mfa_challenge: None,
            },
            SignIn::Challenge(c) => Self {
                access_token: None,
                access_token_expires_at: None,
                refresh_token: None,
                refresh_token_expires_at: None,
                user: None,
                mfa_challenge: Some(MfaChallenge {
                    challenge: c.token,
                    expires_at: c.expires_at,
                }),
            },
        }
    }
}

/// A new account.
#[derive(InputObject)]
pub struct RegisterInput {
    /// Becomes the login; stored lower-cased.
    pub email: String,
    /// 8–128 characters, not easy to guess (common passwords, keyboard runs, repeats and the
    /// account's own email or name are refused).
    pub password: String,
    /// 1–64 characters.
    pub display_name: String,
    /// The code from an invite; needed when `registration { mode }` is `INVITE`, ignored otherwise.
    pub invite_code: Option<String>,
}

/// Credentials.
#[derive(InputObject)]
pub struct LoginInput {
    /// The account's email.
    pub email: String,
    /// The account's password.
    pub password: String,
}

/// Authentication mutations.
#[derive(Default)]
pub struct AuthMutation;

#[Object]
impl AuthMutation {
    /// Creates an account with the `USER` role and signs it in. `FORBIDDEN` when registration is
    /// closed; `RATE_LIMITED` when too many accounts came from the same address lately.
    async fn register(
        &self,
        ctx: &Context<'_>,
        input: RegisterInput,
    ) -> Result<AuthPayload, Error> {
        let meta = ctx.request_meta();
        let registration = Registration {
            email: &input.email,
            password: &input.password,
            display_name: &input.display_name,
            invite_code: input.invite_code.as_deref(),
        };
        auth::register(ctx.app()?, &meta, registration)
            .await
            .map(Into::into)
    }

    /// Signs in: tokens, or only `mfaChallenge` when the account has two-step sign-in on. A wrong
    /// email, a wrong password and a disabled account get the same `UNAUTHENTICATED` error;
    /// repeated failures get `RATE_LIMITED` with `retryAfterMs`.
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> Result<LoginPayload, Error> {
        let meta = ctx.request_meta();
        auth::login(ctx.app()?, &meta, &input.email, &input.password)
            .await
            .map(Into::into)
    }

    /// Signs in from a WeChat mini-program with the code of `wx.login`: the account linked to the
    /// WeChat user, or, when registration is open, a new one made for it. Answers like `login` (a
    /// challenge when two-step sign-in is on). WeChat's refusals: an invalid or used code
    /// `BAD_USER_INPUT` on `code` (40029, 40163), its rate limit `RATE_LIMITED` (45011), busy
    /// `UNAVAILABLE` (-1). `FORBIDDEN` when WeChat sign-in is not set up, or no account is linked
    /// and registration is not open.
    async fn wechat_login(&self, ctx: &Context<'_>, code: String) -> Result<LoginPayload, Error> {
        let meta = ctx.request_meta();
        auth::wechat::login(ctx.app()?, &meta, &code)
            .await
            .map(Into::into)
    }

    /// Links the WeChat user of a `wx.login` code to the signed-in account, so it can sign in
    /// with `wechatLogin`; the account's password confirms it (`BAD_USER_INPUT` on `password`
    /// when wrong; throttled like a login). `CONFLICT` when that WeChat user is linked to another
    /// account, or this account to another WeChat user.
    async fn link_wechat(
        &self,
        ctx: &Context<'_>,
        code: String,
        password: String,
    ) -> Result<User, Error> {
        let meta = ctx.request_meta();
        auth::wechat::link(ctx.app()?, &meta, ctx.viewer()?, &code, &password)
            .await
            .map(Into::into)
    }

    /// Unlinks WeChat from the signed-in account. `CONFLICT` for an account WeChat sign-in made,
    /// which has no other way in.
    async fn unlink_wechat(&self, ctx: &Context<'_>) -> Result<User, Error> {
        auth::wechat::unlink(ctx.app()?, ctx.viewer()?)
            .await
            .map(Into::into)
    }

    /// The second step of a login with two-step sign-in: the `challenge` from `login` and the
    /// 6-digit code from the authenticator app, or one of the recovery codes (each works once).
    /// A wrong code is `BAD_USER_INPUT` (on `code`) and counts like a wrong password; a challenge
    /// that expired, was used or had 5 wrong codes is `UNAUTHENTICATED`: sign in again.
    async fn complete_mfa_login(
        &self,
        ctx: &Context<'_>,
        challenge: String,
        code: String,
    ) -> Result<AuthPayload, Error> {
        let meta = ctx.request_meta();
        auth::mfa::complete_login(ctx.app()?, &meta, &challenge, &code)
            .await
            .map(Into::into)
    }

    /// Trades a refresh token for new tokens. Each refresh token works once; presenting a used
    /// one revokes the whole session.
    async fn refresh_session(
        &self,
        ctx: &Context<'_>,
        refresh_token: String,
    ) -> Result<AuthPayload, Error> {
        auth::refresh(ctx.app()?, &refresh_token)
            .await
            .map(Into::into)
    }

    /// Ends the current session; its tokens stop working at once.
    async fn logout(&self, ctx: &Context<'_>) -> Result<bool, Error> {
        auth::logout(ctx.app()?, ctx.limited_viewer()?).await?;
        Ok(true)
    }

    /// Asks for a password reset link by email. Answers `true` whether or not an account has
    /// this address; the email (sent only to an enabled account) carries a link valid 30 minutes,
    /// usable once. `FORBIDDEN` when the server has no `[auth] password_reset_channel`;
    /// `RATE_LIMITED` past 3 an hour for one address or 10 an hour from one client.
    async fn request_password_reset(
        &self,
        ctx: &Context<'_>,
        email: String,
    ) -> Result<bool, Error> {
        let meta = ctx.request_meta();
        auth::reset::request_reset(&ctx.shared_app()?, &meta, &email).await?;
        Ok(true)
    }

    /// Sets a new password with the token of a reset email, and ends every session of the
    /// account (two-step sign-in stays on). A token that is unknown, used or expired is
    /// `BAD_USER_INPUT` on `token`.
    async fn reset_password(
        &self,
        ctx: &Context<'_>,
        token: String,
        new_password: String,
    ) -> Result<bool, Error> {
        auth::reset::reset_password(ctx.app()?, &token, &new_password).await?;
        Ok(true)
    }

    /// Changes the password and ends every other session of the account. The new password
    /// must differ from the current one. Open to an account an admin required a new password
    /// of, and settles that requirement.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        current_password: String,
        new_password: String,
    ) -> Result<bool, Error> {
        let meta = ctx.request_meta();
        auth::change_password(
            ctx.app()?,
            &meta,
            ctx.limited_viewer()?,
            &current_password,
            &new_password,
        )
        .await?;
        Ok(true)
    }
}
