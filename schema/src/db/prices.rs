//! Queries on `prices`.

use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::models::Price;
use super::schema::prices;
use super::{DbConn, db_run};

/// Inserts a price row unless one exists for the same provider, model and start; returns whether
/// it inserted.
pub async fn insert_if_absent(conn: &mut DbConn, price: &Price) -> QueryResult<bool> {
    db_run!(conn, |c| {
        diesel::insert_into(prices::table)
            .values(price)
            .on_conflict((prices::provider, prices::model, prices::effective_from))
            .do_nothing()
            .execute(c)
            .await
            .map(|n| n > 0)
    })
}

/// The price history of `provider`/`model`, newest start first (a handful of rows). The price in
/// force at a time is chosen from it in Rust: a range condition on a bound value makes SQLite
/// (built with STAT4) prepare the statement again on every run, which cost more than the rest of
/// the call's statements together (`bench/RESULTS.md`).
pub async fn history_of(conn: &mut DbConn, provider: &str, model: &str) -> QueryResult<Vec<Price>> {
    db_run!(conn, |c| {
        prices::table
            .filter(prices::provider.eq(provider))
            .filter(prices::model.eq(model))
            .order(prices::effective_from.desc())
            .select(Price::as_select())
            .load(c)
            .await
    })
}

/// Price history, newest start first, optionally for one provider and model.
pub async fn history(
    conn: &mut DbConn,
    provider: Option<&str>,
    model: Option<&str>,
) -> QueryResult<Vec<Price>> {
    db_run!(conn, |c| {
        let mut query = prices::table.select(Price::as_select()).into_boxed();
        if let Some(p) = provider {
            query = query.filter(prices::provider.eq(p));
        }
        if let Some(m) = model {
            query = query.filter(prices::model.eq(m));
        }
        query
            .order((
                prices::provider.asc(),
                prices::model.asc(),
                prices::effective_from.desc(),
            ))
            .limit(1000)
            .load(c)
            .await
    })
}
