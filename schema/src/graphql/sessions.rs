//! A user's sessions: listed, and ended one by one or all at once.

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use super::ContextExt;
use super::view::{view, views};
use crate::Error;
use crate::db::models::Session as SessionRow;
use crate::services::auth;

view!(
    /// A session as the API shows it.
    Session(SessionRow)
);

/// One sign-in (a browser, a phone, a script) and the tokens it holds: its access tokens work
/// until it ends, and its refresh token keeps it going until `expiresAt`.
#[Object]
impl Session {
    /// The session's id (the `sid` claim of its access tokens).
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }
    /// Whose.
    async fn user_id(&self) -> ID {
        ID(self.user_id.clone())
    }
    /// Whether it is the one this request was made with.
    async fn current(&self, ctx: &Context<'_>) -> Result<bool, Error> {
        Ok(ctx.viewer()?.session_id == self.id)
    }
    /// The client's `User-Agent` when it signed in.
    async fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }
    /// The client's address when it signed in.
    async fn client_ip(&self) -> Option<&str> {
        self.client_ip.as_deref()
    }
    /// When it signed in.
    async fn created_at(&self) -> DateTime<Utc> {
        self.created_at.and_utc()
    }
    /// When its refresh token was last traded for new tokens.
    async fn last_refreshed_at(&self) -> DateTime<Utc> {
        self.last_refreshed_at.and_utc()
    }
    /// When an access token of it last authenticated a request (to the minute).
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.last_used_at.map(|t| t.and_utc())
    }
    /// From which address.
    async fn last_used_ip(&self) -> Option<&str> {
        self.last_used_ip.as_deref()
    }
    /// When it ends unless refreshed before.
    async fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at.and_utc()
    }
    /// When it was ended, if it was.
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.revoked_at.map(|t| t.and_utc())
    }
    /// Why: `logout`, `revoked_by_user`, `revoked_by_admin`, `password_changed`,
    /// `user_disabled` or `refresh_token_reuse`.
    async fn revoked_reason(&self) -> Option<&str> {
        self.revoked_reason.as_deref()
    }
}

/// Session queries.
#[derive(Default)]
pub struct SessionsQuery;

#[Object]
impl SessionsQuery {
    /// Your live sessions, newest first (at most 200); `current` marks the one asking.
    async fn my_sessions(&self, ctx: &Context<'_>) -> Result<Vec<Session>, Error> {
        auth::list_sessions(ctx.app()?, ctx.viewer()?, None)
            .await
            .map(views)
    }

    /// A user's live sessions, newest first (at most 200). Admins only.
    async fn user_sessions(&self, ctx: &Context<'_>, user_id: ID) -> Result<Vec<Session>, Error> {
        let viewer = ctx.viewer()?.require_admin()?;
        auth::list_sessions(ctx.app()?, viewer, Some(&user_id))
            .await
            .map(views)
    }
}

/// Session mutations.
#[derive(Default)]
pub struct SessionsMutation;

#[Object]
impl SessionsMutation {
    /// Ends one of your sessions (an admin: anyone's). Its tokens stop working at once, on every
    /// instance, and its open WebSockets close. Ending an ended session changes nothing.
    async fn revoke_session(&self, ctx: &Context<'_>, id: ID) -> Result<Session, Error> {
        auth::revoke_session(ctx.app()?, ctx.viewer()?, &id)
            .await
            .map(Into::into)
    }

    /// Ends every one of your sessions except the one making this request ("sign out
    /// everywhere else"). Returns how many ended.
    async fn revoke_other_sessions(&self, ctx: &Context<'_>) -> Result<i64, Error> {
        auth::revoke_other_sessions(ctx.app()?, ctx.viewer()?).await
    }

    /// Ends every session of a user. Admins only. Returns how many ended.
    async fn revoke_user_sessions(&self, ctx: &Context<'_>, user_id: ID) -> Result<i64, Error> {
        auth::revoke_user_sessions(ctx.app()?, ctx.viewer()?, &user_id).await
    }
}
