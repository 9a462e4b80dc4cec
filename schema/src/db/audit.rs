//! Queries on `audit_log` and its chain head `audit_head`.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;

use super::schema::{audit_head, audit_log};
use super::{DbConn, db_run};

/// A row of `audit_log`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_log)]
pub struct AuditRow {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When the mutation ran.
    pub at: NaiveDateTime,
    /// Who ran it; `None` when anonymous (register, login, refresh).
    pub actor_id: Option<String>,
    /// Their role then.
    pub actor_role: Option<String>,
    /// The operation's name, if it had one.
    pub operation_name: Option<String>,
    /// The mutation field.
    pub field: String,
    /// Its arguments as JSON, secrets redacted.
    pub arguments: String,
    /// `OK` or the error code.
    pub outcome: String,
    /// Client address.
    pub client_ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// The request's id.
    pub request_id: String,
    /// The previous row's hash (`""` for the first).
    pub prev_hash: String,
    /// SHA-256 over this row's content and `prev_hash`, hex.
    pub hash: String,
}

/// Appends a row to the chain. Call inside a transaction: `row_for(seq, prev_hash)` builds the
/// row from the head it is given, and the head is bumped first, so the row lock (PostgreSQL) or
/// the write lock (SQLite) serializes appends everywhere.
pub async fn append(
    conn: &mut DbConn,
    row_for: impl FnOnce(i64, String) -> AuditRow,
) -> QueryResult<AuditRow> {
    let (seq, prev_hash): (i64, String) = db_run!(conn, |c| {
        diesel::update(audit_head::table.find(1_i64))
            .set(audit_head::seq.eq(audit_head::seq + 1))
            .returning((audit_head::seq, audit_head::hash))
            .get_result(c)
            .await
    })?;
    let row = row_for(seq, prev_hash);
    db_run!(conn, |c| {
        diesel::insert_into(audit_log::table)
            .values(&row)
            .execute(c)
            .await?;
        diesel::update(audit_head::table.find(1_i64))
            .set(audit_head::hash.eq(&row.hash))
            .execute(c)
            .await
    })?;
    Ok(row)
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

/// Rows matching `filter`, newest first, with `seq` below `before` (the cursor).
pub async fn page(
    conn: &mut DbConn,
    filter: &Filter,
    before: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<AuditRow>> {
    db_run!(conn, |c| {
        let mut query = audit_log::table
            .select(AuditRow::as_select())
            .order(audit_log::seq.desc())
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
            query = query.filter(audit_log::seq.lt(b));
        }
        query.load(c).await
    })
}

/// Up to `limit` rows after `seq` and up to `last`, oldest first (for walking the chain).
pub async fn after(
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

/// The chain head: the last `seq` handed out and the last row's hash.
pub async fn head(conn: &mut DbConn) -> QueryResult<(i64, String)> {
    db_run!(conn, |c| {
        audit_head::table
            .find(1_i64)
            .select((audit_head::seq, audit_head::hash))
            .get_result(c)
            .await
    })
}
