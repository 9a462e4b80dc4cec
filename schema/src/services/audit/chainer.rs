//! The chainer: links the rows requests wrote into the hash chain, in batches, off the request
//! path.
//!
//! Every instance runs [`run`], but only the holder of the `audit-chain` lease links, so the
//! cluster does the work once. The lease is for economy, not for correctness: each batch is one
//! transaction that first locks the head row, then links the unchained rows it sees after the
//! head and moves the head with a compare-and-set, and each row is linked only while still
//! unchained. Two chainers (a lease that changed hands mid-batch) therefore run one after the
//! other, and the second sees the first one's rows as chained: the chain never forks and no row
//! is linked twice. A row written but not linked yet (a crash, a lease in transit) stays in the
//! table and is linked by whichever instance holds the lease next.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::Error;
use crate::db::audit::{self as queries, Link};
use crate::db::leases;
use crate::db::models::AuditRow;
use crate::services::App;

/// The lease that names the one chainer in a cluster.
pub const LEASE: &str = "audit-chain";

/// The chainer's settings (`[audit]` in the server's config).
#[derive(Debug, Clone)]
pub struct ChainSettings {
    /// How often the lease holder links what was written since: how far behind the chain can
    /// be. On SQLite each round holds the writers' turn for a moment, and a call that comes
    /// meanwhile waits: the fewer rounds a second, the fewer calls wait. Most of a round's cost is
    /// the round itself, not its rows: at c=1, rounds of 500 ms took the GraphQL p99 from about
    /// 3 ms (200 ms) to 1.2–1.9 ms, and rounds of 300 ms to 2.0–2.3 ms (`bench/RESULTS.md`).
    pub interval: Duration,
    /// Most rows linked in one transaction (a longer tail takes several, back to back). Large
    /// enough for what a busy instance writes in one interval (a thousand calls a second, half
    /// a second), so that one round links it all.
    pub batch_size: i64,
    /// How long a held lease lasts without renewal: how soon another instance takes over from
    /// one that died (it is renewed every third of this).
    pub lease_ttl: Duration,
}

impl Default for ChainSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(500),
            batch_size: 1024,
            lease_ttl: Duration::from_secs(3),
        }
    }
}

