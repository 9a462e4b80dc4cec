//! Checking the chain ([`verify`], for `cloudbase-ai audit verify`) and reporting how far it is
//! linked ([`status`], for the `auditChain` query).

use chrono::NaiveDateTime;

use super::chainer::chain_hash;
use crate::Error;
use crate::db::audit as queries;
use crate::services::{App, Viewer};

/// What [`verify`] found in the chained rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every chained row links to the one before and hashes to its stored hash, and the last
    /// one is the head.
    Intact {
        /// How many chained rows were checked.
        rows: i64,
    },
    /// The chain breaks at `seq`.
    Broken {
        /// The first position that does not check out.
        seq: i64,
        /// Why.
        reason: String,
    },
}

/// Rows written but not linked yet: normally a fraction of a second's worth. A tail that grows
/// old means no instance is chaining.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tail {
    /// How many.
    pub rows: i64,
    /// When the oldest was written.
    pub oldest_at: Option<NaiveDateTime>,
}

impl Tail {
    /// How long the oldest row has waited at `now`, in milliseconds (0 with no tail).
    pub fn oldest_age_ms(&self, now: NaiveDateTime) -> i64 {
        self.oldest_at
            .map_or(0, |at| (now - at).num_milliseconds().max(0))
    }
}

/// What [`verify`] reports: the chain's verdict and the tail waiting to be linked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The chained rows.
    pub verdict: Verdict,
    /// The unchained rows, counted after the walk.
    pub tail: Tail,
}

/// Walks the whole chain in order and checks every link and hash, and the head; then counts
/// the unchained tail. Rows linked while the walk runs are left for the next check.
pub async fn verify(app: &App) -> Result<Report, Error> {
    const BATCH: i64 = 1000;
    let mut conn = app.db.get().await?;
    // The head first: rows and the head move in one transaction, so every row up to the head
    // read now is visible and stays where it is.
    let (head_seq, head_hash) = queries::head(&mut conn).await?;
    let (mut last_seq, mut last_hash) = (0_i64, String::new());
    let mut verdict = None;
    'walk: loop {
        let rows = queries::chained_after(&mut conn, last_seq, head_seq, BATCH).await?;
        for row in &rows {
            let seq = row.seq.unwrap_or_default();
            let reason = if seq != last_seq + 1 {
                Some(format!(
                    "expected row {} next; rows are missing",
                    last_seq + 1
                ))
            } else if row.prev_hash.as_deref() != Some(last_hash.as_str()) {
                Some("does not link to the row before it".into())
            } else if row.hash.as_deref() != Some(chain_hash(seq, &last_hash, row).as_str()) {
                Some("its content does not match its hash (edited)".into())
            } else {
                None
            };
            if let Some(reason) = reason {
                verdict = Some(Verdict::Broken { seq, reason });
                break 'walk;
            }
            (last_seq, last_hash) = (seq, row.hash.clone().unwrap_or_default());
        }
        if (rows.len() as i64) < BATCH {
            break;
        }
    }
    let verdict = match verdict {
        Some(broken) => broken,
        None if head_seq != last_seq || head_hash != last_hash => Verdict::Broken {
            seq: last_seq + 1,
            reason: format!(
                "the chain ends at row {last_seq} but {head_seq} were linked (rows removed)"
            ),
        },
        None => Verdict::Intact { rows: last_seq },
    };
    let (rows, oldest_at) = queries::tail(&mut conn).await?;
    Ok(Report {
        verdict,
        tail: Tail { rows, oldest_at },
    })
}

/// How far the chain is linked, without re-checking it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainStatus {
    /// Rows linked (the head's position).
    pub chained_rows: i64,
    /// The last linked row's hash (`""` while none is).
    pub head_hash: String,
    /// What waits to be linked.
    pub tail: Tail,
}

/// The chain's head and tail (admin only).
pub async fn status(app: &App, viewer: &Viewer) -> Result<ChainStatus, Error> {
    viewer.require_admin()?;
    let mut conn = app.db.get().await?;
    let (chained_rows, head_hash) = queries::head(&mut conn).await?;
    let (rows, oldest_at) = queries::tail(&mut conn).await?;
    Ok(ChainStatus {
        chained_rows,
        head_hash,
        tail: Tail { rows, oldest_at },
    })
}
