//! Checking the chain ([`verify`], for `cloudbase-ai audit verify`, and [`verify_db`] on any pool; [`verify_range`], bounded
//! steps for the `verifyAuditChain` query) and reporting how far it is linked ([`status`], for
//! the `auditChain` query).

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

/// Where a walk along the chain got to.
struct Walked {
    /// The last row that checked out (the start, if none did).
    last_seq: i64,
    /// Its hash.
    last_hash: String,
    /// The first row that did not check out, and why.
    broken: Option<(i64, String)>,
}

/// Checks the chained rows after `(seq, hash)` up to `head_seq`, at most `limit` of them (no limit
/// when `None`): each must be the next position, link to the row before it, and hash to its
/// stored hash. Stops at the first that does not.
async fn walk(
    conn: &mut crate::db::DbConn,
    (seq, hash): (i64, String),
    head_seq: i64,
    limit: Option<i64>,
) -> Result<Walked, Error> {
    const BATCH: i64 = 1000;
    let end = limit.map_or(head_seq, |limit| head_seq.min(seq.saturating_add(limit)));
    let mut walked = Walked {
        last_seq: seq,
        last_hash: hash,
        broken: None,
    };
    loop {
        let rows = queries::chained_after(conn, walked.last_seq, end, BATCH).await?;
        for row in &rows {
            let seq = row.seq.unwrap_or_default();
            let reason = if seq != walked.last_seq + 1 {
                Some(format!(
                    "expected row {} next; rows are missing",
                    walked.last_seq + 1
                ))
            } else if row.prev_hash.as_deref() != Some(walked.last_hash.as_str()) {
                Some("does not link to the row before it".into())
            } else if row.hash.as_deref() != Some(chain_hash(seq, &walked.last_hash, row).as_str())
            {
                Some("its content does not match its hash (edited)".into())
            } else {
                None
            };
            if let Some(reason) = reason {
                walked.broken = Some((seq, reason));
                return Ok(walked);
            }
            (walked.last_seq, walked.last_hash) = (seq, row.hash.clone().unwrap_or_default());
        }
        if (rows.len() as i64) < BATCH || walked.last_seq >= end {
            return Ok(walked);
        }
    }
}

/// The break a walk that reached the head's position finds there: the head must name the
/// last row's hash, and no row may be missing before it.
fn check_head(walked: &Walked, head_seq: i64, head_hash: &str) -> Option<(i64, String)> {
    let reached = walked.last_seq;
    (head_seq != reached || head_hash != walked.last_hash).then(|| {
        (
            reached + 1,
            format!("the chain ends at row {reached} but {head_seq} were linked (rows removed)"),
        )
    })
}

/// Walks the whole chain in order and checks every link and hash, and the head; then counts
/// the unchained tail. Rows linked while the walk runs are left for the next check.
pub async fn verify(app: &App) -> Result<Report, Error> {
    verify_db(&app.db).await
}

/// [`verify`] on any pool, without the rest of an [`App`]: `backup verify` checks a restored
/// copy with it.
pub async fn verify_db(db: &crate::db::DbPool) -> Result<Report, Error> {
    let mut conn = db.get().await?;
    // The head first: rows and the head move in one transaction, so every row up to the head
    // read now is visible and stays where it is.
    let (head_seq, head_hash) = queries::head(&mut conn).await?;
    let walked = walk(&mut conn, (0, String::new()), head_seq, None).await?;
    let verdict = match walked
        .broken
        .clone()
        .or_else(|| check_head(&walked, head_seq, &head_hash))
    {
        Some((seq, reason)) => Verdict::Broken { seq, reason },
        None => Verdict::Intact {
            rows: walked.last_seq,
        },
    };
    let (rows, oldest_at) = queries::tail(&mut conn).await?;
    Ok(Report {
        verdict,
        tail: Tail { rows, oldest_at },
    })
}

/// Most rows one [`verify_range`] checks.
pub const MAX_RANGE: i64 = 10_000;

/// What one bounded check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeReport {
    /// It started after this position.
    pub after_seq: i64,
    /// The last position that checked out.
    pub last_seq: i64,
    /// The head's position when the check began.
    pub head_seq: i64,
    /// The first break, and why, if one was found.
    pub broken: Option<(i64, String)>,
}

/// Checks at most `limit` (1 to [`MAX_RANGE`]) chained rows after position `after_seq`, starting
/// from that row's stored hash (admin only). Paging with `after_seq` = the last `last_seq` walks
/// the whole chain in bounded steps, each holding one connection for a bounded time. Each step
/// trusts the row it starts from; the first step (from 0) trusts nothing.
pub async fn verify_range(
    app: &App,
    viewer: &Viewer,
    after_seq: i64,
    limit: i64,
) -> Result<RangeReport, Error> {
    viewer.require_admin()?;
    if !(1..=MAX_RANGE).contains(&limit) {
        return Err(Error::bad_input(
            "limit",
            format!("limit must be between 1 and {MAX_RANGE}"),
        ));
    }
    let mut conn = app.db.get().await?;
    let (head_seq, head_hash) = queries::head(&mut conn).await?;
    if !(0..=head_seq).contains(&after_seq) {
        return Err(Error::bad_input(
            "afterSeq",
            format!("afterSeq must be between 0 and the head's position ({head_seq})"),
        ));
    }
    let start_hash = match after_seq {
        0 => String::new(),
        seq => queries::chained_after(&mut conn, seq - 1, seq, 1)
            .await?
            .into_iter()
            .next()
            .and_then(|row| row.hash)
            .unwrap_or_default(),
    };
    let walked = walk(&mut conn, (after_seq, start_hash), head_seq, Some(limit)).await?;
    // Ended before its end (rows missing) or at the head: the head must agree.
    let end = head_seq.min(after_seq.saturating_add(limit));
    let broken = walked.broken.clone().or_else(|| {
        (walked.last_seq < end || walked.last_seq == head_seq)
            .then(|| check_head(&walked, head_seq, &head_hash))
            .flatten()
    });
    Ok(RangeReport {
        after_seq,
        last_seq: walked.last_seq,
        head_seq,
        broken,
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
