//! Budgets: limits on spend (and optionally tokens and requests) per user or for everyone.

use async_graphql::{Context, Enum, ID, InputObject, Object};
use chrono::{DateTime, Utc};

use super::ContextExt;
use super::money::Micros;
use super::view::{view, views};
use crate::Error;
use crate::db::models::Budget as BudgetRow;
use crate::services::budgets::{self, BudgetInput, Period};

/// Whose calls a budget counts.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetScope {
    /// One user's.
    User,
    /// Everyone's.
    Global,
    /// One API key's (and the keys rotated from it): a budget of the key's owner that only the
    /// key's calls count against.
    ApiKey,
}

view!(
    /// Budget as the API shows it.
    Budget(BudgetRow)
);

/// A budget and where it stands in its current period.
#[Object]
impl Budget {
    /// Stable id.
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }
    /// One user's or everyone's.
    async fn scope(&self) -> BudgetScope {
        if self.api_key_id.is_some() {
            BudgetScope::ApiKey
        } else if self.user_id.is_some() {
            BudgetScope::User
        } else {
            BudgetScope::Global
        }
    }
    /// The user, for a user or API key budget.
    async fn user_id(&self) -> Option<ID> {
        self.user_id.clone().map(ID)
    }
    /// The API key family, for an API key budget (see `ApiKey.familyId`).
    async fn api_key_id(&self) -> Option<ID> {
        self.api_key_id.clone().map(ID)
    }
    /// How often it starts over.
    async fn period(&self) -> Period {
        Period::parse(&self.period).unwrap_or(Period::Total)
    }
    /// Costs in other currencies do not count against it.
    async fn currency(&self) -> &str {
        &self.currency
    }
    /// The spend limit.
    async fn limit_micros(&self) -> Micros {
        Micros(self.limit_micros)
    }
    /// Settled spend this period.
    async fn spent_micros(&self) -> Micros {
        Micros(self.spent_micros)
    }
    /// Held by calls in flight.
    async fn reserved_micros(&self) -> Micros {
        Micros(self.reserved_micros)
    }
    /// What is left for new calls: limit − spent − reserved (never below 0).
    async fn remaining_micros(&self) -> Micros {
        Micros((self.limit_micros - self.spent_micros - self.reserved_micros).max(0))
    }
    /// Optional token limit.
    async fn limit_tokens(&self) -> Option<i64> {
        self.limit_tokens
    }
    /// Settled tokens this period.
    async fn spent_tokens(&self) -> i64 {
        self.spent_tokens
    }
    /// Optional request limit.
    async fn limit_requests(&self) -> Option<i64> {
        self.limit_requests
    }
    /// Settled requests this period.
    async fn spent_requests(&self) -> i64 {
        self.spent_requests
    }
    /// Requests in flight.
    async fn reserved_requests(&self) -> i64 {
        self.reserved_requests
    }
    /// When the current period started.
    async fn period_start(&self) -> DateTime<Utc> {
        self.period_start.and_utc()
    }
    /// When it starts over (null for a total budget).
    async fn reset_at(&self) -> Option<DateTime<Utc>> {
        self.period_end.map(|t| t.and_utc())
    }
    /// Percentages of the limit that raise a budget event, once per period each.
    async fn thresholds(&self) -> Vec<i64> {
        self.threshold_list()
    }
    /// The highest threshold raised in the current period (0: none yet).
    async fn alerted_percent(&self) -> i64 {
        self.alerted_percent
    }
}

/// A new budget.
#[derive(InputObject)]
pub struct CreateBudgetInput {
    /// The user; omit for a budget on everyone's calls.
    pub user_id: Option<ID>,
    /// Day, week or month (in the configured time zone), or total.
    pub period: Period,
    /// ISO 4217 code; only costs in this currency count.
    pub currency: String,
    /// Spend limit in micro-units (`"10000000"` is 10.00).
    pub limit_micros: Micros,
    /// Optional token limit.
    pub limit_tokens: Option<i64>,
    /// Optional request limit.
    pub limit_requests: Option<i64>,
    /// Percentages of the limit that raise a budget event (default `[50, 80, 100]`).
    pub thresholds: Option<Vec<i64>>,
}

/// Budget queries.
#[derive(Default)]
pub struct BudgetsQuery;

#[Object]
impl BudgetsQuery {
    /// Budgets that apply to you (yours and the global ones); an admin may name a user, or omit
    /// it to see every budget.
    async fn budgets(&self, ctx: &Context<'_>, user_id: Option<ID>) -> Result<Vec<Budget>, Error> {
        budgets::list(
            ctx.app()?,
            ctx.viewer()?,
            user_id.as_ref().map(|id| id.as_str()),
        )
        .await
        .map(views)
    }
}

/// Budget mutations (admin only).
#[derive(Default)]
pub struct BudgetsMutation;

#[Object]
impl BudgetsMutation {
    /// Creates a budget. Calls that would not fit fail with `BUDGET_EXCEEDED` before any
    /// upstream request.
    async fn create_budget(
        &self,
        ctx: &Context<'_>,
        input: CreateBudgetInput,
    ) -> Result<Budget, Error> {
        let input = BudgetInput {
            user_id: input.user_id.map(|id| id.0),
            period: input.period,
            currency: input.currency,
            limit_micros: input.limit_micros.0,
            limit_tokens: input.limit_tokens,
            limit_requests: input.limit_requests,
            thresholds: input.thresholds,
        };
        budgets::create(ctx.app()?, ctx.viewer()?, input)
            .await
            .map(Into::into)
    }

    /// Changes a budget's limits (what is spent stays).
    async fn update_budget(
        &self,
        ctx: &Context<'_>,
        id: ID,
        limit_micros: Micros,
        limit_tokens: Option<i64>,
        limit_requests: Option<i64>,
    ) -> Result<Budget, Error> {
        budgets::update(
            ctx.app()?,
            ctx.viewer()?,
            &id,
            limit_micros.0,
            limit_tokens,
            limit_requests,
        )
        .await
        .map(Into::into)
    }

    /// Removes a budget.
    async fn delete_budget(&self, ctx: &Context<'_>, id: ID) -> Result<bool, Error> {
        budgets::delete(ctx.app()?, ctx.viewer()?, &id).await?;
        Ok(true)
    }
}
