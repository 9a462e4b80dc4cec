//! System logs: warn-and-above `tracing` events and named business events, stored in
//! `system_logs`.
//!
//! The server's `tracing` layer turns each such event into a [`LogRow`] and offers it to the
//! instance's [`LogSink`], a bounded channel: offering never waits, and when the channel is full
//! the entry is dropped and counted. [`run_writer`] drains the channel in batches of up to
//! [`BATCH`] rows, one `INSERT` each, and publishes one `LogsAppended` event per batch.
//!
//! Business events are `tracing` events whose target starts with [`EVENT_TARGET`] (for example
//! `info!(target: "cloudbase::event::auth", user.id = %id, "login failed")`): they are stored at
//! any level. Events of the writer itself ([`WRITER_TARGET`]) are never stored, so a database
//! outage cannot feed on its own log lines.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::Enum;
use chrono::{DateTime, Utc};
use tokio::sync::{Notify, mpsc};

use super::{App, Viewer, validate};
use crate::Error;
use crate::clock::Clock;
use crate::db::models::LogRow;
use crate::db::system_logs::{self as queries, Filter};
use crate::events::Event;

/// Targets of business events start with this.
pub const EVENT_TARGET: &str = "cloudbase::event";
/// The writer's own target: never stored.
pub const WRITER_TARGET: &str = "cloudbase::logs";
/// Most rows written in one statement.
pub const BATCH: usize = 500;

/// Severity of a stored entry.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Something failed.
    Error,
    /// Something is wrong or degraded.
    Warn,
    /// A business event (login failure, budget threshold, ...).
    Info,
}

impl LogLevel {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "ERROR",
            Self::Warn => "WARN",
            Self::Info => "INFO",
        }
    }

    /// This level and every more severe one, as stored.
    fn and_above(self) -> Vec<String> {
        let all = [Self::Error, Self::Warn, Self::Info];
        let n = all.iter().position(|l| *l == self).unwrap_or(0) + 1;
        all[..n].iter().map(|l| l.as_str().to_owned()).collect()
    }

    /// From the stored form (unknown text reads as `INFO`).
    pub fn parse(stored: &str) -> Self {
        match stored {
            "ERROR" => Self::Error,
            "WARN" => Self::Warn,
            _ => Self::Info,
        }
    }
}

/// The bounded hand-off between the `tracing` layer and [`run_writer`].
pub struct LogSink {
    tx: mpsc::Sender<LogRow>,
    rx: Mutex<Option<mpsc::Receiver<LogRow>>>,
    clock: Arc<dyn Clock>,
    accepted: AtomicU64,
    dropped: AtomicU64,
    written: AtomicU64,
    closing: Notify,
}

impl LogSink {
    /// A sink holding at most `capacity` entries not yet written.
    pub fn new(capacity: usize, clock: Arc<dyn Clock>) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        Self {
            tx,
            rx: Mutex::new(Some(rx)),
            clock,
            accepted: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
            closing: Notify::new(),
        }
    }

    /// The time to stamp an entry with.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Queues `row` without waiting; when the channel is full (or the writer has stopped) the
    /// row is dropped and counted. Returns whether it was queued.
    pub fn offer(&self, row: LogRow) -> bool {
        match self.tx.try_send(row) {
            Ok(()) => {
                self.accepted.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(_) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Entries queued so far.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Entries dropped so far (channel full, or their batch could not be written).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Entries stored so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Asks [`run_writer`] to write what is queued and stop.
    pub fn close(&self) {
        self.closing.notify_one();
    }
}

/// Writes queued entries in batches until [`LogSink::close`]; then writes what is left and
/// returns. Runs once per instance (a second call returns at once).
pub async fn run_writer(app: Arc<App>) {
    let taken = app.logs.rx.lock().map(|mut rx| rx.take()).ok().flatten();
    let Some(mut rx) = taken else {
        return;
    };
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    return;
                }
                write(&app, &mut batch).await;
            }
            () = app.logs.closing.notified() => {
                rx.close();
                while rx.recv_many(&mut batch, BATCH).await > 0 {
                    write(&app, &mut batch).await;
                }
                return;
            }
        }
    }
}

