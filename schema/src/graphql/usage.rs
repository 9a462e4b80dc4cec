//! Usage reports (`usage`, `myUsage`) and monthly statements, from the daily rollups.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::NaiveDate;

use super::ContextExt;
use super::money::Micros;
use super::view::{view, views};
use crate::Error;
use crate::db::usage::{UsageFilter as Filter, UsageRow as UsageTotals};
use crate::services::usage::{self, Dimension, Statement as StatementTotals};

view!(
    /// UsageRow as the API shows it.
    UsageRow(UsageTotals)
);

/// Sums over the rows a report groups together; a dimension not grouped by is null.
#[Object]
impl UsageRow {
    /// The day (when grouped by day).
    async fn day(&self) -> Option<NaiveDate> {
        NaiveDate::parse_from_str(&self.day, "%Y-%m-%d").ok()
    }
    /// The user (when grouped by user).
    async fn user_id(&self) -> Option<ID> {
        Some(&self.user_id)
            .filter(|u| !u.is_empty())
            .cloned()
            .map(ID)
    }
    /// The provider instance (when grouped by provider).
    async fn provider(&self) -> Option<&str> {
        Some(self.provider.as_str()).filter(|p| !p.is_empty())
    }
    /// The model (when grouped by model).
    async fn model(&self) -> Option<&str> {
        Some(self.model.as_str()).filter(|m| !m.is_empty())
    }
    /// Currency of `costMicros` (null for unpriced calls).
    async fn currency(&self) -> Option<&str> {
        Some(self.currency.as_str()).filter(|c| !c.is_empty())
    }
    /// Calls.
    async fn requests(&self) -> i64 {
        self.requests
    }
    /// Input tokens.
    async fn prompt_tokens(&self) -> i64 {
        self.prompt_tokens
    }
    /// Cached input tokens.
    async fn cached_prompt_tokens(&self) -> i64 {
        self.cached_prompt_tokens
    }
    /// Output tokens.
    async fn completion_tokens(&self) -> i64 {
        self.completion_tokens
    }
    /// Cost.
    async fn cost_micros(&self) -> Micros {
        Micros(self.cost_micros)
    }
    /// The API key (when grouped by key; null for calls without one).
    async fn api_key_id(&self) -> Option<ID> {
        Some(self.api_key_id.clone())
            .filter(|k| !k.is_empty())
            .map(ID)
    }
}

view!(
    /// Statement as the API shows it.
    Statement(StatementTotals)
);

/// A user's month.
#[Object]
impl Statement {
    /// The user.
    async fn user_id(&self) -> ID {
        ID(self.user_id.clone())
    }
    /// `YYYY-MM`.
    async fn month(&self) -> &str {
        &self.month
    }
    /// One line per provider, model and currency.
    async fn lines(&self) -> Vec<UsageRow> {
        views(self.lines.clone())
    }
    /// One total per currency.
    async fn totals(&self) -> Vec<UsageRow> {
        views(self.totals.clone())
    }
}

/// Days `from..=to` (in the configured time zone), at most 366.
#[derive(InputObject)]
pub struct DateRange {
    /// First day.
    pub from: NaiveDate,
    /// Last day (included).
    pub to: NaiveDate,
}

/// What to count.
#[derive(InputObject, Default)]
pub struct UsageFilter {
    /// One user.
    pub user_id: Option<ID>,
    /// One provider instance.
    pub provider: Option<String>,
    /// One model.
    pub model: Option<String>,
    /// One API key.
    pub api_key_id: Option<ID>,
}

/// Report queries.
#[derive(Default)]
pub struct UsageQuery;

/// How reports, statements and budget periods count days on this server.
#[derive(SimpleObject)]
pub struct ReportCalendar {
    /// The IANA time zone days are counted in (`[budgets] timezone`), e.g. `Asia/Shanghai`.
    pub time_zone: String,
    /// Today in that zone.
    pub today: NaiveDate,
    /// This month in that zone, `YYYY-MM`.
    pub month: String,
}

#[Object]
impl UsageQuery {
    /// The time zone reports count days in, and today's date there (any signed-in user), so a
    /// page's "today" and "this month" are the server's.
    async fn report_calendar(&self, ctx: &Context<'_>) -> Result<ReportCalendar, Error> {
        ctx.viewer()?;
        let app = ctx.app()?;
        let zone = app.budgets.timezone;
        let today = app.now().and_utc().with_timezone(&zone).date_naive();
        Ok(ReportCalendar {
            time_zone: zone.name().to_owned(),
            today,
            month: today.format("%Y-%m").to_string(),
        })
    }

    /// Everyone's usage (admin only), grouped by any of day, user, provider and model.
    async fn usage(
        &self,
        ctx: &Context<'_>,
        range: DateRange,
        group_by: Vec<Dimension>,
        filter: Option<UsageFilter>,
    ) -> Result<Vec<UsageRow>, Error> {
        let f = filter.unwrap_or_default();
        let filter = Filter {
            user_id: f.user_id.map(|id| id.0),
            provider: f.provider,
            model: f.model,
            api_key_id: f.api_key_id.map(|id| id.0),
        };
        usage::report(
            ctx.app()?,
            ctx.viewer()?,
            (range.from, range.to),
            &group_by,
            filter,
            false,
        )
        .await
        .map(views)
    }

    /// Your own usage; `apiKeyId` narrows it to one of your keys.
    async fn my_usage(
        &self,
        ctx: &Context<'_>,
        range: DateRange,
        group_by: Vec<Dimension>,
        api_key_id: Option<ID>,
    ) -> Result<Vec<UsageRow>, Error> {
        let filter = Filter {
            api_key_id: api_key_id.map(|id| id.0),
            ..Filter::default()
        };
        usage::report(
            ctx.app()?,
            ctx.viewer()?,
            (range.from, range.to),
            &group_by,
            filter,
            true,
        )
        .await
        .map(views)
    }

    /// A month's statement: yours, or any user's for an admin. Also as CSV from
    /// `GET /statements/{YYYY-MM}.csv?userId=` with the same `Authorization`.
    async fn statement(
        &self,
        ctx: &Context<'_>,
        user_id: Option<ID>,
        month: String,
    ) -> Result<Statement, Error> {
        usage::statement(
            ctx.app()?,
            ctx.viewer()?,
            user_id.as_ref().map(|id| id.as_str()),
            &month,
        )
        .await
        .map(Into::into)
    }
}
