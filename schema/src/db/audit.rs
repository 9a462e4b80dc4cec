//! Queries on `audit_log` and its chain head `audit_head`.
//!
//! Requests only ever [`insert`] (one statement, no shared row). The chainer links them in
//! batches, one transaction each ([`chain_batch`]).

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

/// The statements of one chaining batch, as diesel builds them; the same for both backends and
/// run by [`chain_batch`] with either diesel's or diesel-async's `RunQueryDsl`. The `UPDATE`s
/// are [`fixed_shape!`](super::fixed::fixed_shape)s: diesel would prepare them again on every
/// run, on SQLite a link's update for every row chained, some 4% of a GraphQL call's
/// instructions (`bench/instructions.sh`).
mod batch {
    /// The head, locked until the transaction ends (a no-op update: a row lock on PostgreSQL,
    /// the write lock on SQLite), so two chainers never link from the same head.
    macro_rules! lock_head {
        () => {
            super::fixed::fixed_shape!(
                diesel::update(audit_head::table.find(1_i64))
                    .set(audit_head::seq.eq(audit_head::seq))
                    .returning((audit_head::seq, audit_head::hash))
            )
        };
    }
    /// Up to `limit` unchained rows, in insertion order.
    macro_rules! unchained {
        ($limit:expr) => {
            audit_log::table
                .select(AuditRow::as_select())
                .filter(audit_log::seq.is_null())
                .order(audit_log::id.asc())
                .limit($limit)
        };
    }
    /// Moves the head from `from` to (`to`, `hash`); changes no row if it was not at `from`.
    macro_rules! move_head {
        ($from:expr, $to:expr, $hash:expr) => {
            super::fixed::fixed_shape!(
                diesel::update(
                    audit_head::table
                        .find(1_i64)
                        .filter(audit_head::seq.eq($from)),
                )
                .set((audit_head::seq.eq($to), audit_head::hash.eq($hash)))
            )
        };
    }
    /// Links a row where it is still unchained.
    macro_rules! link_row {
        ($link:expr) => {
            super::fixed::fixed_shape!(
                diesel::update(
                    audit_log::table
                        .find($link.id)
                        .filter(audit_log::seq.is_null()),
                )
                .set((
                    audit_log::seq.eq($link.seq),
                    audit_log::prev_hash.eq(&$link.prev_hash),
                    audit_log::hash.eq(&$link.hash),
                ))
            )
        };
    }
    pub(super) use {link_row, lock_head, move_head, unchained};

    diesel::define_sql_function! {
        /// SQLite's `total_changes()`: the rows the connection's `INSERT`s, `UPDATE`s and
        /// `DELETE`s changed since it opened.
        fn total_changes() -> BigInt;
    }
}

/// What [`chain_batch`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Chained {
    /// Links planned: the unchained rows read.
    pub planned: usize,
    /// Rows linked: fewer than planned if some were linked meanwhile.
    pub linked: usize,
    /// Whether the head moved from where it was read (true when nothing was planned).
    pub head_moved: bool,
}

/// One chaining batch, inside the caller's transaction: locks the head, reads up to `limit`
/// unchained rows, asks `plan` for their links after the head (its position and hash), sets each
/// row's chain fields where the row is still unchained, and moves the head to the last link. On
/// SQLite the whole batch is one trip to the blocking pool: it holds the writers' turn, and a
/// trip per statement (each a thread switch there and back, on a core the calls share) made the
/// turn several times longer than the work (`bench/RESULTS.md`).
pub async fn chain_batch(
    conn: &mut DbConn,
    limit: i64,
    plan: impl FnOnce(i64, String, &[AuditRow]) -> Vec<Link> + Send + 'static,
) -> QueryResult<Chained> {
    use batch::{link_row, lock_head, move_head, unchained};
    match conn {
        DbConn::Pg(c) => {
            let c = &mut **c;
            let (head, prev_hash): (i64, String) = lock_head!().get_result(c).await?;
            let rows = unchained!(limit).load(c).await?;
            let links = plan(head, prev_hash, &rows);
            let Some(last) = links.last() else {
                return Ok(Chained {
                    head_moved: true,
                    ..Chained::default()
                });
            };
            use diesel::sql_types::{Array, BigInt, Text};
            let ids: Vec<i64> = links.iter().map(|l| l.id).collect();
            let seqs: Vec<i64> = links.iter().map(|l| l.seq).collect();
            let prev: Vec<&str> = links.iter().map(|l| l.prev_hash.as_str()).collect();
            let hashes: Vec<&str> = links.iter().map(|l| l.hash.as_str()).collect();
            // One statement for the batch: not a round trip per row.
            // Its text is fixed (arrays of any length): prepared once per connection.
            let linked = super::fixed::fixed_shape!(
                diesel::sql_query(
                    "UPDATE audit_log AS a SET seq = v.seq, prev_hash = v.prev_hash, hash = v.hash \
                     FROM unnest($1, $2, $3, $4) AS v(id, seq, prev_hash, hash) \
                     WHERE a.id = v.id AND a.seq IS NULL",
                )
                .bind::<Array<BigInt>, _>(ids)
                .bind::<Array<BigInt>, _>(seqs)
                .bind::<Array<Text>, _>(prev)
                .bind::<Array<Text>, _>(hashes),
            )
            .execute(c)
            .await?;
            let moved = move_head!(head, last.seq, &last.hash).execute(c).await?;
            Ok(Chained {
                planned: links.len(),
                linked,
                head_moved: moved == 1,
            })
        }
        DbConn::Sqlite(c, _) => {
            c.spawn_blocking(move |c| {
                use super::fixed::run_on_sqlite;
                use diesel::RunQueryDsl as Run;
                let (head, prev_hash): (i64, String) = Run::get_result(lock_head!(), c)?;
                let rows = Run::load(unchained!(limit), c)?;
                let links = plan(head, prev_hash, &rows);
                let Some(last) = links.last() else {
                    return Ok(Chained {
                        head_moved: true,
                        ..Chained::default()
                    });
                };
                // The rows changed, counted by the connection: diesel's `execute`, which
                // returns them, would prepare each statement again (`super::fixed`). The count
                // includes rows changed by triggers and foreign-key actions: `audit_log` and
                // `audit_head` have none, and one added would miscount here.
                let changed = |c: &mut diesel::SqliteConnection| {
                    Run::get_result::<i64>(diesel::select(batch::total_changes()), c)
                };
                let before = changed(c)?;
                for l in &links {
                    run_on_sqlite(c, link_row!(l))?;
                }
                let linked = changed(c)?;
                run_on_sqlite(c, move_head!(head, last.seq, &last.hash))?;
                let moved = changed(c)? - linked;
                Ok(Chained {
                    planned: links.len(),
                    linked: usize::try_from(linked - before).unwrap_or(0),
                    head_moved: moved == 1,
                })
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
