//! Queries on `system_logs`.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::models::LogRow;
use super::schema::system_logs;
use super::users::lower;
use super::{DbConn, db_run};
use crate::Error;

/// Inserts a batch: one multi-row `INSERT` on PostgreSQL; on SQLite (whose multi-row insert
/// Diesel runs row by row) all rows in one hop to the blocking thread, in the writers' turn,
/// whose savepoint makes them one write.
pub async fn insert_batch(conn: &mut DbConn, rows: &[LogRow]) -> Result<usize, Error> {
    conn.write(async |conn| match conn {
        DbConn::Pg(c) => Ok(diesel::insert_into(system_logs::table)
            .values(rows)
            .execute(&mut **c)
            .await?),
        DbConn::Sqlite(c, _) => {
            let rows = rows.to_vec();
            Ok(c.spawn_blocking(move |c| {
                diesel::RunQueryDsl::execute(
                    diesel::insert_into(system_logs::table).values(&rows),
                    c,
                )
            })
            .await?)
        }
    })
    .await
}

/// What a page of logs may filter on; `None` means any.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Only these levels.
    pub levels: Option<Vec<String>>,
    /// Sources starting with this (a `LIKE` pattern ending in `%`).
    pub source_prefix: Option<String>,
    /// Message containing this, case-insensitively (a lower-case `LIKE` pattern).
    pub text: Option<String>,
    /// At or after.
    pub since: Option<NaiveDateTime>,
    /// Before.
    pub until: Option<NaiveDateTime>,
}

/// Narrows a boxed `system_logs` query by `filter`'s level, source and text.
macro_rules! matching {
    ($query:ident, $filter:expr) => {{
        let filter: &Filter = $filter;
        if let Some(v) = &filter.levels {
            $query = $query.filter(system_logs::level.eq_any(v));
        }
        if let Some(v) = &filter.source_prefix {
            $query = $query.filter(system_logs::source.like(v).escape('\\'));
        }
        if let Some(v) = &filter.text {
            $query = $query.filter(lower(system_logs::message).like(v).escape('\\'));
        }
    }};
}

/// Rows matching `filter`, newest first, with ids below `before` (the cursor).
pub async fn page(
    conn: &mut DbConn,
    filter: &Filter,
    before: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<LogRow>> {
    db_run!(conn, |c| {
        let mut query = system_logs::table
            .select(LogRow::as_select())
            .order(system_logs::id.desc())
            .limit(limit)
            .into_boxed();
        matching!(query, filter);
        if let Some(v) = filter.since {
            query = query.filter(system_logs::at.ge(v));
        }
        if let Some(v) = filter.until {
            query = query.filter(system_logs::at.lt(v));
        }
        if let Some(b) = before {
            query = query.filter(system_logs::id.lt(b));
        }
        query.load(c).await
    })
}

/// The rows of one written batch that match `filter` (its times ignored), oldest first.
pub async fn batch(conn: &mut DbConn, filter: &Filter, batch_id: &str) -> QueryResult<Vec<LogRow>> {
    db_run!(conn, |c| {
        let mut query = system_logs::table
            .select(LogRow::as_select())
            .filter(system_logs::batch_id.eq(batch_id))
            .order(system_logs::id.asc())
            .into_boxed();
        matching!(query, filter);
        query.load(c).await
    })
}

/// Deletes up to `limit` rows older than `cutoff`; returns how many.
pub async fn delete_before(
    conn: &mut DbConn,
    cutoff: NaiveDateTime,
    limit: i64,
) -> QueryResult<usize> {
    db_run!(conn, |c| {
        let ids: Vec<String> = system_logs::table
            .select(system_logs::id)
            .filter(system_logs::at.lt(cutoff))
            .order(system_logs::id.asc())
            .limit(limit)
            .load(c)
            .await?;
        diesel::delete(system_logs::table.filter(system_logs::id.eq_any(&ids)))
            .execute(c)
            .await
    })
}
