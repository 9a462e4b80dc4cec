//! Stored system log entries.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::system_logs;

/// A row of `system_logs`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = system_logs, treat_none_as_default_value = false)]
pub struct LogRow {
    /// UUIDv7: sorts by time; the cursor.
    pub id: String,
    /// When the event happened (UTC).
    pub at: NaiveDateTime,
    /// `ERROR`, `WARN` or `INFO` (business events).
    pub level: String,
    /// The `tracing` target, e.g. `cloudbase::event::auth`.
    pub source: String,
    /// The message.
    pub message: String,
    /// Structured fields, a JSON object.
    pub fields: String,
    /// The request it happened in, if any.
    pub request_id: Option<String>,
    /// The write that stored it (set by the writer).
    pub batch_id: String,
}