/// Stores `batch` under a new batch id (retrying twice), publishes it, and empties it.
async fn write(app: &App, batch: &mut Vec<LogRow>) {
    if batch.is_empty() {
        return;
    }
    let batch_id = uuid::Uuid::now_v7().to_string();
    for row in batch.iter_mut() {
        row.batch_id.clone_from(&batch_id);
    }
    let mut result = Ok(0);
    for attempt in 0..3u32 {
        result = insert(app, batch).await;
        if result.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
    }
    let n = batch.len() as u64;
    match result {
        Ok(_) => {
            app.logs.written.fetch_add(n, Ordering::Relaxed);
            app.events.publish(Event::LogsAppended { batch_id });
        }
        Err(e) => {
            app.logs.dropped.fetch_add(n, Ordering::Relaxed);
            tracing::warn!(target: "cloudbase::logs", error = %e, lost = n, "writing system logs failed");
        }
    }
    batch.clear();
}

async fn insert(app: &App, batch: &[LogRow]) -> Result<usize, Error> {
    let mut conn = app.db.get().await?;
    queries::insert_batch(&mut conn, batch).await
}

/// What a `logs` query may filter on.
#[derive(Debug, Default, Clone)]
pub struct LogFilter {
    /// This level and above.
    pub level: Option<LogLevel>,
    /// Sources starting with this, e.g. `cloudbase::event` for every business event.
    pub source: Option<String>,
    /// Messages containing this, case-insensitively.
    pub text: Option<String>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
}

impl LogFilter {
    /// Checks the filter and turns it into the query's form.
    pub fn to_query(&self) -> Result<Filter, Error> {
        let source_prefix = match self.source.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) if s.chars().count() > 200 => {
                return Err(Error::bad_input(
                    "source",
                    "source must be at most 200 characters",
                ));
            }
            Some(s) => Some(format!("{}%", validate::escape_like(s))),
        };
        let text = match &self.text {
            Some(t) => validate::like_pattern("text", t)?,
            None => None,
        };
        Ok(Filter {
            levels: self.level.map(LogLevel::and_above),
            source_prefix,
            text,
            since: self.since.map(|t| t.naive_utc()),
            until: self.until.map(|t| t.naive_utc()),
        })
    }
}

/// A page of stored entries, newest first (admin only); returns the rows and whether more follow.
pub async fn list(
    app: &App,
    viewer: &Viewer,
    filter: &LogFilter,
    first: Option<i32>,
    after: Option<&str>,
) -> Result<(Vec<LogRow>, bool), Error> {
    viewer.require_admin()?;
    let limit = validate::page_size(first)?;
    if let Some(cursor) = after {
        validate::id("after", cursor)?;
    }
    let query = filter.to_query()?;
    let mut conn = app.db.get().await?;
    let mut rows = queries::page(&mut conn, &query, after, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok((rows, more))
}

/// The entries of one stored batch that match `filter`, oldest first (at most [`BATCH`]).
pub async fn batch(app: &App, filter: &Filter, batch_id: &str) -> Result<Vec<LogRow>, Error> {
    let mut conn = app.db.get().await?;
    Ok(queries::batch(&mut conn, filter, batch_id).await?)
}

/// Deletes entries older than `days` days; returns how many.
pub async fn prune(app: &App, days: u64) -> Result<usize, Error> {
    let cutoff =
        app.now() - chrono::Duration::days(i64::try_from(days).unwrap_or(i64::MAX / 86_400_000));
    let mut conn = app.db.get().await?;
    let mut deleted = 0;
    loop {
        let n = conn
            .write(async |c| Ok(queries::delete_before(c, cutoff, 5_000).await?))
            .await?;
        deleted += n;
        if n < 5_000 {
            break;
        }
    }
    if deleted > 0 {
        tracing::info!(deleted, retention_days = days, "old system logs deleted");
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_level_filter_includes_the_more_severe_levels() {
        assert_eq!(LogLevel::Error.and_above(), vec!["ERROR"]);
        assert_eq!(LogLevel::Warn.and_above(), vec!["ERROR", "WARN"]);
        assert_eq!(LogLevel::Info.and_above(), vec!["ERROR", "WARN", "INFO"]);
    }

    #[test]
    fn a_source_prefix_escapes_like_wildcards() {
        let f = LogFilter {
            source: Some("a_b%".into()),
            ..LogFilter::default()
        };
        assert_eq!(
            f.to_query().unwrap().source_prefix.as_deref(),
            Some("a\\_b\\%%")
        );
    }
}
