//! Events: every state change the outside cares about, fanned out to subscribers.
//!
//! In-process, a bounded `tokio::sync::broadcast`: a subscriber that falls behind is told how
//! many events it missed (`LAGGED`) and never blocks producers. With PostgreSQL each event is also
//! sent with `pg_notify` on one channel, tagged with this instance's id; every instance keeps one
//! dedicated LISTEN connection (in the server) and re-broadcasts the events of the others through
//! [`EventBus::receive_remote`]. One notifier task per instance sends them, in order, as many as
//! are waiting in one statement: a call's events cost one round trip at most, and under load a
//! batch of many calls' events costs one. Events carry ids, not state: subscribers read the current state,
//! so delivery is at most once, and a client refetches after it (re)subscribes.
//!
//! A change of access is told to the other instances differently: inside the transaction that
//! makes it ([`EventBus::tell_others_in`]), so that it reaches them if and only if it commits, in
//! commit order; with the heartbeats of [`Horizon`] that keeps their access caches exact.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use diesel::QueryResult;
use diesel::pg::Pg;
use diesel::query_builder::{QueryFragment, QueryId};
use diesel::sql_types::{Array, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use crate::db::DbConn;
use crate::db::fixed::fixed_shape;
use crate::db::models::AiCall;
use crate::services::access_cache::{AccessCache, BEAT_EVERY, HORIZON, Horizon};
use crate::services::call_reads::CallReads;

/// The PostgreSQL channel events travel on.
pub const CHANNEL: &str = "cloudbase_events";

/// The `application_name` of notifier connections (visible in `pg_stat_activity`).
pub const NOTIFIER_NAME: &str = "cloudbase-notifier";

/// `url` with `application_name` set to `name`, for a connection of its own.
pub fn named_connection(url: &str, name: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}application_name={name}")
}

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
        /// Where it stands now.
        status: crate::domain::PluginStatus,
        /// For a provider instance whose circuit breaker changed: where the breaker stands now.
        #[serde(default)]
        breaker: Option<crate::domain::BreakerState>,
        /// The server instance (`host:port`) the change happened on, when it is that instance's
        /// own (a breaker, a reload).
        #[serde(default)]
        node: Option<String>,
        /// Why, in words (the failure that opened a breaker, why a reload failed).
        #[serde(default)]
        reason: Option<String>,
        /// The version it is on now, if known.
        #[serde(default)]
        version: Option<String>,
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
    /// A user's rate-limit overrides changed.
    LimitsChanged {
        /// Whose.
        user_id: String,
    },
    /// A price was added.
    PricesChanged,
    /// A signing key was added or retired: every instance reloads its keys.
    SigningKeysChanged,
    /// Another master key now seals new values: every instance takes it (and moves its rows).
    MasterKeyChanged,
    /// A budget was created, changed, deleted, or started a new period.
    BudgetsChanged,
    /// An alert rule started or stopped firing, and its deliveries were queued.
    AlertFired {
        /// The alert.
        alert_id: String,
        /// The rule's owner, for a user's own rule; `None` for an admin rule.
        owner_id: Option<String>,
    },
}

impl Event {
    /// A call record was written (opened or finished).
    pub fn call_updated(call: &crate::db::models::AiCall) -> Self {
        Self::AiCallUpdated {
            call_id: call.id.clone(),
            user_id: call.user_id.clone(),
            provider: call.provider.clone(),
            model: call.model.clone(),
        }
    }
}

/// An event as it goes to the other instances: written from borrowed parts (`Envelope<&str,
/// &Event>`, nothing cloned to be written), read into owned ones.
#[derive(Serialize, Deserialize)]
struct Envelope<O = String, E = Event> {
    origin: O,
    /// This instance's count: PostgreSQL folds identical payloads sent in one transaction into
    /// one, and two events of one call can be identical.
    #[serde(default)]
    seq: u64,
    event: E,
}

/// Events waiting for the notifier at most; past that, other instances miss events (logged).
const NOTIFY_QUEUE: usize = 8192;
/// Events sent in one statement at most.
const NOTIFY_BATCH: usize = 128;
/// How long the notifier gathers events after the first of a batch before it sends them. A call
/// publishes twice within about a millisecond (`PENDING`, then finished): without the pause each
/// event would be a statement (and a commit in PostgreSQL) of its own at low load. Small beside
/// what other instances wait for anyway (the access cache's [`HORIZON`], the beats' interval).
const NOTIFY_GATHER: std::time::Duration = std::time::Duration::from_millis(2);