/// The chain hash of `row`'s content at position `seq` after `prev_hash`: SHA-256, hex, over
/// `seq` and every content column, each length-prefixed so no two rows can run together into
/// the same input. `id` is the row's locator, not its content, and is not covered. Rows chained
/// before the chainer existed were hashed the same way, so they verify unchanged.
pub fn chain_hash(seq: i64, prev_hash: &str, row: &AuditRow) -> String {
    let at = row
        .at
        .and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let parts: [Option<&str>; 11] = [
        Some(prev_hash),
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
    hasher.update(seq.to_be_bytes());
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
    hex::encode(hasher.finalize())
}

/// Links up to `limit` unchained rows, oldest first, in one transaction; returns how many.
pub async fn link_batch(app: &App, limit: i64) -> Result<usize, Error> {
    let mut conn = app.db.get().await?;
    // Idle ticks read one index entry and take no lock.
    if !queries::any_unchained(&mut conn).await? {
        return Ok(0);
    }
    conn.transaction(async |tx| {
        let batch = queries::chain_batch(tx, limit, plan).await?;
        if batch.linked != batch.planned {
            return Err(Error::Internal(format!(
                "audit chain: {} of {} rows were still unchained when linked",
                batch.linked, batch.planned
            )));
        }
        if !batch.head_moved {
            return Err(Error::Internal(
                "audit chain: the head moved while locked".into(),
            ));
        }
        Ok(batch.linked)
    })
    .await
}

/// The links of `rows`, in order, after the head at position `head` with hash `prev_hash`.
fn plan(head: i64, mut prev_hash: String, rows: &[AuditRow]) -> Vec<Link> {
    let mut seq = head;
    rows.iter()
        .map(|row| {
            seq += 1;
            let hash = chain_hash(seq, &prev_hash, row);
            Link {
                id: row.id,
                seq,
                prev_hash: std::mem::replace(&mut prev_hash, hash.clone()),
                hash,
            }
        })
        .collect()
}

/// Whether this instance holds the lease, as far as it knows.
#[derive(Debug)]
struct LeaseState {
    /// Held until then (by the local clock), if held.
    held_until: Option<Instant>,
    /// When to renew it, or try to take it, next.
    renew_at: Instant,
}

/// Runs the chainer until the task is aborted, a round every `interval` from one interval after
/// start.
pub async fn run(app: Arc<App>, settings: ChainSettings) {
    let mut ticker =
        tokio::time::interval_at(Instant::now() + settings.interval, settings.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lease = LeaseState {
        held_until: None,
        renew_at: Instant::now(),
    };
    let mut failing = crate::recurring::Recurring::default();
    loop {
        ticker.tick().await;
        match tick(&app, &settings, &mut lease).await {
            Ok(linked) => {
                failing.worked(|| tracing::info!("chaining audit rows works again"));
                if linked > 0 {
                    app.metrics.record(|| {
                        metrics::counter!("cloudbase_audit_chained_rows_total")
                            .increment(linked as u64);
                    });
                    tracing::debug!(audit.linked = linked, "audit rows chained");
                }
            }
            Err(e) => failing.failed(|unsaid| {
                tracing::warn!(error = %e, rounds_failed_unlogged = unsaid, "chaining audit rows failed");
            }),
        }
    }
}

/// One round: renew (or try to take) the lease when due; if held, link until the tail is
/// shorter than a batch or the lease is due again. Returns how many rows were linked.
async fn tick(app: &App, settings: &ChainSettings, lease: &mut LeaseState) -> Result<usize, Error> {
    if Instant::now() >= lease.renew_at {
        let started = Instant::now();
        let now = app.now();
        let ttl = chrono::Duration::from_std(settings.lease_ttl)
            .unwrap_or_else(|_| chrono::Duration::seconds(3));
        let mut conn = app.db.get().await?;
        let origin = app.events.origin();
        let held = conn
            .write(async |c| Ok(leases::acquire(c, LEASE, origin, now, now + ttl).await?))
            .await?;
        lease.held_until = held.then(|| started + settings.lease_ttl);
        lease.renew_at = started + settings.lease_ttl / 3;
    }
    let mut linked = 0;
    while lease.held_until.is_some_and(|until| Instant::now() < until) {
        let n = link_batch(app, settings.batch_size).await?;
        linked += n;
        if (n as i64) < settings.batch_size || Instant::now() >= lease.renew_at {
            break;
        }
    }
    Ok(linked)
}

/// Gives up the lease if this instance holds it, so another takes over at once (at shutdown).
pub async fn release(app: &App) -> Result<(), Error> {
    let mut conn = app.db.get().await?;
    leases::release(&mut conn, LEASE, app.events.origin()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    #[test]
    fn the_hash_covers_every_column() {
        let row = AuditRow {
            id: 7,
            seq: None,
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
            prev_hash: None,
            hash: None,
        };
        let base = chain_hash(1, "", &row);
        assert_ne!(chain_hash(2, "", &row), base, "the position");
        assert_ne!(chain_hash(1, "00", &row), base, "the previous hash");
        let changed: Vec<AuditRow> = vec![
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
                at: row.at + chrono::Duration::microseconds(1),
                ..row.clone()
            },
        ];
        for other in changed {
            assert_ne!(chain_hash(1, "", &other), base, "{other:?}");
        }
    }

    /// Rows chained before the chainer existed were hashed this way: the format must not change.
    #[test]
    fn the_hash_format_is_stable() {
        let row = AuditRow {
            id: 1,
            seq: None,
            at: DateTime::from_timestamp(1_800_000_000, 0)
                .unwrap()
                .naive_utc(),
            actor_id: None,
            actor_role: None,
            operation_name: Some("Op".into()),
            field: "login".into(),
            arguments: "{}".into(),
            outcome: "OK".into(),
            client_ip: None,
            user_agent: None,
            request_id: "r".into(),
            prev_hash: None,
            hash: None,
        };
        // Computed independently (Python's hashlib over the documented layout), once.
        let expected = "381917afbc03d179bb88cdb2ba72218e24eecee4a2a68dde244fa0764399b8c9";
        assert_eq!(chain_hash(1, "", &row), expected);
    }
}
