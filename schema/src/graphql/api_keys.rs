//! API keys: `apiKeys`, and create, update, revoke and rotate. A key's secret is a result of
//! `createApiKey` and `rotateApiKey` only, shown once.

use async_graphql::{Context, Enum, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::ContextExt;
use super::budgets::Budget;
use super::money::Micros;
use super::view::{view, views};
use crate::Error;
use crate::db::models::ApiKey as ApiKeyRow;
use crate::services::api_keys::{self, CreatedKey, KeyBudget, KeyGrant, KeyScope, KeySettings};
use crate::services::budgets::Period;

/// Where a key stands.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeyState {
    /// It works.
    Active,
    /// It works until its `revokedAt` (a rotation's grace period).
    Rotating,
    /// Revoked: refused.
    Revoked,
    /// Past its `expiresAt`: refused.
    Expired,
}

view!(
    /// API key as the API shows it.
    ApiKey(ApiKeyRow)
);

/// An API key's record (never its secret, which only `createApiKey` and `rotateApiKey` return).
#[Object]
impl ApiKey {
    /// Stable id (call records name it).
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }
    /// The owner.
    async fn user_id(&self) -> ID {
        ID(self.user_id.clone())
    }
    /// What the owner calls it.
    async fn name(&self) -> &str {
        &self.name
    }
    /// The start of the secret (`cb-` and 8 characters), to recognise it by.
    async fn prefix(&self) -> &str {
        &self.prefix
    }
    /// What it may reach.
    async fn scope(&self) -> Result<KeyScope, Error> {
        KeyScope::parse(&self.scope)
            .ok_or_else(|| Error::Internal(format!("key {} has scope {}", self.id, self.scope)))
    }
    /// The `provider/model` names it may call; null: every model.
    async fn allowed_models(&self) -> Result<Option<Vec<String>>, Error> {
        Ok(KeyGrant::of(self)?.allowed_models)
    }
    /// Its own requests per minute (the owner's limits apply as well).
    async fn requests_per_minute(&self) -> Option<i64> {
        self.requests_per_minute
    }
    /// Its own tokens per minute (the owner's limits apply as well).
    async fn tokens_per_minute(&self) -> Option<i64> {
        self.tokens_per_minute
    }
    /// Where it stands now.
    async fn state(&self, ctx: &Context<'_>) -> Result<ApiKeyState, Error> {
        let now = ctx.app()?.now();
        Ok(match (self.revoked_at, self.expires_at) {
            (Some(at), _) if at <= now => ApiKeyState::Revoked,
            (_, Some(at)) if at <= now => ApiKeyState::Expired,
            (Some(_), _) => ApiKeyState::Rotating,
            _ => ApiKeyState::Active,
        })
    }
    /// When it was made.
    async fn created_at(&self) -> DateTime<Utc> {
        self.created_at.and_utc()
    }
    /// When it stops working, if ever.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.expires_at.map(|t| t.and_utc())
    }
    /// When it was (or, rotating, will be) revoked.
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.revoked_at.map(|t| t.and_utc())
    }
    /// When it last authenticated a request (to the minute).
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.last_used_at.map(|t| t.and_utc())
    }
    /// From which address.
    async fn last_used_ip(&self) -> Option<&str> {
        self.last_used_ip.as_deref()
    }
    /// The first key of its rotation chain: its budget and rate-limit counters belong to it.
    async fn family_id(&self) -> ID {
        ID(self.family_id.clone())
    }
    /// Its own budget, if it has one (the owner's budgets apply as well).
    async fn budget(&self, ctx: &Context<'_>) -> Result<Option<Budget>, Error> {
        Ok(api_keys::budget_of(ctx.app()?, self)
            .await?
            .map(Budget::from))
    }
}

/// A key just made, with its secret.
#[derive(SimpleObject)]
pub struct CreatedApiKey {
    /// `cb-…`: send it as `Authorization: Bearer`. It is shown only now: only its hash is kept.
    pub secret: String,
    /// The key's record.
    pub api_key: ApiKey,
}

impl From<CreatedKey> for CreatedApiKey {
    fn from(c: CreatedKey) -> Self {
        Self {
            secret: c.secret,
            api_key: c.key.into(),
        }
    }
}

/// A key's own budget.
#[derive(InputObject)]
pub struct ApiKeyBudgetInput {
    /// Day, week or month (in the configured time zone), or total.
    pub period: Period,
    /// ISO 4217 code; only costs in this currency count.
    pub currency: String,
    /// Spend limit in micro-units.
    pub limit_micros: Micros,
}

impl From<ApiKeyBudgetInput> for KeyBudget {
    fn from(b: ApiKeyBudgetInput) -> Self {
        Self {
            period: b.period,
            currency: b.currency,
            limit_micros: b.limit_micros.0,
        }
    }
}

