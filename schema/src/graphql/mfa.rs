//! Two-step sign-in (TOTP): enrolment, recovery codes, turning it off, and the admin's reset.
//! The login side (`login` answering with a challenge, `completeMfaLogin`) is in [`super::auth`].

use async_graphql::{Context, ID, Object, SimpleObject};

use super::ContextExt;
use super::users::User;
use crate::Error;
use crate::services::auth::mfa;

/// What to put into the authenticator app. Nothing is on until `confirmMfaEnrolment`.
#[derive(SimpleObject)]
pub struct MfaEnrolment {
    /// The secret, base32, for typing in by hand.
    pub secret: String,
    /// The `otpauth://totp/...` URI the QR code holds.
    pub otpauth_uri: String,
    /// The URI as a QR code: an SVG document, made on the server.
    pub qr_code_svg: String,
}

/// Recovery codes, shown this once: each signs in once in place of a code from the app.
#[derive(SimpleObject)]
pub struct MfaRecoveryCodes {
    /// Ten codes like `abcde-fghjk`.
    pub codes: Vec<String>,
}

/// Two-step sign-in mutations.
#[derive(Default)]
pub struct MfaMutation;

#[Object]
impl MfaMutation {
    /// Starts enrolling an authenticator app (or starts over): checks the password and returns a
    /// new secret. `CONFLICT` when two-step sign-in is already on. A session only, not an API key.
    async fn start_mfa_enrolment(
        &self,
        ctx: &Context<'_>,
        password: String,
    ) -> Result<MfaEnrolment, Error> {
        let meta = ctx.request_meta();
        let e = mfa::start_enrolment(ctx.app()?, &meta, ctx.limited_viewer()?, &password).await?;
        Ok(MfaEnrolment {
            secret: e.secret,
            otpauth_uri: e.otpauth_uri,
            qr_code_svg: e.qr_svg,
        })
    }

    /// Confirms enrolment with the app's current 6-digit code: turns two-step sign-in on and
    /// returns the recovery codes. A wrong code is `BAD_USER_INPUT` and counts like a wrong
    /// password.
    async fn confirm_mfa_enrolment(
        &self,
        ctx: &Context<'_>,
        code: String,
    ) -> Result<MfaRecoveryCodes, Error> {
        let meta = ctx.request_meta();
        let codes = mfa::confirm_enrolment(ctx.app()?, &meta, ctx.limited_viewer()?, &code).await?;
        Ok(MfaRecoveryCodes { codes })
    }

    /// Replaces the recovery codes, given a code from the app (or an unused recovery code); the
    /// old ones stop working.
    async fn regenerate_mfa_recovery_codes(
        &self,
        ctx: &Context<'_>,
        code: String,
    ) -> Result<MfaRecoveryCodes, Error> {
        let meta = ctx.request_meta();
        let codes = mfa::regenerate_recovery_codes(ctx.app()?, &meta, ctx.viewer()?, &code).await?;
        Ok(MfaRecoveryCodes { codes })
    }

    /// Turns two-step sign-in off, given the password and a code (or a recovery code).
    /// `FORBIDDEN` for an admin while `[auth] require_mfa_for_admins` is on.
    async fn disable_mfa(
        &self,
        ctx: &Context<'_>,
        password: String,
        code: String,
    ) -> Result<bool, Error> {
        let meta = ctx.request_meta();
        mfa::disable(ctx.app()?, &meta, ctx.viewer()?, &password, &code).await?;
        Ok(true)
    }

    /// Turns a user's two-step sign-in off (admin only), for a lost device: they sign in with
    /// the password alone until they enrol again. Their sessions stay.
    async fn reset_user_mfa(&self, ctx: &Context<'_>, user_id: ID) -> Result<User, Error> {
        mfa::reset(ctx.app()?, ctx.viewer()?, &user_id)
            .await
            .map(Into::into)
    }
}
