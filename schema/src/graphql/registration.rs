//! `registration` (public: what a sign-up page needs to know) and the admin's invites.

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::ContextExt;
use super::view::view;
use crate::Error;
use crate::db::models::Invite as InviteRow;
use crate::services::invites::{self, InviteState};
use crate::services::registration::RegistrationMode;
use crate::services::validate;

/// How sign-up works on this server; readable without signing in.
#[derive(SimpleObject)]
pub struct RegistrationInfo {
    /// `OPEN`, `INVITE` (send `inviteCode` with `register`) or `CLOSED` (hide the sign-up page).
    pub mode: RegistrationMode,
    /// Shortest password accepted, in characters.
    pub password_min_length: i32,
    /// Longest password accepted, in characters.
    pub password_max_length: i32,
}

view!(
    /// Invite as the API shows it.
    Invite(InviteRow)
);

/// An invite code's record (the code itself is only shown when it is created).
#[Object]
impl Invite {
    /// Stable id.
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }
    /// The admin's note (whom it is for).
    async fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }
    /// Where it stands now.
    async fn state(&self, ctx: &Context<'_>) -> Result<InviteState, Error> {
        Ok(invites::state(self, ctx.app()?.clock.now()))
    }
    /// The admin who created it.
    async fn created_by(&self) -> Option<ID> {
        self.created_by.clone().map(ID)
    }
    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.created_at.and_utc()
    }
    /// When it stops working, if ever.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.expires_at.map(|t| t.and_utc())
    }
    /// The account registered with it.
    async fn used_by(&self) -> Option<ID> {
        self.used_by.clone().map(ID)
    }
    /// When it was used.
    async fn used_at(&self) -> Option<DateTime<Utc>> {
        self.used_at.map(|t| t.and_utc())
    }
    /// When it was revoked.
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.revoked_at.map(|t| t.and_utc())
    }
}

/// A new invite and its code.
#[derive(SimpleObject)]
pub struct CreatedInvite {
    /// Give this to the person invited. It is shown only now: only its hash is stored.
    pub code: String,
    /// The invite's record.
    pub invite: Invite,
}

/// A new invite.
#[derive(InputObject, Default)]
pub struct CreateInviteInput {
    /// Whom it is for (at most 200 characters).
    pub note: Option<String>,
    /// When it stops working (in the future, at most 366 days ahead); never, if omitted.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Registration queries.
#[derive(Default)]
pub struct RegistrationQuery;

#[Object]
impl RegistrationQuery {
    /// How sign-up works here (no sign-in needed): a register page shows itself, asks for an
    /// invite code, or hides itself accordingly.
    async fn registration(&self, ctx: &Context<'_>) -> Result<RegistrationInfo, Error> {
        Ok(RegistrationInfo {
            mode: ctx.app()?.registration.mode,
            password_min_length: i32::try_from(validate::PASSWORD_MIN).unwrap_or(i32::MAX),
            password_max_length: i32::try_from(validate::PASSWORD_MAX).unwrap_or(i32::MAX),
        })
    }

    /// Invites, newest first (admin only); `activeOnly` leaves out used, revoked and expired ones.
    async fn invites(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1–100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
        #[graphql(desc = "Only invites that can still be used (default false).")]
        active_only: Option<bool>,
    ) -> Result<Connection<String, Invite, EmptyFields, EmptyFields>, Error> {
        let page = invites::list(
            ctx.app()?,
            ctx.viewer()?,
            first,
            after.as_deref(),
            active_only.unwrap_or(false),
        )
        .await?;
        let mut connection = Connection::new(after.is_some(), page.has_next_page);
        connection.edges.extend(
            page.invites
                .into_iter()
                .map(|invite| Edge::new(invite.id.clone(), invite.into())),
        );
        Ok(connection)
    }
}

/// Invite mutations (admin only).
#[derive(Default)]
pub struct RegistrationMutation;

#[Object]
impl RegistrationMutation {
    /// Creates a single-use invite code. The answer is the only time the code is shown.
    async fn create_invite(
        &self,
        ctx: &Context<'_>,
        input: Option<CreateInviteInput>,
    ) -> Result<CreatedInvite, Error> {
        let input = input.unwrap_or_default();
        let (code, invite) = invites::create(
            ctx.app()?,
            ctx.viewer()?,
            input.note.as_deref(),
            input.expires_at,
        )
        .await?;
        Ok(CreatedInvite {
            code,
            invite: invite.into(),
        })
    }

    /// Revokes an unused invite; a used one is a `CONFLICT`.
    async fn revoke_invite(&self, ctx: &Context<'_>, id: ID) -> Result<Invite, Error> {
        invites::revoke(ctx.app()?, ctx.viewer()?, &id)
            .await
            .map(Into::into)
    }
}
