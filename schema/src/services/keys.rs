//! Every instance keeps its keys true: on `SigningKeysChanged` it reloads its signing keys, on
//! `MasterKeyChanged` it takes the new master key (reading its key source again) and moves its
//! rows over; and every [`RELOAD_EVERY`] it does both anyway, picking up keys added to a key
//! file (an instance on SQLite hears nothing
//! from a CLI command, and a missed notification must not leave a stale key for long), and
//! deletes the signing keys whose time is over.

use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;

use super::sealing::{MasterKey, reseal};
use super::{App, signing};
use crate::Error;
use crate::db::keys as queries;
use crate::events::Event;

/// How often keys are reloaded without being told: well under [`signing::PUBLISH_AHEAD`].
pub const RELOAD_EVERY: std::time::Duration = std::time::Duration::from_secs(20);

/// Reads the master keys again (the key file may have gained one).
pub type MasterKeySource = Arc<dyn Fn() -> Result<Vec<MasterKey>, String> + Send + Sync>;

/// Runs until the bus closes.
pub async fn watch(app: Arc<App>, source: MasterKeySource) {
    let mut events = app.events.subscribe();
    let mut tick = tokio::time::interval(RELOAD_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        let (signing, master) = tokio::select! {
            event = events.recv() => match event {
                Ok(e) => (*e == Event::SigningKeysChanged, *e == Event::MasterKeyChanged),
                Err(RecvError::Lagged(_)) => (true, true),
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                if let Err(e) = signing::delete_retired(&app).await {
                    tracing::warn!(error = %e, "deleting retired signing keys failed");
                }
                (true, true)
            }
        };
        if master && let Err(e) = take_master(&app, &source).await {
            tracing::error!(error = %e, "taking the new master key failed");
        }
        if signing && let Err(e) = signing::reload(&app).await {
            tracing::error!(error = %e, "reloading the signing keys failed");
        }
    }
}

/// Takes the master key the database names and any key the source gained (a key file written
/// by `keys rotate-master`); when the master key changed, moves this database's rows under it.
pub async fn take_master(app: &App, source: &MasterKeySource) -> Result<(), Error> {
    let active = {
        let mut conn = app.db.get().await?;
        queries::active_master(&mut conn).await?
    };
    let Some(active) = active else {
        return Ok(());
    };
    let keys = source().map_err(Error::Internal)?;
    let moved = active != app.sealer.active_id();
    if !moved && keys.iter().all(|k| app.sealer.has(k.id())) {
        return Ok(());
    }
    app.sealer.replace(&keys, &active).map_err(|e| {
        Error::Internal(format!(
            "{e}; this instance keeps sealing under {} (readable by every instance that still \
             has that key): give it the new key",
            app.sealer.active_id()
        ))
    })?;
    if moved {
        tracing::info!(master_key.id = %active, "now sealing under a new master key");
        reseal::run(app).await?;
    }
    Ok(())
}

/// Makes the first of `keys` the master key new values are sealed with, tells every instance,
/// and moves this database's rows under it. Refused if it already is.
pub async fn rotate_master(app: &App, keys: &[MasterKey]) -> Result<reseal::Resealed, Error> {
    let Some(target) = keys.first() else {
        return Err(Error::bad_input(
            "master_key",
            "no master key is configured",
        ));
    };
    let from = app.sealer.active_id();
    if target.id() == from {
        return Err(Error::Conflict(format!(
            "master key {from} already seals new values; put the new key first"
        )));
    }
    app.sealer.replace(keys, &from).map_err(Error::Internal)?;
    let now = app.now();
    let mut conn = app.db.get().await?;
    let changed = conn
        .transaction(async |tx| {
            let n = queries::set_master(tx, &from, target.id(), now).await?;
            if n == 1 {
                app.events
                    .tell_others_in(tx, &Event::MasterKeyChanged)
                    .await?;
            }
            Ok(n)
        })
        .await?;
    drop(conn);
    if changed == 0 {
        return Err(Error::Conflict(
            "the master key changed meanwhile; run the command again".into(),
        ));
    }
    app.sealer
        .replace(keys, target.id())
        .map_err(Error::Internal)?;
    app.events.told(Event::MasterKeyChanged).await;
    tracing::info!(master_key.from = %from, master_key.to = %target.id(), "master key rotated");
    // A value changed while it was moved is taken by another pass (a few at most).
    let mut done = reseal::run(app).await?;
    for _ in 0..3 {
        if done.skipped == 0 {
            break;
        }
        let again = reseal::run(app).await?;
        done.rewritten += again.rewritten;
        done.skipped = again.skipped;
        done.failed = again.failed;
    }
    Ok(done)
}