/// Publishes events to local subscribers and, with PostgreSQL, to the other instances.
pub struct EventBus {
    local: broadcast::Sender<Arc<Event>>,
    origin: String,
    seq: AtomicU64,
    /// The notifier's queue, with PostgreSQL.
    remote: Option<mpsc::Sender<String>>,
    /// With PostgreSQL: when the access cache may be trusted (this instance's heartbeats).
    horizon: Option<Arc<Horizon>>,
    /// Live sessions, forgotten here on every `AccessChanged` before anyone else hears of it.
    access: AccessCache,
    /// What every call reads and rarely changes, forgotten here on every change.
    call_reads: CallReads,
    /// What subscribers read for an event, read once for all of them.
    reads: SharedReads,
}

/// A call record as read for one event: `None` if it could not be read.
pub type SharedRecord = Arc<tokio::sync::OnceCell<Option<Arc<AiCall>>>>;

/// One read per event, whoever many subscribers want it: each event is delivered to every
/// subscriber as the same `Arc`, which keys its cell here. Cells of events no receiver holds any
/// more are dropped as new ones come.
#[derive(Default)]
pub struct SharedReads {
    cells: Mutex<HashMap<usize, (Weak<Event>, SharedRecord)>>,
}

/// Cells kept before the dropped events' ones are cleared out (the bus holds 1,024 at most).
const SHARED_READS: usize = 4096;

impl SharedReads {
    /// The cell of `event`, the same for every subscriber that received it.
    pub fn cell(&self, event: &Arc<Event>) -> SharedRecord {
        let key = Arc::as_ptr(event) as usize;
        let mut cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((held, cell)) = cells.get(&key)
            && held.upgrade().is_some_and(|e| Arc::ptr_eq(&e, event))
        {
            return Arc::clone(cell);
        }
        if cells.len() >= SHARED_READS {
            cells.retain(|_, (held, _)| held.strong_count() > 0);
        }
        let cell = SharedRecord::default();
        cells.insert(key, (Arc::downgrade(event), Arc::clone(&cell)));
        cell
    }
}

impl EventBus {
    /// A bus whose subscribers may fall `capacity` events behind; `postgres` (the database's
    /// URL, on PostgreSQL) also fans events out to other instances.
    pub fn new(capacity: usize, postgres: Option<String>) -> Self {
        let (local, _) = broadcast::channel(capacity.max(16));
        let origin = uuid::Uuid::now_v7().to_string();
        let horizon = Arc::new(Horizon::default());
        let remote = postgres.and_then(|url| {
            let runtime = tokio::runtime::Handle::try_current().ok()?;
            let (tx, rx) = mpsc::channel(NOTIFY_QUEUE);
            runtime.spawn(notifier(named_connection(&url, NOTIFIER_NAME), rx));
            runtime.spawn(heartbeats(
                Arc::clone(&horizon),
                tx.downgrade(),
                origin.clone(),
            ));
            Some(tx)
        });
        Self {
            local,
            origin,
            seq: AtomicU64::new(0),
            horizon: remote.is_some().then_some(horizon),
            remote,
            access: AccessCache::new(std::time::Duration::ZERO),
            call_reads: CallReads::default(),
            reads: SharedReads::default(),
        }
    }

    /// Reads shared by the subscribers of one event.
    pub fn shared_reads(&self) -> &SharedReads {
        &self.reads
    }

    /// The same bus, keeping live sessions for `ttl` (see [`AccessCache`]).
    pub fn with_session_cache(mut self, ttl: std::time::Duration) -> Self {
        self.access = match &self.horizon {
            Some(h) => AccessCache::new(ttl).across_instances(Arc::clone(h)),
            None => AccessCache::new(ttl),
        };
        self
    }

    /// The cache of live sessions that this bus keeps true.
    pub fn access(&self) -> &AccessCache {
        &self.access
    }

    /// The limits, prices and budgets every call reads, that this bus keeps true.
    pub fn call_reads(&self) -> &CallReads {
        &self.call_reads
    }

    /// Applies an event to the caches this bus keeps true; before it reaches any subscriber.
    fn invalidate(&self, event: &Event) {
        match event {
            Event::AccessChanged { user_id } => self.access.forget_user(user_id),
            Event::LimitsChanged { user_id } => {
                self.call_reads.limits.forget_where(|k, _| k == user_id);
            }
            Event::PricesChanged => self.call_reads.prices.clear(),
            Event::BudgetsChanged => self.call_reads.budgets.clear(),
            _ => {}
        }
    }

    /// Forgets everything the caches keep: the LISTEN connection was (re)established, and events
    /// sent while it was down were missed.
    pub fn resync(&self) {
        if let Some(h) = &self.horizon {
            h.reset();
        }
        self.access.clear();
        self.call_reads.clear();
    }

