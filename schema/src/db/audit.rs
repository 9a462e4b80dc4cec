//! Queries on `audit_log` and its chain head `audit_head`.
//!
//! Requests only ever [`insert`] (one statement, no shared row). The chainer, in one transaction
//! per batch, [`lock_head`]s, reads the [`unchained`] rows, [`link`]s them and [`move_head`]s.

use chrono::NaiveDateTime;
use diesel::dsl::{count_star, min};
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::models::{AuditRow, NewAuditRow};
use super::schema::{audit_head, audit_log};
use super::{DbConn, db_run};

/// Where the chainer puts a row in the chain.
#[derive(Debug, Clone)]
pub struct Link {
    /// The row.
    pub id: i64,
    /// Its position.
    pub seq: i64,
    /// The hash before it.
    pub prev_hash: String,
    /// Its own hash.
    pub hash: String,
}

/// Writes a request's row, unchained: one `INSERT`, committed on its own.
pub async fn insert(conn: &mut DbConn, row: &NewAuditRow<'_>) -> QueryResult<()> {
    db_run!(conn, |c| {
        diesel::insert_into(audit_log::table)
            .values(row)
            .execute(c)
            .await
    })?;
    Ok(())
}

/// Filters for a page of the audit log; `None` means any.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Only this actor.
    pub actor_id: Option<String>,
    /// Only this mutation field.
    pub field: Option<String>,
    /// Only this outcome (`OK` or an error code).
    pub outcome: Option<String>,
    /// At or after.
    pub since: Option<NaiveDateTime>,
    /// Before.
    pub until: Option<NaiveDateTime>,
}

