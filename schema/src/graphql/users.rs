//! `User`, the viewer's own profile, and the admin's user management.

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, ID, InputObject, Json, MaybeUndefined, Object};
use chrono::{DateTime, Utc};

use super::ContextExt;
use super::view::view;
use crate::Error;
use crate::db::models::User as UserRow;
use crate::services::Role;
use crate::services::users::{self, ProfileUpdate};

view!(
    /// User as the API shows it.
    User(UserRow)
);

/// An account.
#[Object]
impl User {
    /// Stable id (a UUIDv7, so ids sort by creation time).
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }

    /// Lower-cased email, used to log in.
    async fn email(&self) -> &str {
        &self.email
    }

    /// Name shown in the UI.
    async fn display_name(&self) -> &str {
        &self.display_name
    }

    /// An http(s) URL of the avatar image.
    async fn avatar_url(&self) -> Option<&str> {
        self.avatar_url.as_deref()
    }

    /// Free-form client settings (a JSON object), for frontends to keep preferences in.
    async fn settings(&self) -> Json<&serde_json::Value> {
        Json(&self.settings)
    }

    /// `USER` or `ADMIN`.
    async fn role(&self) -> Result<Role, Error> {
        Role::parse(&self.role)
            .ok_or_else(|| Error::Internal(format!("user {} has unknown role", self.id)))
    }

    /// Whether an admin has disabled the account.
    async fn disabled(&self) -> bool {
        self.disabled_at.is_some()
    }

    /// When the account was disabled, if it is.
    async fn disabled_at(&self) -> Option<DateTime<Utc>> {
        self.disabled_at.map(|t| t.and_utc())
    }

    /// Whether two-step sign-in (TOTP) is on.
    async fn mfa_enabled(&self) -> bool {
        self.mfa_enabled_at.is_some()
    }

    /// When two-step sign-in was turned on, while it is on.
    async fn mfa_enabled_at(&self) -> Option<DateTime<Utc>> {
        self.mfa_enabled_at.map(|t| t.and_utc())
    }

    /// How many of the account's recovery codes are unused (0 without two-step sign-in). Only for
    /// the account itself and admins.
    async fn mfa_recovery_codes_left(&self, ctx: &Context<'_>) -> Result<i64, Error> {
        ctx.limited_viewer()?.require_self_or_admin(&self.id)?;
        crate::services::auth::mfa::recovery_codes_left(ctx.app()?, &self.id).await
    }

    /// Whether an admin requires a new password: until it is changed, the account may only do
    /// that (`PASSWORD_CHANGE_REQUIRED` for everything else).
    async fn password_change_required(&self) -> bool {
        self.password_change_required_at.is_some()
    }

    /// Whether a WeChat user is linked (signs in with `wechatLogin`). Only for the account itself
    /// and admins.
    async fn wechat_linked(&self, ctx: &Context<'_>) -> Result<bool, Error> {
        ctx.limited_viewer()?.require_self_or_admin(&self.id)?;
        crate::services::auth::wechat::linked(ctx.app()?, &self.id).await
    }

    /// When the account was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.created_at.and_utc()
    }

    /// When the account last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.updated_at.and_utc()
    }
}

/// User queries.
#[derive(Default)]
pub struct UsersQuery;

#[Object]
impl UsersQuery {
    /// The signed-in user.
    async fn me(&self, ctx: &Context<'_>) -> Result<User, Error> {
        let viewer = ctx.limited_viewer()?;
        users::get(ctx.app()?, viewer, &viewer.user_id)
            .await
            .map(Into::into)
    }

    /// One user: yourself, or anyone for an admin.
    async fn user(&self, ctx: &Context<'_>, id: ID) -> Result<User, Error> {
        users::get(ctx.app()?, ctx.viewer()?, &id)
            .await
            .map(Into::into)
    }

    /// All users, newest first (admin only). `search` matches email or display name.
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1–100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
        #[graphql(desc = "Case-insensitive substring of email or display name.")] search: Option<
            String,
        >,
    ) -> Result<Connection<String, User, EmptyFields, EmptyFields>, Error> {
        let page = users::list(
            ctx.app()?,
            ctx.viewer()?,
            first,
            after.as_deref(),
            search.as_deref(),
        )
        .await?;
        let mut connection = Connection::new(after.is_some(), page.has_next_page);
        connection.edges.extend(
            page.users
                .into_iter()
                .map(|user| Edge::new(user.id.clone(), user.into())),
        );
        Ok(connection)
    }
}

/// Changes to the signed-in user's profile. Omitted fields stay as they are.
#[derive(InputObject)]
pub struct UpdateProfileInput {
    /// 1–64 characters.
    pub display_name: Option<String>,
    /// An absolute http(s) URL; `null` clears it.
    pub avatar_url: MaybeUndefined<String>,
    /// A JSON object of at most 16 KiB; replaces the stored one.
    pub settings: Option<Json<serde_json::Value>>,
}

/// A new account, made by an admin.
#[derive(InputObject)]
pub struct CreateUserInput {
    /// Their email; must not be taken.
    pub email: String,
    /// At least 8 characters, and not easily guessed (the same rule as registration).
    pub password: String,
    /// 1–64 characters.
    pub display_name: String,
    /// `USER` unless given.
    pub role: Option<Role>,
}

/// User mutations.
#[derive(Default)]
pub struct UsersMutation;

#[Object]
impl UsersMutation {
    /// Updates the signed-in user's profile.
    async fn update_profile(
        &self,
        ctx: &Context<'_>,
        input: UpdateProfileInput,
    ) -> Result<User, Error> {
        let update = ProfileUpdate {
            display_name: input.display_name,
            avatar_url: match input.avatar_url {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(url) => Some(Some(url)),
            },
            settings: input.settings.map(|Json(v)| v),
        };
        users::update_profile(ctx.app()?, ctx.viewer()?, update)
            .await
            .map(Into::into)
    }

    /// Creates an account (admin only), whatever the registration mode. They log in with the
    /// password given and may change it.
    async fn create_user(&self, ctx: &Context<'_>, input: CreateUserInput) -> Result<User, Error> {
        let role = input.role.unwrap_or(Role::User);
        let app = ctx.app()?;
        let viewer = ctx.viewer()?;
        users::create_by_admin(
            app,
            viewer,
            &input.email,
            &input.password,
            &input.display_name,
            role,
        )
        .await
        .map(Into::into)
    }

    /// Sets a user's role (admin only; not your own).
    async fn set_user_role(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        role: Role,
    ) -> Result<User, Error> {
        users::set_role(ctx.app()?, ctx.viewer()?, &user_id, role)
            .await
            .map(Into::into)
    }

    /// Disables a user (admin only): their sessions end and their tokens stop working at once.
    async fn disable_user(&self, ctx: &Context<'_>, user_id: ID) -> Result<User, Error> {
        users::set_disabled(ctx.app()?, ctx.viewer()?, &user_id, true)
            .await
            .map(Into::into)
    }

    /// Re-enables a disabled user (admin only). They log in again.
    async fn enable_user(&self, ctx: &Context<'_>, user_id: ID) -> Result<User, Error> {
        users::set_disabled(ctx.app()?, ctx.viewer()?, &user_id, false)
            .await
            .map(Into::into)
    }

    /// Requires a new password of a user (admin only): their sessions end at once, and after
    /// they sign in again they may only change their password (`changePassword`) until they do.
    async fn require_password_change(&self, ctx: &Context<'_>, user_id: ID) -> Result<User, Error> {
        crate::services::auth::reset::require_change(ctx.app()?, ctx.viewer()?, &user_id)
            .await
            .map(Into::into)
    }
}