    /// This instance's id (events it sent come back through LISTEN and are skipped).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Delivers `event` to local subscribers now, and to other instances through `pg_notify`
    /// (in the background: a slow notify never holds up the caller).
    pub fn publish(&self, event: Event) {
        self.invalidate(&event);
        if let Some(remote) = &self.remote
            && let Ok(payload) = self.envelope(&event)
            && remote.try_send(payload).is_err()
        {
            // Under the log writer's own target, which is never stored: a stored warning would
            // be one more event for the full queue.
            tracing::warn!(
                target: "cloudbase::logs",
                "the pg_notify queue is full; other instances miss one event"
            );
        }
        // No subscriber is not an error.
        let _ = self.local.send(Arc::new(event));
    }

    fn envelope(&self, event: &Event) -> serde_json::Result<String> {
        serde_json::to_string(&Envelope {
            origin: self.origin.as_str(),
            seq: self.seq.fetch_add(1, Ordering::Relaxed),
            event,
        })
    }

    /// Tells the other instances of `event` from inside `tx`, the transaction that makes the
    /// change (with PostgreSQL; there are no others on SQLite): they hear of it if and only if
    /// it commits, before anything that commits after it. After the commit, call
    /// [`EventBus::told`].
    pub async fn tell_others_in(&self, tx: &mut DbConn, event: &Event) -> Result<(), crate::Error> {
        let (Some(_), DbConn::Pg(conn)) = (&self.remote, tx) else {
            return Ok(());
        };
        let payload = self
            .envelope(event)
            .map_err(|e| crate::Error::Internal(e.to_string()))?;
        fixed_shape!(
            diesel::sql_query("SELECT pg_notify($1, $2)")
                .bind::<Text, _>(CHANNEL)
                .bind::<Text, _>(payload),
        )
        .execute(&mut **conn)
        .await?;
        Ok(())
    }

    /// After the commit of a transaction that told the others of `event`: publishes it on this
    /// instance (its caches, then its subscribers), then, with other instances trusting their
    /// access caches, waits out the [`HORIZON`], after which none of them still trusts what it
    /// cached before the commit (see [`Horizon`]).
    pub async fn told(&self, event: Event) {
        self.invalidate(&event);
        let _ = self.local.send(Arc::new(event));
        if self.horizon.is_some() && self.access.enabled() {
            tokio::time::sleep(HORIZON).await;
        }
    }

    /// Re-broadcasts an event another instance sent; skips this instance's own. A heartbeat of
    /// this instance's own moves its [`Horizon`].
    pub fn receive_remote(&self, payload: &str) {
        if let Some(beat) = payload.strip_prefix(BEAT) {
            if let (Some(h), Some((origin, n))) = (&self.horizon, beat.rsplit_once(':'))
                && origin == self.origin
                && let Ok(n) = n.parse()
            {
                h.heard(n);
            }
            return;
        }
        if self.is_own(payload) {
            return;
        }
        match serde_json::from_str::<Envelope>(payload) {
            Ok(envelope) if envelope.origin != self.origin => {
                self.invalidate(&envelope.event);
                let _ = self.local.send(Arc::new(envelope.event));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "an event from another instance did not parse"),
        }
    }