/// A new key.
#[derive(InputObject)]
pub struct CreateApiKeyInput {
    /// The owner (admins); your own key when omitted.
    pub user_id: Option<ID>,
    /// What you call it (1-100 characters).
    pub name: String,
    /// `CHAT` (the default): `/v1` and chat only; `FULL`: also the whole GraphQL API.
    pub scope: Option<KeyScope>,
    /// `provider/model` names it may call; every model when omitted.
    pub allowed_models: Option<Vec<String>>,
    /// Its own requests per minute.
    pub requests_per_minute: Option<i64>,
    /// Its own tokens per minute.
    pub tokens_per_minute: Option<i64>,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// Its own budget.
    pub budget: Option<ApiKeyBudgetInput>,
}

/// Changes to a key: a field left out is unchanged; `null` clears it.
#[derive(InputObject)]
pub struct UpdateApiKeyInput {
    /// A new name.
    pub name: Option<String>,
    /// A new scope.
    pub scope: Option<KeyScope>,
    /// The models it may call (`null`: every model).
    pub allowed_models: MaybeUndefined<Vec<String>>,
    /// Its own requests per minute (`null`: none).
    pub requests_per_minute: MaybeUndefined<i64>,
    /// Its own tokens per minute (`null`: none).
    pub tokens_per_minute: MaybeUndefined<i64>,
    /// When it stops working (`null`: never).
    pub expires_at: MaybeUndefined<DateTime<Utc>>,
    /// Its own budget (`null`: none). A budget keeps its period and currency.
    pub budget: MaybeUndefined<ApiKeyBudgetInput>,
}

fn change<T, U>(value: MaybeUndefined<T>, f: impl FnOnce(T) -> U) -> Option<Option<U>> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(f(v))),
    }
}

/// API key queries.
#[derive(Default)]
pub struct ApiKeysQuery;

#[Object]
impl ApiKeysQuery {
    /// Your API keys, newest first (at most 500); an admin may name a user, or pass `all` for
    /// everyone's.
    async fn api_keys(
        &self,
        ctx: &Context<'_>,
        user_id: Option<ID>,
        #[graphql(default = false)] all: bool,
    ) -> Result<Vec<ApiKey>, Error> {
        let viewer = ctx.viewer()?;
        let user = match (&user_id, all) {
            (Some(u), _) => Some(u.as_str()),
            (None, true) => {
                viewer.require_admin()?;
                None
            }
            (None, false) => Some(viewer.user_id.as_str()),
        };
        api_keys::list(ctx.app()?, viewer, user).await.map(views)
    }
}

/// API key mutations.
#[derive(Default)]
pub struct ApiKeysMutation;

#[Object]
impl ApiKeysMutation {
    /// Makes a key (your own; an admin's for anyone). The secret is in the result, once.
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        input: CreateApiKeyInput,
    ) -> Result<CreatedApiKey, Error> {
        let settings = KeySettings {
            name: Some(input.name),
            scope: input.scope,
            allowed_models: input.allowed_models.map(Some),
            requests_per_minute: input.requests_per_minute.map(Some),
            tokens_per_minute: input.tokens_per_minute.map(Some),
            expires_at: input.expires_at.map(Some),
            budget: input.budget.map(|b| Some(b.into())),
        };
        let owner = input.user_id.as_ref().map(|u| u.as_str());
        api_keys::create(ctx.app()?, ctx.viewer()?, owner, settings)
            .await
            .map(Into::into)
    }

    /// Changes a key that is not revoked (its owner or an admin).
    async fn update_api_key(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateApiKeyInput,
    ) -> Result<ApiKey, Error> {
        let settings = KeySettings {
            name: input.name,
            scope: input.scope,
            allowed_models: change(input.allowed_models, |m| m),
            requests_per_minute: change(input.requests_per_minute, |r| r),
            tokens_per_minute: change(input.tokens_per_minute, |t| t),
            expires_at: change(input.expires_at, |e| e),
            budget: change(input.budget, Into::into),
        };
        api_keys::update(ctx.app()?, ctx.viewer()?, &id, settings)
            .await
            .map(Into::into)
    }

    /// Revokes a key at once (its owner or an admin): every request with it is refused from now,
    /// on every instance, sockets included.
    async fn revoke_api_key(&self, ctx: &Context<'_>, id: ID) -> Result<ApiKey, Error> {
        api_keys::revoke(ctx.app()?, ctx.viewer()?, &id)
            .await
            .map(Into::into)
    }

    /// Makes a new key with the same settings (and the same budget and rate-limit counters), and
    /// revokes this one now or after `gracePeriodSeconds` (at most 7 days). The new secret is in
    /// the result, once.
    async fn rotate_api_key(
        &self,
        ctx: &Context<'_>,
        id: ID,
        grace_period_seconds: Option<i64>,
    ) -> Result<CreatedApiKey, Error> {
        api_keys::rotate(ctx.app()?, ctx.viewer()?, &id, grace_period_seconds)
            .await
            .map(Into::into)
    }
}
