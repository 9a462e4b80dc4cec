//! Moving every sealed column onto the active master key: after a rotation, and for values
//! written before sealing existed. Online: batches of [`BATCH`] rows, each row rewritten only if
//! it still holds what was read (a value changed meanwhile is left to the next pass), one short
//! write at a time so the server's own writes go between them.

use super::{Column, Sealer};
use crate::Error;
use crate::db::keys as queries;
use crate::services::App;

/// Rows read and rewritten per batch.
pub const BATCH: i64 = 200;

/// What a pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Resealed {
    /// Values rewritten under the active key.
    pub rewritten: u64,
    /// Values that changed while they were being rewritten (the next pass takes them).
    pub skipped: u64,
    /// Values that did not open (a key not configured, an edited envelope): left as they are,
    /// each logged.
    pub failed: u64,
}

/// At start: [`run`], unless a complete pass already left every value under the key in use.
pub async fn at_start(app: &App) -> Result<Resealed, Error> {
    let active = app.sealer.active_id();
    let through = {
        let mut conn = app.db.get().await?;
        queries::sealed_through(&mut conn).await?
    };
    if through.as_deref() == Some(active.as_str()) {
        return Ok(Resealed::default());
    }
    run(app).await
}

/// Reseals every column under the active key, batch by batch. A value that does not open (a key
/// not configured, a corrupt envelope) is logged and left as it is; the pass goes on. A pass that
/// left nothing behind says so in `encryption_state`, and later starts skip it.
pub async fn run(app: &App) -> Result<Resealed, Error> {
    let active = app.sealer.active_id();
    let mut done = Resealed::default();
    for column in Column::ALL {
        let part = column_pass(app, column).await?;
        done.rewritten += part.rewritten;
        done.skipped += part.skipped;
        done.failed += part.failed;
    }
    if done.skipped == 0 && done.failed == 0 {
        let mut conn = app.db.get().await?;
        conn.write(async |c| Ok(queries::set_sealed_through(c, &active).await?))
            .await?;
    }
    if done.rewritten + done.failed > 0 {
        tracing::info!(
            sealing.rewritten = done.rewritten,
            sealing.skipped = done.skipped,
            sealing.failed = done.failed,
            master_key.id = %app.sealer.active_id(),
            "sealed values moved to the active master key"
        );
    }
    Ok(done)
}

async fn column_pass(app: &App, column: Column) -> Result<Resealed, Error> {
    let mut done = Resealed::default();
    let mut after = String::new();
    loop {
        let active = app.sealer.active_id();
        let page = {
            let mut conn = app.db.get().await?;
            queries::unsealed_page(&mut conn, column, &active, &after, BATCH).await?
        };
        let Some(last) = page.last() else {
            return Ok(done);
        };
        after = last.id.clone();
        let mut rewrites = Vec::with_capacity(page.len());
        for row in page {
            match reseal_one(&app.sealer, column, &row.id, &row.value) {
                Ok(new) => rewrites.push((row.id, row.value, new)),
                Err(e) => {
                    done.failed += 1;
                    tracing::error!(column = column.label(), row = %row.id, error = %e, "a sealed value did not open; left as it is");
                }
            }
        }
        let mut conn = app.db.get().await?;
        let changed = conn
            .transaction(async |tx| {
                let mut n = 0;
                for (id, old, new) in &rewrites {
                    n += queries::replace_value(tx, column, id, old, new).await?;
                }
                Ok(n)
            })
            .await?;
        done.rewritten += changed as u64;
        done.skipped += (rewrites.len() - changed) as u64;
        drop(conn);
        tokio::task::yield_now().await;
    }
}

/// The value of one row sealed under the active key.
fn reseal_one(sealer: &Sealer, column: Column, id: &str, stored: &str) -> Result<String, Error> {
    let open_err = |e: super::OpenError| Error::Internal(e.to_string());
    if column == Column::PromptLog {
        // A JSON string holding an envelope, or (from before sealing) the log itself.
        let value: serde_json::Value = serde_json::from_str(stored)
            .map_err(|e| Error::Internal(format!("ai_calls.prompt_log of {id}: {e}")))?;
        let plain = match value {
            serde_json::Value::String(s) if Sealer::key_of(&s).is_some() => {
                sealer.open(column, id, s).map_err(open_err)?
            }
            other => other.to_string(),
        };
        let sealed = serde_json::Value::String(sealer.seal(column, id, &plain));
        return Ok(sealed.to_string());
    }
    let plain = sealer
        .open(column, id, stored.to_owned())
        .map_err(open_err)?;
    Ok(sealer.seal(column, id, &plain))
}

/// How many values of each column each master key sealed (`None`: not sealed yet).
pub async fn census(app: &App) -> Result<Vec<(Column, Option<String>, i64)>, Error> {
    let mut out = Vec::new();
    for column in Column::ALL {
        let mut conn = app.db.get().await?;
        for (key, n) in queries::count_by_key(&mut conn, column).await? {
            out.push((column, key, n));
        }
    }
    Ok(out)
}
