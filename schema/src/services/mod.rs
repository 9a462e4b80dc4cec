//! The workflows: every function with side effects lives in exactly one place here.
//!
//! - [`admission`]: at most so many AI calls in flight per instance, refused fast past it.
//! - [`breakers`]: a circuit breaker per provider instance, so a provider that is down is failed
//!   over at once instead of waited on.
//! - [`chat`]: the AI-call workflow (admit, validate, record, call with fallbacks, price, settle,
//!   publish), plain and streamed, as a folder of small parts.
//! - [`conversations`], [`ai_calls`], [`pricing`]: history, call records, prices and costs.
//! - [`budgets`]: reservations at admission, settlement, periods, the sweeper.
//! - [`maintenance`]: the background sweeper and retention job.
//! - [`logs`]: system log entries from `tracing`, their batched writer, queries and retention.
//! - [`alerts`]: alert rules, their evaluation under a lease, and deliveries with retries.
//! - [`stats`]: `systemStats` from the call records.
//! - [`audit`]: the audit trail of mutations, its hash chain and the chainer that links it.
//! - [`rate_limits`]: requests and tokens per minute, registrations per address, in the database.
//! - [`login_throttle`]: failed logins per account, address and pair, with a backoff, that an
//!   attacker cannot turn against the owner.
//! - [`registration`]: who may register (open, invite, closed) and a new user's budget;
//!   [`invites`]: the invite codes.
//! - [`usage`]: reports and monthly statements from the rollups.
//! - [`cache`]: the opt-in, per-user, exact-match response cache.
//! - [`access_cache`]: live sessions trusted for a short while, forgotten at once on any access change.
//! - [`call_reads`]: what every AI call reads and an admin rarely changes (limits, prices, budgets),
//!   read once and forgotten at once on any change; [`memo`]: the memo both caches are made of.
//! - [`api_keys`]: API keys (create, change, revoke, rotate) and what a key grants.
//! - [`auth`]: register, login, refresh-token rotation, logout, password change, and the check
//!   that turns an access token into a [`Viewer`].
//! - [`users`]: profiles and the admin's user management.
//! - [`passwords`]: argon2id hashing off the async threads.
//! - [`plugins`]: the plugin list, callable models, test notifications.
//! - [`tokens`]: JWT access tokens and opaque refresh tokens; [`signing`]: the keys that sign
//!   them, rotated; [`sealing`]: encryption at rest of sensitive columns under a master key;
//!   [`keys`]: every instance keeping both true.
//! - [`validate`]: input rules shared by the services (email, password, names, URLs, paging).

pub mod access_cache;
pub mod admission;
pub mod ai_calls;
pub mod alerts;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod breakers;
pub mod budgets;
pub mod cache;
pub mod call_reads;
pub mod chat;
pub mod conversations;
pub mod invites;
pub mod keys;
pub mod login_throttle;
pub mod logs;
pub mod maintenance;
pub mod memo;
pub mod passwords;
pub mod plugins;
pub mod pricing;
pub mod rate_limits;
pub mod registration;
pub mod sealing;
pub mod signing;
pub mod stats;
pub mod tokens;
pub mod usage;
pub mod users;
pub mod validate;

use std::sync::Arc;

use crate::clock::Clock;
use crate::db::DbPool;
use crate::ports::PluginHost;

pub use auth::{Auth, RequestMeta, Role, Viewer};
pub use tokens::TokenSettings;

/// Everything start-up decides that an [`App`] is made of; [`App::new`] is the one way in.
pub struct AppParts {
    /// The database.
    pub db: DbPool,
    /// Signing keys and lifetimes of tokens.
    pub tokens: TokenSettings,
    /// Seals and opens the sensitive columns.
    pub sealer: Arc<sealing::Sealer>,
    /// Two-step sign-in and password reset by email.
    pub account: auth::AccountSettings,
    /// Where "now" comes from.
    pub clock: Arc<dyn Clock>,
    /// AI providers and notification channels.
    pub plugins: Arc<dyn PluginHost>,
    /// WeChat mini-program sign-in, when `[wechat]` has its app id and secret.
    pub wechat: Option<Arc<dyn crate::ports::WeChat>>,
    /// Chat defaults and switches.
    pub chat: chat::ChatSettings,
    /// The slots for AI calls in flight.
    pub admission: admission::Admission,
    /// Budget time zone and reservation lifetime.
    pub budgets: budgets::BudgetSettings,
    /// Default rate limits.
    pub rate_limits: rate_limits::RateLimitSettings,
    /// Who may register, and a new user's budget.
    pub registration: registration::RegistrationSettings,
    /// Where state changes are published.
    pub events: crate::events::EventBus,
    /// Where the `tracing` layer hands system log entries to their writer.
    pub logs: Arc<logs::LogSink>,
    /// The instance's metrics.
    pub metrics: crate::metrics::Metrics,
    /// Alert evaluation and delivery.
    pub alert_settings: alerts::AlertSettings,
    /// Where this instance runs (`host:port`).
    pub node: String,
}

/// Process-wide state shared by every request: built once at start-up from its [`AppParts`], and
/// handed to the schema with `.data(..)`. Nothing changes it afterwards. Its parts are read
/// through it (`app.db`, `app.chat`, ...).
pub struct App {
    parts: AppParts,
    /// Replies of providers that opted into caching.
    pub cache: cache::ResponseCache,
    /// When each session's and API key's use was last written.
    pub uses: auth::Uses,
    /// The providers' circuit breakers on this instance.
    pub breakers: breakers::Breakers,
    /// On PostgreSQL, the `PENDING` records of concurrent calls, written together.
    pub pendings: chat::pendings::Pendings,
    /// On PostgreSQL, concurrent calls' admissions under budgets, written together.
    pub admissions: chat::admissions::Admissions,
    /// On PostgreSQL, the finishes of concurrent calls, written together.
    pub finishes: chat::finishes::Finishes,
    passwords: passwords::Passwords,
}

impl std::ops::Deref for App {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.parts
    }
}

impl App {
    /// Wires the services together; the response cache, the breakers, the queues of `PENDING`
    /// records and of finishes and the password hasher start empty.
    pub fn new(parts: AppParts) -> Self {
        Self {
            breakers: breakers::Breakers::new(parts.chat.breaker.clone()),
            pendings: chat::pendings::Pendings::new(parts.db.clone()),
            admissions: chat::admissions::Admissions::new(parts.db.clone()),
            finishes: chat::finishes::Finishes::new(parts.db.clone()),
            parts,
            cache: cache::ResponseCache::default(),
            uses: auth::Uses::default(),
            passwords: passwords::Passwords::default(),
        }
    }

    /// The current time as the database stores it (UTC, microseconds).
    pub fn now(&self) -> chrono::NaiveDateTime {
        self.clock.now().naive_utc()
    }
}
