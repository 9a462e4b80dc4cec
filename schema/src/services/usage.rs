//! Usage reports and monthly statements, read from the daily rollups only.

use chrono::NaiveDate;

use super::{App, Viewer, pricing, validate};
use crate::Error;
use crate::db::usage::{self as queries, Dimensions, UsageFilter, UsageRow};

/// A dimension to group a report by.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "UsageDimension")]
pub enum Dimension {
    /// One row per day (in the configured time zone).
    Day,
    /// One row per user.
    User,
    /// One row per provider instance.
    Provider,
    /// One row per model.
    Model,
    /// One row per API key (calls without a key together, with a null key).
    ApiKey,
}

/// The longest range one report may cover, in days.
pub const MAX_DAYS: i64 = 366;

fn dimensions(group_by: &[Dimension]) -> Dimensions {
    Dimensions {
        day: group_by.contains(&Dimension::Day),
        user: group_by.contains(&Dimension::User),
        provider: group_by.contains(&Dimension::Provider),
        model: group_by.contains(&Dimension::Model),
        api_key: group_by.contains(&Dimension::ApiKey),
    }
}

fn check_range(from: NaiveDate, to: NaiveDate) -> Result<(), Error> {
    if from > to {
        return Err(Error::bad_input(
            "range.from",
            "`from` must not be after `to`",
        ));
    }
    if (to - from).num_days() >= MAX_DAYS {
        return Err(Error::bad_input(
            "range",
            format!("a report covers at most {MAX_DAYS} days"),
        ));
    }
    Ok(())
}

/// A report over days `from..=to`. Admins see everyone (`mine = false`); with `mine` the report
/// is pinned to the viewer, whatever the filter says.
pub async fn report(
    app: &App,
    viewer: &Viewer,
    (from, to): (NaiveDate, NaiveDate),
    group_by: &[Dimension],
    mut filter: UsageFilter,
    mine: bool,
) -> Result<Vec<UsageRow>, Error> {
    if mine {
        filter.user_id = Some(viewer.user_id.clone());
    } else {
        viewer.require_admin()?;
    }
    check_range(from, to)?;
    if let Some(user) = &filter.user_id {
        validate::id("filter.userId", user)?;
    }
    if let Some(key) = &filter.api_key_id {
        validate::id("filter.apiKeyId", key)?;
    }
    let mut conn = app.db.get().await?;
    let rows = queries::report(
        &mut conn,
        &from.format("%Y-%m-%d").to_string(),
        &to.format("%Y-%m-%d").to_string(),
        dimensions(group_by),
        &filter,
    )
    .await?;
    Ok(rows)
}

/// One user's month: a line per provider and model, and totals per currency.
#[derive(Debug, Clone)]
pub struct Statement {
    /// The user.
    pub user_id: String,
    /// `YYYY-MM`.
    pub month: String,
    /// One line per provider, model and currency.
    pub lines: Vec<UsageRow>,
    /// One total per currency.
    pub totals: Vec<UsageRow>,
}

fn month_range(field: &'static str, month: &str) -> Result<(NaiveDate, NaiveDate), Error> {
    let first = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d")
        .map_err(|_| Error::bad_input(field, "expected a month as YYYY-MM"))?;
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .ok_or_else(|| Error::bad_input(field, "month out of range"))?;
    Ok((first, next.pred_opt().unwrap_or(first)))
}

/// The statement of `user_id` (the viewer's own when `None`) for `month` (`YYYY-MM`).
pub async fn statement(
    app: &App,
    viewer: &Viewer,
    user_id: Option<&str>,
    month: &str,
) -> Result<Statement, Error> {
    viewer.require_full_access()?;
    let user = user_id.unwrap_or(&viewer.user_id).to_owned();
    viewer.require_self_or_admin(&user)?;
    validate::id("userId", &user)?;
    let (from, to) = month_range("month", month)?;
    let filter = UsageFilter {
        user_id: Some(user.clone()),
        ..UsageFilter::default()
    };
    let from = from.format("%Y-%m-%d").to_string();
    let to = to.format("%Y-%m-%d").to_string();
    let mut conn = app.db.get().await?;
    let lines_dims = Dimensions {
        provider: true,
        model: true,
        ..Dimensions::default()
    };
    let lines = queries::report(&mut conn, &from, &to, lines_dims, &filter).await?;
    let totals = queries::report(&mut conn, &from, &to, Dimensions::default(), &filter).await?;
    Ok(Statement {
        user_id: user,
        month: month.to_owned(),
        lines,
        totals,
    })
}

/// The statement as CSV: a header, one row per line, then a `TOTAL` row per currency. Amounts are
/// decimals in the currency (6 places).
pub fn statement_csv(s: &Statement) -> String {
    let field = |v: &str| {
        if v.contains([',', '"', '\n']) {
            format!("\"{}\"", v.replace('"', "\"\""))
        } else {
            v.to_owned()
        }
    };
    let mut out = String::from(
        "month,provider,model,currency,requests,prompt_tokens,cached_prompt_tokens,completion_tokens,cost\n",
    );
    let mut row = |provider: &str, model: &str, r: &UsageRow| {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\n",
            s.month,
            field(provider),
            field(model),
            field(&r.currency),
            r.requests,
            r.prompt_tokens,
            r.cached_prompt_tokens,
            r.completion_tokens,
            pricing::format_micros(r.cost_micros)
        ));
    };
    for line in &s.lines {
        row(&line.provider, &line.model, line);
    }
    for total in &s.totals {
        row("TOTAL", "", total);
    }
    out
}