/// Rows matching `filter`, chained or not, newest first, with `id` below `before` (the cursor).
pub async fn page(
    conn: &mut DbConn,
    filter: &Filter,
    before: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<AuditRow>> {
    db_run!(conn, |c| {
        let mut query = audit_log::table
            .select(AuditRow::as_select())
            .order(audit_log::id.desc())
            .limit(limit)
            .into_boxed();
        if let Some(v) = &filter.actor_id {
            query = query.filter(audit_log::actor_id.eq(v));
        }
        if let Some(v) = &filter.field {
            query = query.filter(audit_log::field.eq(v));
        }
        if let Some(v) = &filter.outcome {
            query = query.filter(audit_log::outcome.eq(v));
        }
        if let Some(v) = filter.since {
            query = query.filter(audit_log::at.ge(v));
        }
        if let Some(v) = filter.until {
            query = query.filter(audit_log::at.lt(v));
        }
        if let Some(b) = before {
            query = query.filter(audit_log::id.lt(b));
        }
        query.load(c).await
    })
}

/// Up to `limit` chained rows after `seq` and up to `last`, in chain order (for walking it).
pub async fn chained_after(
    conn: &mut DbConn,
    seq: i64,
    last: i64,
    limit: i64,
) -> QueryResult<Vec<AuditRow>> {
    db_run!(conn, |c| {
        audit_log::table
            .select(AuditRow::as_select())
            .filter(audit_log::seq.gt(seq).and(audit_log::seq.le(last)))
            .order(audit_log::seq.asc())
            .limit(limit)
            .load(c)
            .await
    })
}

/// The chain head: the last position linked and the last chained row's hash.
pub async fn head(conn: &mut DbConn) -> QueryResult<(i64, String)> {
    db_run!(conn, |c| {
        audit_head::table
            .find(1_i64)
            .select((audit_head::seq, audit_head::hash))
            .get_result(c)
            .await
    })
}

/// The head, locked until the transaction ends (a no-op update: a row lock on PostgreSQL, the
/// write lock on SQLite), so two chainers never link from the same head.
pub async fn lock_head(conn: &mut DbConn) -> QueryResult<(i64, String)> {
    db_run!(conn, |c| {
        diesel::update(audit_head::table.find(1_i64))
            .set(audit_head::seq.eq(audit_head::seq))
            .returning((audit_head::seq, audit_head::hash))
            .get_result(c)
            .await
    })
}

/// Moves the head from `from` to (`to`, `hash`); false if it was not at `from`.
pub async fn move_head(conn: &mut DbConn, from: i64, to: i64, hash: &str) -> QueryResult<bool> {
    let n = db_run!(conn, |c| {
        diesel::update(
            audit_head::table
                .find(1_i64)
                .filter(audit_head::seq.eq(from)),
        )
        .set((audit_head::seq.eq(to), audit_head::hash.eq(hash)))
        .execute(c)
        .await
    })?;
    Ok(n == 1)
}

/// Whether any row waits to be linked (an index lookup: idle ticks take no lock).
pub async fn any_unchained(conn: &mut DbConn) -> QueryResult<bool> {
    let first: Option<i64> = db_run!(conn, |c| {
        audit_log::table
            .select(audit_log::id)
            .filter(audit_log::seq.is_null())
            .order(audit_log::id.asc())
            .first(c)
            .await
            .optional()
    })?;
    Ok(first.is_some())
}

/// Up to `limit` unchained rows, in insertion order.
pub async fn unchained(conn: &mut DbConn, limit: i64) -> QueryResult<Vec<AuditRow>> {
    db_run!(conn, |c| {
        audit_log::table
            .select(AuditRow::as_select())
            .filter(audit_log::seq.is_null())
            .order(audit_log::id.asc())
            .limit(limit)
            .load(c)
            .await
    })
}

/// Sets each row's chain fields, only where the row is still unchained; returns how many rows
/// changed. One statement on PostgreSQL (a batch must not cost a round trip per row); on SQLite
/// one hop to the blocking thread, inside the caller's transaction.
pub async fn link(conn: &mut DbConn, links: &[Link]) -> QueryResult<usize> {
    match conn {
        DbConn::Pg(c) => {
            use diesel::sql_types::{Array, BigInt, Text};
            let ids: Vec<i64> = links.iter().map(|l| l.id).collect();
            let seqs: Vec<i64> = links.iter().map(|l| l.seq).collect();
            let prev: Vec<&str> = links.iter().map(|l| l.prev_hash.as_str()).collect();
            let hashes: Vec<&str> = links.iter().map(|l| l.hash.as_str()).collect();
            diesel::sql_query(
                "UPDATE audit_log AS a SET seq = v.seq, prev_hash = v.prev_hash, hash = v.hash \
                 FROM unnest($1, $2, $3, $4) AS v(id, seq, prev_hash, hash) \
                 WHERE a.id = v.id AND a.seq IS NULL",
            )
            .bind::<Array<BigInt>, _>(ids)
            .bind::<Array<BigInt>, _>(seqs)
            .bind::<Array<Text>, _>(prev)
            .bind::<Array<Text>, _>(hashes)
            .execute(&mut **c)
            .await
        }
        // Called inside the chainer's transaction, which holds SQLite's writer turn already.
        DbConn::Sqlite(c, _) => {
            let links = links.to_vec();
            c.spawn_blocking(move |c| {
                let mut changed = 0;
                for l in &links {
                    changed += diesel::RunQueryDsl::execute(
                        diesel::update(
                            audit_log::table.find(l.id).filter(audit_log::seq.is_null()),
                        )
                        .set((
                            audit_log::seq.eq(l.seq),
                            audit_log::prev_hash.eq(&l.prev_hash),
                            audit_log::hash.eq(&l.hash),
                        )),
                        c,
                    )?;
                }
                Ok(changed)
            })
            .await
        }
    }
}

/// The unchained tail: how many rows wait, and when the oldest was written.
pub async fn tail(conn: &mut DbConn) -> QueryResult<(i64, Option<NaiveDateTime>)> {
    db_run!(conn, |c| {
        audit_log::table
            .filter(audit_log::seq.is_null())
            .select((count_star(), min(audit_log::at)))
            .get_result(c)
            .await
    })
}
