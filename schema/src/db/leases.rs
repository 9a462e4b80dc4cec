//! Queries on `leases`: named locks with an expiry, held by one instance at a time (the alert
//! evaluator's, for one). Taking one is a conditional statement, so exactly one caller wins.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::leases;
use super::{DbConn, db_run};

/// Takes or renews lease `name` for `holder` until `until`; true when `holder` has it.
pub async fn acquire(
    conn: &mut DbConn,
    name: &str,
    holder: &str,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> QueryResult<bool> {
    let inserted = db_run!(conn, |c| {
        diesel::insert_into(leases::table)
            .values((
                leases::name.eq(name),
                leases::holder.eq(holder),
                leases::expires_at.eq(until),
            ))
            .on_conflict(leases::name)
            .do_nothing()
            .execute(c)
            .await
    })?;
    if inserted == 1 {
        return Ok(true);
    }
    let n = db_run!(conn, |c| {
        diesel::update(
            leases::table
                .find(name)
                .filter(leases::holder.eq(holder).or(leases::expires_at.lt(now))),
        )
        .set((leases::holder.eq(holder), leases::expires_at.eq(until)))
        .execute(c)
        .await
    })?;
    Ok(n == 1)
}

/// Gives up lease `name` if `holder` has it (at shutdown, so another instance takes over at once
/// rather than when it expires); true if it was held.
pub async fn release(conn: &mut DbConn, name: &str, holder: &str) -> QueryResult<bool> {
    let n = db_run!(conn, |c| {
        diesel::delete(leases::table.find(name).filter(leases::holder.eq(holder)))
            .execute(c)
            .await
    })?;
    Ok(n == 1)
}