    /// Whether `payload` is an envelope this instance wrote, told by its first bytes: every
    /// event this instance sends comes back through its own LISTEN, and reading one whole (the
    /// event parsed, to be dropped) cost about 4 k instructions, three times a call
    /// (`bench/RESULTS.md`, "2026-12-05, afternoon"). [`Envelope`] is written with its `origin`
    /// first, and an origin (a UUID) has nothing to escape; a payload written otherwise is read
    /// whole and its origin compared there.
    fn is_own(&self, payload: &str) -> bool {
        payload
            .strip_prefix(r#"{"origin":""#)
            .and_then(|rest| rest.strip_prefix(self.origin.as_str()))
            .is_some_and(|rest| rest.starts_with(r#"","#))
    }

    /// A new subscription to every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.local.subscribe()
    }
}

/// How a heartbeat's payload starts: `beat:{origin}:{number}`.
const BEAT: &str = "beat:";

/// Sends this instance's heartbeats through the notifier while its access cache is in use (see
/// [`Horizon`]), until the bus is dropped.
async fn heartbeats(horizon: Arc<Horizon>, queue: mpsc::WeakSender<String>, origin: String) {
    loop {
        if !horizon.in_use() {
            horizon.wanted(std::time::Duration::from_secs(1)).await;
        }
        let Some(queue) = queue.upgrade() else {
            return;
        };
        if horizon.in_use() {
            let n = horizon.beat();
            // A full queue loses this one; trust runs out sooner, nothing worse.
            let _ = queue.try_send(format!("{BEAT}{origin}:{n}"));
            drop(queue);
            tokio::time::sleep(BEAT_EVERY).await;
        }
    }
}

/// Sends what is queued, oldest first, up to [`NOTIFY_BATCH`] events a statement (those that come
/// within [`NOTIFY_GATHER`] of the first go with it), on a connection of its own, until the bus
/// is dropped. A batch that fails is sent once more on a new connection (the old one may have
/// been closed while idle; an event sent twice is harmless, since subscribers read the state it
/// names), then given up (delivery is at most once).
async fn notifier(url: String, mut queue: mpsc::Receiver<String>) {
    let mut batch = Vec::with_capacity(NOTIFY_BATCH);
    let mut conn: Option<AsyncPgConnection> = None;
    while queue.recv_many(&mut batch, NOTIFY_BATCH).await > 0 {
        if batch.len() < NOTIFY_BATCH {
            tokio::time::sleep(NOTIFY_GATHER).await;
            while batch.len() < NOTIFY_BATCH
                && let Ok(payload) = queue.try_recv()
            {
                batch.push(payload);
            }
        }
        let mut failure = None;
        for _ in 0..2 {
            if conn.is_none() {
                match AsyncPgConnection::establish(&url).await {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        failure = Some(e.to_string());
                        continue;
                    }
                }
            }
            if let Some(c) = conn.as_mut() {
                match notify(c, &batch).await {
                    Ok(()) => {
                        failure = None;
                        break;
                    }
                    Err(e) => {
                        conn = None;
                        failure = Some(e.to_string());
                    }
                }
            }
        }
        if let Some(e) = failure {
            // Not stored (see `publish`): a stored warning would be one more event to send.
            tracing::warn!(
                target: "cloudbase::logs",
                error = %e, events = batch.len(), "pg_notify failed; other instances miss these events"
            );
        }
        batch.clear();
    }
}

/// [`notify`]'s statement, prepared once on the notifier's connection: `sql_query` alone is
/// prepared again on every run, a round trip more for every batch.
fn notify_statement(payloads: &[String]) -> impl QueryFragment<Pg> + QueryId + Send + '_ {
    fixed_shape!(
        diesel::sql_query(
            "SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS t(p, n) ORDER BY n",
        )
        .bind::<Text, _>(CHANNEL)
        .bind::<Array<Text>, _>(payloads),
    )
}

/// Sends `payloads` in one statement.
async fn notify(conn: &mut AsyncPgConnection, payloads: &[String]) -> QueryResult<()> {
    notify_statement(payloads).execute(conn).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use diesel::pg::Pg;

    use super::{Envelope, Event, EventBus, notify_statement};
    use crate::db::fixed::kept_prepared;

    /// What `bus` re-broadcasts of `payload`, as if it came through LISTEN.
    fn heard(bus: &EventBus, payload: &str) -> Option<Event> {
        let mut rx = bus.subscribe();
        bus.receive_remote(payload);
        rx.try_recv().ok().map(|e| (*e).clone())
    }

    #[test]
    fn an_instance_skips_its_own_events_by_their_first_bytes_and_only_its_own() {
        let bus = EventBus::new(16, None);
        let event = Event::UsageUpdated {
            user_id: "u1".into(),
        };
        let own = bus.envelope(&event).unwrap();
        assert!(bus.is_own(&own), "{own}");
        assert_eq!(heard(&bus, &own), None);
        // Written with another field order, it is read whole and still skipped.
        let reordered = format!(
            r#"{{"seq":7,"event":{},"origin":"{}"}}"#,
            serde_json::to_string(&event).unwrap(),
            bus.origin()
        );
        assert!(!bus.is_own(&reordered));
        assert_eq!(heard(&bus, &reordered), None);
        // Another instance's, even one whose origin starts with this one's, is delivered.
        for origin in ["0190-other".to_owned(), format!("{}0", bus.origin())] {
            let theirs = serde_json::to_string(&Envelope {
                origin: origin.as_str(),
                seq: 1,
                event: &event,
            })
            .unwrap();
            assert!(!bus.is_own(&theirs), "{theirs}");
            assert_eq!(heard(&bus, &theirs), Some(event.clone()), "{theirs}");
        }
    }

    #[test]
    fn the_notifiers_statement_stays_prepared() {
        let payloads = vec!["a".to_owned(), "b".to_owned()];
        assert!(kept_prepared(&notify_statement(&payloads), &Pg));
    }
}
