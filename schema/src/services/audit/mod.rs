//! The audit trail: every executed mutation field, recorded by the GraphQL audit extension
//! (`graphql::audit`), never by hand in resolvers.
//!
//! A request writes its row with one `INSERT` ([`record`]), committed before the mutation's
//! response goes out, and touches no shared row: mutations on every instance run side by side.
//! A mutation that commits a transaction of its own anyway (an AI call's finish) writes the row
//! in it instead ([`running`], [`take_running`]): one transaction fewer per call.
//! The chainer then links rows into a hash chain in batches, well under a second behind, on the
//! one instance holding the `audit-chain` lease. Each chained row gets the next position `seq`,
//! the previous row's hash, and its own `hash`: SHA-256 over its content, `seq` and the previous
//! hash. Editing, deleting or reordering chained rows breaks the chain from that row on, which
//! [`verify`] (and `cloudbase-ai audit verify`) finds. Rows not linked yet form the unchained
//! tail, which [`verify`] and [`status`] count and date; a crash leaves them in the table, and the
//! next chainer links them.
//!
//! - [`secrets`]: keeping secrets and prompts out of stored arguments.
//! - [`chainer`]: the chain hash and the lease-led chainer.
//! - [`check`]: walking the chain, and the state of its head and tail.

pub mod chainer;
pub mod check;
pub mod secrets;

use std::cell::RefCell;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::Value;

use super::{App, Viewer, validate};
use crate::Error;
use crate::db::audit::{self as queries, Filter};
use crate::db::models::{AuditRow, NewAuditRow};

pub use chainer::{ChainSettings, chain_hash};
pub use check::{
    ChainStatus, MAX_RANGE, RangeReport, Report, Tail, Verdict, status, verify, verify_db,
    verify_range,
};
pub use secrets::{REDACTED, redact};

/// One executed mutation field, as the extension saw it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Who ran it, and their role then.
    pub actor: Option<(String, String)>,
    /// The operation's name.
    pub operation_name: Option<String>,
    /// The mutation field.
    pub field: String,
    /// Its arguments, variables substituted; redacted by [`record`].
    pub arguments: Value,
    /// `OK` or the error code.
    pub outcome: String,
    /// Client address.
    pub client_ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// The request's id.
    pub request_id: String,
}

/// An entry ready to store: secrets redacted, arguments serialised, its time taken.
#[derive(Debug)]
pub struct Stored {
    entry: Entry,
    arguments: String,
    at: NaiveDateTime,
}

impl Stored {
    /// Redacts `entry` and stamps it with the time now.
    pub fn new(app: &App, mut entry: Entry) -> Self {
        redact(&mut entry.arguments, app.chat.log_prompts);
        Self {
            arguments: entry.arguments.to_string(),
            // Microseconds: what both databases store, so the chainer hashes what a reader sees.
            at: truncate_micros(app.now()),
            entry,
        }
    }

    /// The row to insert.
    pub fn row(&self) -> NewAuditRow<'_> {
        let e = &self.entry;
        NewAuditRow {
            at: self.at,
            actor_id: e.actor.as_ref().map(|(id, _)| id.as_str()),
            actor_role: e.actor.as_ref().map(|(_, role)| role.as_str()),
            operation_name: e.operation_name.as_deref(),
            field: &e.field,
            arguments: &self.arguments,
            outcome: &e.outcome,
            client_ip: e.client_ip.as_deref(),
            user_agent: e.user_agent.as_deref(),
            request_id: &e.request_id,
        }
    }
}

/// Writes `entry`, secrets redacted, as one unchained row, committed when this returns (on
/// SQLite, whose `synchronous = NORMAL` survives a crashed process but not a lost machine, like
/// every other write).
pub async fn record(app: &App, entry: Entry) -> Result<(), Error> {
    let stored = Stored::new(app, entry);
    let mut conn = app.db.get().await?;
    // Every mutation writes one: on the call path (`crate::db::on_call_path`).
    crate::db::on_call_path(conn.write(async |c| Ok(queries::insert(c, &stored.row()).await?)))
        .await?;
    Ok(())
}

tokio::task_local! {
    /// The entry of the root mutation field running on this task, until someone writes it.
    static RUNNING: RefCell<Option<Entry>>;
}

/// Runs `field`, a root mutation field whose `entry` waits for its outcome, so that work which
/// commits a transaction anyway can write the entry in it ([`take_running`]) instead of the
/// separate `INSERT` of [`record`]. Returns the field's output, and the entry if it is still to
/// be written.
pub async fn running<F: std::future::Future>(entry: Entry, field: F) -> (F::Output, Option<Entry>) {
    RUNNING
        .scope(RefCell::new(Some(entry)), async {
            let output = field.await;
            (output, RUNNING.with(|slot| slot.borrow_mut().take()))
        })
        .await
}

/// The running mutation's entry (see [`running`]) with its `outcome`, to insert in a
/// transaction about to commit; `None` outside a mutation (a subscription, the `/v1` door) or
/// once taken. If that transaction does not commit, [`give_back`] returns it, and the field's own
/// outcome is written after it ends.
pub fn take_running(app: &App, outcome: &str) -> Option<Stored> {
    let mut entry = RUNNING
        .try_with(|slot| slot.borrow_mut().take())
        .ok()
        .flatten()?;
    outcome.clone_into(&mut entry.outcome);
    Some(Stored::new(app, entry))
}

/// Returns an entry from [`take_running`] whose transaction failed.
pub fn give_back(stored: Stored) {
    let _ = RUNNING.try_with(|slot| *slot.borrow_mut() = Some(stored.entry));
}

fn truncate_micros(t: NaiveDateTime) -> NaiveDateTime {
    let micros = t.and_utc().timestamp_micros();
    DateTime::from_timestamp_micros(micros).map_or(t, |d| d.naive_utc())
}

/// What an `auditLog` query may filter on.
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    /// One actor's rows.
    pub actor_id: Option<String>,
    /// One mutation field.
    pub field: Option<String>,
    /// `OK` or an error code.
    pub outcome: Option<String>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
}

/// A page of the audit log, chained rows and unchained alike, newest first (admin only). The
/// cursor is a row's `id`.
pub async fn list(
    app: &App,
    viewer: &Viewer,
    filter: AuditFilter,
    first: Option<i32>,
    after: Option<&str>,
) -> Result<(Vec<AuditRow>, bool), Error> {
    viewer.require_admin()?;
    let limit = validate::page_size(first)?;
    let before = after
        .map(|a| {
            a.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| Error::bad_input("after", "expected a cursor from `endCursor`"))
        })
        .transpose()?;
    if let Some(actor) = &filter.actor_id {
        validate::id("filter.actorId", actor)?;
    }
    if let (Some(since), Some(until)) = (filter.since, filter.until)
        && since >= until
    {
        return Err(Error::bad_input(
            "filter.since",
            "`since` must be before `until`",
        ));
    }
    let db_filter = Filter {
        actor_id: filter.actor_id,
        field: filter.field,
        outcome: filter.outcome,
        since: filter.since.map(|t| t.naive_utc()),
        until: filter.until.map(|t| t.naive_utc()),
    };
    let mut conn = app.db.get().await?;
    let mut rows = queries::page(&mut conn, &db_filter, before, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok((rows, more))
}
