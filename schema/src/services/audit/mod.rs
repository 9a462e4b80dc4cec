//! The audit trail: every executed mutation field, recorded by the GraphQL audit extension
//! (`graphql::audit`), never by hand in resolvers.
//!
//! Rows form a hash chain. Each row's `hash` is SHA-256 over its content and the previous row's
//! hash, so editing, deleting or reordering rows breaks the chain from that row on, which
//! [`verify`] (and `cloudbase-ai audit verify`) finds.
//!
//! - [`secrets`]: keeping secrets and prompts out of stored arguments.

pub mod secrets;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{App, Viewer, validate};
use crate::Error;
use crate::db::audit::{self as queries, AuditRow, Filter};

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

/// The chain hash of `row` (its `hash` field aside): SHA-256, hex, over every other column, each
/// length-prefixed so no two rows can run together into the same input.
pub fn chain_hash(row: &AuditRow) -> String {
    let at = row
        .at
        .and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let parts: [Option<&str>; 11] = [
        Some(&row.prev_hash),
        Some(&at),
        row.actor_id.as_deref(),
        row.actor_role.as_deref(),
        row.operation_name.as_deref(),
        Some(&row.field),
        Some(&row.arguments),
        Some(&row.outcome),
        row.client_ip.as_deref(),
        row.user_agent.as_deref(),
        Some(&row.request_id),
    ];
    let mut hasher = Sha256::new();
    hasher.update(row.seq.to_be_bytes());
    for part in parts {
        match part {
            Some(s) => {
                hasher.update([1u8]);
                hasher.update((s.len() as u64).to_be_bytes());
                hasher.update(s.as_bytes());
            }
            None => hasher.update([0u8]),
        }
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Appends `entry` to the chain, with its secrets redacted.
pub async fn record(app: &App, mut entry: Entry) -> Result<AuditRow, Error> {
    redact(&mut entry.arguments, app.chat.log_prompts);
    // Microseconds: what both databases store, so the hash of a row read back matches.
    let at = truncate_micros(app.now());
    let mut conn = app.db.get().await?;
    conn.transaction(async |tx| {
        let row = queries::append(tx, |seq, prev_hash| {
            let (actor_id, actor_role) = entry.actor.clone().unzip();
            let mut row = AuditRow {
                seq,
                at,
                actor_id,
                actor_role,
                operation_name: entry.operation_name.clone(),
                field: entry.field.clone(),
                arguments: entry.arguments.to_string(),
                outcome: entry.outcome.clone(),
                client_ip: entry.client_ip.clone(),
                user_agent: entry.user_agent.clone(),
                request_id: entry.request_id.clone(),
                prev_hash,
                hash: String::new(),
            };
            row.hash = chain_hash(&row);
            row
        })
        .await?;
        Ok(row)
    })
    .await
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

/// A page of the audit log, newest first (admin only). The cursor is a row's `seq`.
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

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every row links to the one before and hashes to its stored hash.
    Intact {
        /// How many rows were checked.
        rows: i64,
    },
    /// The chain breaks at `seq`.
    Broken {
        /// The first row that does not check out (or the head, `seq` 0, if rows are missing at
        /// the end).
        seq: i64,
        /// Why.
        reason: String,
    },
}

/// Walks the whole chain in order and checks every link and hash, and the head.
pub async fn verify(app: &App) -> Result<Verdict, Error> {
    const BATCH: i64 = 1000;
    let mut conn = app.db.get().await?;
    // The head first: a row and the head move in one transaction, so every row up to the head
    // read now is visible, and rows appended while the walk runs are left for the next check.
    let (head_seq, head_hash) = queries::head(&mut conn).await?;
    let (mut last_seq, mut last_hash) = (0_i64, String::new());
    loop {
        let rows = queries::after(&mut conn, last_seq, head_seq, BATCH).await?;
        for row in &rows {
            let broken = |reason: String| {
                Ok(Verdict::Broken {
                    seq: row.seq,
                    reason,
                })
            };
            if row.seq != last_seq + 1 {
                return broken(format!(
                    "expected row {} next; rows are missing",
                    last_seq + 1
                ));
            }
            if row.prev_hash != last_hash {
                return broken("does not link to the row before it".into());
            }
            if chain_hash(row) != row.hash {
                return broken("its content does not match its hash (edited)".into());
            }
            (last_seq, last_hash) = (row.seq, row.hash.clone());
        }
        if (rows.len() as i64) < BATCH {
            break;
        }
    }
    if head_seq != last_seq || head_hash != last_hash {
        return Ok(Verdict::Broken {
            seq: last_seq + 1,
            reason: format!(
                "the chain ends at row {last_seq} but {head_seq} were written (rows removed)"
            ),
        });
    }
    Ok(Verdict::Intact { rows: last_seq })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn the_hash_covers_every_column() {
        let row = AuditRow {
            seq: 1,
            at: DateTime::from_timestamp(1_800_000_000, 0)
                .unwrap()
                .naive_utc(),
            actor_id: Some("u".into()),
            actor_role: Some("ADMIN".into()),
            operation_name: None,
            field: "setUserRole".into(),
            arguments: "{}".into(),
            outcome: "OK".into(),
            client_ip: Some("127.0.0.1".into()),
            user_agent: None,
            request_id: "r".into(),
            prev_hash: String::new(),
            hash: String::new(),
        };
        let base = chain_hash(&row);
        let changed: Vec<AuditRow> = vec![
            AuditRow {
                seq: 2,
                ..row.clone()
            },
            AuditRow {
                actor_id: None,
                ..row.clone()
            },
            AuditRow {
                actor_role: Some("USER".into()),
                ..row.clone()
            },
            AuditRow {
                operation_name: Some("x".into()),
                ..row.clone()
            },
            AuditRow {
                field: "disableUser".into(),
                ..row.clone()
            },
            AuditRow {
                arguments: "{\"a\":1}".into(),
                ..row.clone()
            },
            AuditRow {
                outcome: "FORBIDDEN".into(),
                ..row.clone()
            },
            AuditRow {
                client_ip: None,
                ..row.clone()
            },
            AuditRow {
                user_agent: Some(String::new()),
                ..row.clone()
            },
            AuditRow {
                request_id: "s".into(),
                ..row.clone()
            },
            AuditRow {
                prev_hash: "00".into(),
                ..row.clone()
            },
            AuditRow {
                at: row.at + chrono::Duration::microseconds(1),
                ..row.clone()
            },
        ];
        for other in changed {
            assert_ne!(chain_hash(&other), base, "{other:?}");
        }
    }
}
