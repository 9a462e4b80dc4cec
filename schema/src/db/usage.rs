//! Reports over the daily rollups (`usage_daily` per user and model, `usage_daily_users` per user,
//! `usage_daily_models` team-wide per model). Their cost grows with the number of days, models
//! and (for per-user reports) users, never with the number of calls.

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel_async::RunQueryDsl;

use super::{DbConn, db_run};

/// Which dimensions a report groups by.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dimensions {
    /// One row per day.
    pub day: bool,
    /// One row per user.
    pub user: bool,
    /// One row per provider instance.
    pub provider: bool,
    /// One row per model.
    pub model: bool,
    /// One row per API key (calls without a key together, under an empty key).
    pub api_key: bool,
}

/// One row of a report; a dimension not grouped by is empty.
#[derive(Debug, Clone, QueryableByName)]
pub struct UsageRow {
    /// `YYYY-MM-DD`.
    #[diesel(sql_type = Text)]
    pub day: String,
    /// The user.
    #[diesel(sql_type = Text)]
    pub user_id: String,
    /// The API key (empty: calls without one, or not grouped by key).
    #[diesel(sql_type = Text)]
    pub api_key_id: String,
    /// Provider instance.
    #[diesel(sql_type = Text)]
    pub provider: String,
    /// Model.
    #[diesel(sql_type = Text)]
    pub model: String,
    /// Currency of `cost_micros` (empty for unpriced calls).
    #[diesel(sql_type = Text)]
    pub currency: String,
    /// Calls.
    #[diesel(sql_type = BigInt)]
    pub requests: i64,
    /// Input tokens.
    #[diesel(sql_type = BigInt)]
    pub prompt_tokens: i64,
    /// Cached input tokens.
    #[diesel(sql_type = BigInt)]
    pub cached_prompt_tokens: i64,
    /// Output tokens.
    #[diesel(sql_type = BigInt)]
    pub completion_tokens: i64,
    /// Cost in micro-units of `currency`.
    #[diesel(sql_type = BigInt)]
    pub cost_micros: i64,
}

/// Filters; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct UsageFilter {
    /// One user.
    pub user_id: Option<String>,
    /// One provider instance.
    pub provider: Option<String>,
    /// One model.
    pub model: Option<String>,
    /// One API key.
    pub api_key_id: Option<String>,
}

/// Sums of the rollups for days `from..=to` (`YYYY-MM-DD`), grouped by `dims` and currency.
pub async fn report(
    conn: &mut DbConn,
    from: &str,
    to: &str,
    dims: Dimensions,
    filter: &UsageFilter,
) -> diesel::QueryResult<Vec<UsageRow>> {
    // The smallest rollup that holds the answer: team-wide per model unless users are grouped
    // or filtered; per user in all unless models or providers are too; keys are only in
    // usage_daily (per user, key and model).
    let per_key = dims.api_key || filter.api_key_id.is_some();
    let per_user = dims.user || filter.user_id.is_some() || per_key;
    let per_model = dims.provider
        || dims.model
        || filter.provider.is_some()
        || filter.model.is_some()
        || per_key;
    let table = match (per_user, per_model) {
        (false, _) => "usage_daily_models",
        (true, false) => "usage_daily_users",
        (true, true) => "usage_daily",
    };
    let pg = matches!(conn, DbConn::Pg(_));
    let p = |i: u8| if pg { format!("${i}") } else { format!("?{i}") };
    let column = |on: bool, name: &str| if on { name.to_owned() } else { "''".to_owned() };
    let user_col = if per_user {
        column(dims.user, "user_id")
    } else {
        "''".to_owned()
    };
    let mut group: Vec<&str> = Vec::new();
    for (on, name) in [
        (dims.day, "day"),
        (dims.user && per_user, "user_id"),
        (dims.api_key, "api_key_id"),
        (dims.provider, "provider"),
        (dims.model, "model"),
    ] {
        if on {
            group.push(name);
        }
    }
    group.push("currency");
    let group = group.join(", ");
    // A filter that is set becomes a plain equality (so indexes apply, SQLite included); one
    // that is not still mentions its parameter, so every query binds the same six values.
    let condition = |set: bool, column: &str, i: u8| {
        if set {
            format!("AND {column} = {}", p(i))
        } else {
            format!("AND {} IS NULL", p(i))
        }
    };
    let user_filter = condition(per_user && filter.user_id.is_some(), "user_id", 3);
    let provider_filter = condition(filter.provider.is_some(), "provider", 4);
    let model_filter = condition(filter.model.is_some(), "model", 5);
    let key_filter = condition(filter.api_key_id.is_some(), "api_key_id", 6);
    let sql = format!(
        "SELECT {day} AS day, {user_col} AS user_id, {key} AS api_key_id, {provider} AS provider, {model} AS model, currency, \
         CAST(SUM(requests) AS BIGINT) AS requests, CAST(SUM(prompt_tokens) AS BIGINT) AS prompt_tokens, \
         CAST(SUM(cached_prompt_tokens) AS BIGINT) AS cached_prompt_tokens, \
         CAST(SUM(completion_tokens) AS BIGINT) AS completion_tokens, CAST(SUM(cost_micros) AS BIGINT) AS cost_micros \
         FROM {table} WHERE day >= {p1} AND day <= {p2} {user_filter} {provider_filter} {model_filter} {key_filter} \
         GROUP BY {group} ORDER BY {group}",
        day = column(dims.day, "day"),
        key = column(dims.api_key, "api_key_id"),
        provider = column(dims.provider, "provider"),
        model = column(dims.model, "model"),
        p1 = p(1),
        p2 = p(2),
    );
    db_run!(conn, |c| {
        diesel::sql_query(&sql)
            .bind::<Text, _>(from)
            .bind::<Text, _>(to)
            .bind::<Nullable<Text>, _>(filter.user_id.as_deref())
            .bind::<Nullable<Text>, _>(filter.provider.as_deref())
            .bind::<Nullable<Text>, _>(filter.model.as_deref())
            .bind::<Nullable<Text>, _>(filter.api_key_id.as_deref())
            .load::<UsageRow>(c)
            .await
    })
}
