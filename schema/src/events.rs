//! Events: every state change the outside cares about, fanned out to subscribers.
//!
//! In-process, a bounded `tokio::sync::broadcast`: a subscriber that falls behind is told how
//! many events it missed (`LAGGED`) and never blocks producers. With PostgreSQL each event is also
//! sent with `pg_notify` on one channel, tagged with this instance's id; every instance keeps one
//! dedicated LISTEN connection (in the server) and re-broadcasts the events of the others through
//! [`EventBus::receive_remote`]. Events carry ids, not state: subscribers read the current state,
//! so delivery is at most once, and a client refetches after it (re)subscribes.

use std::sync::Arc;

use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::db::{DbPool, db_run};

/// The PostgreSQL channel events travel on.
pub const CHANNEL: &str = "cloudbase_events";

/// Something that happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A call started or finished.
    AiCallUpdated {
        /// The call.
        call_id: String,
        /// Whose.
        user_id: String,
        /// Provider instance.
        provider: String,
        /// Model.
        model: String,
    },
    /// A user's spend changed (a call settled).
    UsageUpdated {
        /// Whose.
        user_id: String,
    },
    /// A budget crossed a threshold (once per period).
    BudgetAlert {
        /// The budget.
        budget_id: String,
        /// Its user; `None` for a global budget.
        user_id: Option<String>,
        /// The threshold crossed, in percent.
        threshold: i64,
        /// How much of the limit is used, in percent.
        percent_used: i64,
    },
    /// A plugin library or instance changed status.
    PluginStatusChanged {
        /// Plugin name.
        name: String,
        /// Instance, if any.
        instance: Option<String>,
        /// `LOADED`, `FAILED` or `DISABLED`.
        status: String,
    },
    /// A batch of system log entries was stored (one event per batch, so a log flood never
    /// floods the bus).
    LogsAppended {
        /// The batch (`system_logs.batch_id`).
        batch_id: String,
    },
    /// A user's access may have changed: a session ended (logout, revocation, password change),
    /// the account was disabled or enabled, or its role changed. Open WebSockets of the user
    /// check their credential again and close if it no longer holds as it did.
    AccessChanged {
        /// Whose.
        user_id: String,
    },
    /// An alert rule started or stopped firing, and its deliveries were queued.
    AlertFired {
        /// The alert.
        alert_id: String,
        /// The rule's owner, for a user's own rule; `None` for an admin rule.
        owner_id: Option<String>,
    },
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    origin: String,
    event: Event,
}

/// Publishes events to local subscribers and, with PostgreSQL, to the other instances.
pub struct EventBus {
    local: broadcast::Sender<Arc<Event>>,
    origin: String,
    postgres: Option<DbPool>,
}

impl EventBus {
    /// A bus whose subscribers may fall `capacity` events behind; `postgres` (a pool on
    /// PostgreSQL) also fans events out to other instances.
    pub fn new(capacity: usize, postgres: Option<DbPool>) -> Self {
        let (local, _) = broadcast::channel(capacity.max(16));
        Self {
            local,
            origin: uuid::Uuid::now_v7().to_string(),
            postgres,
        }
    }

    /// This instance's id (events it sent come back through LISTEN and are skipped).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Delivers `event` to local subscribers now, and to other instances through `pg_notify`
    /// (in the background: a slow notify never holds up the caller).
    pub fn publish(&self, event: Event) {
        if let Some(pool) = &self.postgres {
            let payload = serde_json::to_string(&Envelope {
                origin: self.origin.clone(),
                event: event.clone(),
            });
            let pool = pool.clone();
            // A stored warning about a log batch's notify would make another batch, and so on:
            // those are logged under the log writer's own target, which is never stored.
            let about_logs = matches!(event, Event::LogsAppended { .. });
            if let (Ok(payload), Ok(runtime)) = (payload, tokio::runtime::Handle::try_current()) {
                runtime.spawn(async move {
                    match notify(&pool, &payload).await {
                        Ok(()) => {}
                        Err(e) if about_logs => tracing::warn!(
                            target: "cloudbase::logs",
                            error = %e, "pg_notify failed; other instances miss one log batch"
                        ),
                        Err(e) => tracing::warn!(
                            error = %e, "pg_notify failed; other instances miss one event"
                        ),
                    }
                });
            }
        }
        // No subscriber is not an error.
        let _ = self.local.send(Arc::new(event));
    }

    /// Re-broadcasts an event another instance sent; skips this instance's own.
    pub fn receive_remote(&self, payload: &str) {
        match serde_json::from_str::<Envelope>(payload) {
            Ok(envelope) if envelope.origin != self.origin => {
                let _ = self.local.send(Arc::new(envelope.event));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "an event from another instance did not parse"),
        }
    }

    /// A new subscription to every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.local.subscribe()
    }
}

async fn notify(pool: &DbPool, payload: &str) -> Result<(), crate::Error> {
    let mut conn = pool.get().await?;
    db_run!(&mut conn, |c| {
        diesel::sql_query("SELECT pg_notify($1, $2)")
            .bind::<Text, _>(CHANNEL)
            .bind::<Text, _>(payload)
            .execute(c)
            .await
    })?;
    Ok(())
}
