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

/// A row as a request writes it: content only, unchained; its text borrowed
/// ([`NewAuditRow`]) or owned ([`OwnedAuditRow`]).
#[derive(Debug, Insertable)]
#[diesel(table_name = audit_log, treat_none_as_default_value = false)]
pub struct AuditRowValues<S> {
    /// When the mutation ran (microseconds, as both databases store it).
    pub at: NaiveDateTime,
    /// Who ran it.
    pub actor_id: Option<S>,
    /// Their role then.
    pub actor_role: Option<S>,
    /// The operation's name.
    pub operation_name: Option<S>,
    /// The mutation field.
    pub field: S,
    /// Its arguments as JSON, secrets redacted.
    pub arguments: S,
    /// `OK` or the error code.
    pub outcome: S,
    /// Client address.
    pub client_ip: Option<S>,
    /// Client user agent.
    pub user_agent: Option<S>,
    /// The request's id.
    pub request_id: S,
}

/// A row as a request writes it, borrowing its text.
pub type NewAuditRow<'a> = AuditRowValues<&'a str>;

/// [`NewAuditRow`] owning its text, for a statement that cannot borrow: one run by SQLite's
/// blocking wrapper, whose work must own what it writes (`db::budgets`, a call's finish).
pub type OwnedAuditRow = AuditRowValues<String>;

impl From<&NewAuditRow<'_>> for OwnedAuditRow {
    fn from(row: &NewAuditRow<'_>) -> Self {
        let NewAuditRow {
            at,
            actor_id,
            actor_role,
            operation_name,
            field,
            arguments,
            outcome,
            client_ip,
            user_agent,
            request_id,
        } = *row;
        Self {
            at,
            actor_id: actor_id.map(str::to_owned),
            actor_role: actor_role.map(str::to_owned),
            operation_name: operation_name.map(str::to_owned),
            field: field.to_owned(),
            arguments: arguments.to_owned(),
            outcome: outcome.to_owned(),
            client_ip: client_ip.map(str::to_owned),
            user_agent: user_agent.map(str::to_owned),
            request_id: request_id.to_owned(),
        }
    }
}
