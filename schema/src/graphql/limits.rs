//! Rate limits: a user's effective limits, and the admin's overrides.

use async_graphql::{Context, ID, Object, SimpleObject};

use super::ContextExt;
use crate::Error;
use crate::services::rate_limits;

/// Limits on a user's AI calls, per minute (null: unlimited).
#[derive(SimpleObject)]
pub struct RateLimits {
    /// The user.
    pub user_id: ID,
    /// AI calls per minute.
    pub requests_per_minute: Option<i64>,
    /// Tokens per minute.
    pub tokens_per_minute: Option<i64>,
}

/// Rate limit queries.
#[derive(Default)]
pub struct LimitsQuery;

#[Object]
impl LimitsQuery {
    /// Your effective rate limits; an admin may name a user.
    async fn rate_limits(
        &self,
        ctx: &Context<'_>,
        user_id: Option<ID>,
    ) -> Result<RateLimits, Error> {
        let viewer = ctx.viewer()?;
        let user = user_id.map_or_else(|| viewer.user_id.clone(), |id| id.0);
        viewer.require_self_or_admin(&user)?;
        let (rpm, tpm) = rate_limits::effective(ctx.app()?, &user).await?;
        Ok(RateLimits {
            user_id: ID(user),
            requests_per_minute: rpm,
            tokens_per_minute: tpm,
        })
    }
}

/// Rate limit mutations (admin only).
#[derive(Default)]
pub struct LimitsMutation;

#[Object]
impl LimitsMutation {
    /// Overrides a user's limits; omit one to use the default.
    async fn set_rate_limits(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
        requests_per_minute: Option<i64>,
        tokens_per_minute: Option<i64>,
    ) -> Result<RateLimits, Error> {
        let (rpm, tpm) = rate_limits::set_overrides(
            ctx.app()?,
            ctx.viewer()?,
            &user_id,
            requests_per_minute,
            tokens_per_minute,
        )
        .await?;
        Ok(RateLimits {
            user_id,
            requests_per_minute: rpm,
            tokens_per_minute: tpm,
        })
    }
}
