//! The audit trail: its rows, chained or not yet.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::audit_log;

/// A row of `audit_log`. The chain fields (`seq`, `prev_hash`, `hash`) are all set or all null.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_log)]
pub struct AuditRow {
    /// Given by the database in insertion order; the `auditLog` cursor.
    pub id: i64,
    /// Position in the chain, from 1; `None` until the chainer links the row.
    pub seq: Option<i64>,
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
    /// The previous chained row's hash (`""` for the first); `None` until linked.
    pub prev_hash: Option<String>,
    /// SHA-256 over this row's content, `seq` and `prev_hash`, hex; `None` until linked.
    pub hash: Option<String>,
}

/// A row as a request writes it: content only, unchained.
#[derive(Debug, Insertable)]
#[diesel(table_name = audit_log, treat_none_as_default_value = false)]
pub struct NewAuditRow<'a> {
    /// When the mutation ran (microseconds, as both databases store it).
    pub at: NaiveDateTime,
    /// Who ran it.
    pub actor_id: Option<&'a str>,
    /// Their role then.
    pub actor_role: Option<&'a str>,
    /// The operation's name.
    pub operation_name: Option<&'a str>,
    /// The mutation field.
    pub field: &'a str,
    /// Its arguments as JSON, secrets redacted.
    pub arguments: &'a str,
    /// `OK` or the error code.
    pub outcome: &'a str,
    /// Client address.
    pub client_ip: Option<&'a str>,
    /// Client user agent.
    pub user_agent: Option<&'a str>,
    /// The request's id.
    pub request_id: &'a str,
}
