//! System logs in GraphQL (admin only): `logs` pages through stored entries, `logAppended`
//! streams new ones as their batches are written.

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::futures_util::stream::{self, BoxStream, StreamExt};
use async_graphql::{Context, ID, InputObject, Object, SimpleObject, Subscription};
use chrono::{DateTime, Utc};

use super::ContextExt;
use super::events::{app_of, events, until_expiry};
use crate::Error;
use crate::db::models::LogRow;
use crate::events::Event;
use crate::services::logs::{self, LogFilter, LogLevel};

/// One stored log entry.
#[derive(SimpleObject, Clone)]
pub struct LogEntry {
    /// Its id (a UUIDv7, time-ordered; also the cursor).
    pub id: ID,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Severity.
    pub level: LogLevel,
    /// Where it came from (the `tracing` target); business events start with `cloudbase::event`.
    pub source: String,
    /// The message.
    pub message: String,
    /// Structured fields.
    pub fields: async_graphql::Json<serde_json::Value>,
    /// The request it happened in, if any.
    pub request_id: Option<String>,
}

impl From<LogRow> for LogEntry {
    fn from(row: LogRow) -> Self {
        Self {
            id: ID(row.id),
            at: row.at.and_utc(),
            level: LogLevel::parse(&row.level),
            source: row.source,
            message: row.message,
            fields: async_graphql::Json(
                serde_json::from_str(&row.fields).unwrap_or(serde_json::Value::Null),
            ),
            request_id: row.request_id,
        }
    }
}

/// What `logs` and `logAppended` may filter on.
#[derive(InputObject, Default, Clone)]
pub struct LogsFilter {
    /// This level and the more severe ones (`WARN` gives warnings and errors).
    pub level: Option<LogLevel>,
    /// Sources starting with this, e.g. `cloudbase::event` for every business event.
    pub source: Option<String>,
    /// Messages containing this text, case-insensitively.
    pub text: Option<String>,
    /// At or after (ignored by `logAppended`).
    pub since: Option<DateTime<Utc>>,
    /// Before (ignored by `logAppended`).
    pub until: Option<DateTime<Utc>>,
}

impl From<LogsFilter> for LogFilter {
    fn from(f: LogsFilter) -> Self {
        Self {
            level: f.level,
            source: f.source,
            text: f.text,
            since: f.since,
            until: f.until,
        }
    }
}

/// Log queries.
#[derive(Default)]
pub struct LogsQuery;

#[Object]
impl LogsQuery {
    /// Stored warnings, errors and business events, newest first (admin only).
    async fn logs(
        &self,
        ctx: &Context<'_>,
        filter: Option<LogsFilter>,
        #[graphql(desc = "Page size, 1–100 (default 20).")] first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, LogEntry, EmptyFields, EmptyFields>, Error> {
        let filter = LogFilter::from(filter.unwrap_or_default());
        let (rows, more) =
            logs::list(ctx.app()?, ctx.viewer()?, &filter, first, after.as_deref()).await?;
        let mut connection = Connection::new(after.is_some(), more);
        connection.edges.extend(
            rows.into_iter()
                .map(|r| Edge::new(r.id.clone(), LogEntry::from(r))),
        );
        Ok(connection)
    }
}

/// Log subscriptions.
#[derive(Default)]
pub struct LogsSubscription;

#[Subscription]
impl LogsSubscription {
    /// Log entries as they are stored, on any instance (admin only), oldest first.
    async fn log_appended(
        &self,
        ctx: &Context<'_>,
        filter: Option<LogsFilter>,
    ) -> Result<BoxStream<'static, async_graphql::Result<LogEntry>>, Error> {
        let (app, viewer) = (app_of(ctx)?, ctx.viewer()?.clone());
        viewer.require_admin()?;
        let filter = LogFilter::from(filter.unwrap_or_default()).to_query()?;
        let entries = events(&app)
            .then(move |item| {
                let (app, filter) = (app.clone(), filter.clone());
                async move {
                    match item {
                        Err(e) => vec![Err(e)],
                        Ok(event) => match &*event {
                            Event::LogsAppended { batch_id } => {
                                match logs::batch(&app, &filter, batch_id).await {
                                    Ok(rows) => {
                                        rows.into_iter().map(|r| Ok(LogEntry::from(r))).collect()
                                    }
                                    Err(e) => vec![Err(e)],
                                }
                            }
                            _ => Vec::new(),
                        },
                    }
                }
            })
            .flat_map(stream::iter)
            .boxed();
        Ok(until_expiry(&viewer, entries))
    }
}
