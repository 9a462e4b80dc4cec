//! The database layer: one pool over SQLite or PostgreSQL, the migrations, and the queries.
//!
//! Each query is written once inside [`db_run!`], which expands it once per backend, so PostgreSQL
//! stays fully async and SQLite runs on the blocking pool. Query functions take `&mut DbConn`, and
//! [`DbConn::transaction`] wraps any sequence of them in one write transaction.
//!
//! - [`held`]: at most one pooled connection per request at a time, checked.
//! - [`schema`]: the hand-written Diesel tables shared by both backends.
//! - [`models`]: every row struct (`User`) and insert struct (`NewUser<'a>`), by domain.
//! - [`call_path`]: SQLite statements of an AI call run inline, not on the blocking pool.
//! - [`writer`]: SQLite's writers in turn on one connection, sharing commits when they queue.
//! - [`checkpoint`]: SQLite's checkpoints in the writers' turn, not inside a call's commit.
//! - [`migrate`]: the embedded migrations of both backends, run at start.
//! - [`fixed`]: statements marked as having one shape, so both databases cache them.
//! - [`flight`]: a PostgreSQL transaction sent in one flight, `BEGIN` to `COMMIT`.
//! - [`finish_batch`]: PostgreSQL's finishes of concurrent calls as one statement and one commit.
//! - [`pending_batch`]: PostgreSQL's `PENDING` records of concurrent calls as one statement.
//! - [`admission_batch`]: PostgreSQL's admissions of concurrent calls under budgets as one flight.
//! - [`inventory`]: a PostgreSQL database's tables, row counts and schema version, in a snapshot
//!   `pg_dump` can share (what a backup records).
//! - [`users`], [`sessions`], [`mfa`], [`password_resets`], [`identities`], [`api_keys`],
//!   [`invites`], [`prices`], [`conversations`], [`ai_calls`], [`budgets`], [`rate_limits`],
//!   [`usage`], [`stats`], [`audit`], [`system_logs`], [`alerts`], [`deliveries`], [`leases`],
//!   [`keys`]:
//!   the query functions, returning `QueryResult`.

pub mod admission_batch;
pub mod ai_calls;
pub mod alerts;
pub mod api_keys;
pub mod audit;
pub mod budgets;
mod call_path;
pub mod checkpoint;
pub mod conversations;
pub mod deliveries;
pub mod finish_batch;
pub mod fixed;
mod flight;
pub mod held;
pub mod identities;
pub mod inventory;
pub mod invites;
pub mod keys;
pub mod leases;
pub mod mfa;
mod migrate;
pub mod models;
pub mod password_resets;
pub mod pending_batch;
pub mod prices;
pub mod rate_limits;
pub mod schema;
pub mod sessions;
pub mod stats;
pub mod system_logs;
pub mod usage;
pub mod users;
mod writer;

use std::path::Path;
use std::time::Duration;

use diesel::SqliteConnection;
use diesel_async::pooled_connection::deadpool::{Object, Pool, PoolError};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{
    AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection, TransactionManager,
};
use futures_util::FutureExt;

use crate::Error;

/// SQLite through diesel-async's blocking wrapper, on the [`Spawner`] below.
pub type SqliteConn = SyncConnectionWrapper<SqliteConnection, Spawner>;

pub use call_path::{Spawner, on_call_path};
pub use migrate::latest_version;
pub use writer::{Turn, WriteGate, WriterStats};

/// Set on every SQLite connection. `busy_timeout` must come before `journal_mode=WAL`. Commits
/// checkpoint by themselves only as a backstop ([`checkpoint`]); a log longer than 64 MiB is
/// cut back when it starts over.
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
     PRAGMA wal_autocheckpoint = 10000; PRAGMA journal_size_limit = 67108864;";

/// Which database a pool talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL, for production and several instances.
    Postgres,
    /// Embedded SQLite, the zero-setup default (one instance).
    Sqlite,
}

/// What the pool needs to know.
#[derive(Debug, Clone)]
pub struct DbConfig {
    /// `postgres://…` or `sqlite://path/to/file.db`.
    pub url: String,
    /// Upper bound of open connections.
    pub max_connections: usize,
    /// How long a request waits for a free connection before failing with `UNAVAILABLE`.
    pub acquire_timeout: Duration,
}

/// A pool of connections to one backend.
#[derive(Clone)]
pub enum DbPool {
    /// PostgreSQL through tokio-postgres.
    Pg(Pool<AsyncPgConnection>),
    /// SQLite in WAL mode, with the turn its writers take.
    Sqlite(Pool<SqliteConn>, WriteGate),
}

/// One checked-out connection, passed to the query functions.
#[expect(
    clippy::large_enum_variant,
    reason = "lives on the stack for one request; boxing would add an allocation per checkout"
)]
pub enum DbConn {
    /// A PostgreSQL connection.
    Pg(held::Held<Object<AsyncPgConnection>>),
    /// A SQLite connection, and its pool's writer turn.
    Sqlite(SqliteSlot, WriteGate),
}

/// A connection checked out of its pool on first use, for lookups most often answered from
/// memory: a call whose price and budgets are known takes none to open when it has none to write.
pub struct Lazy<'a> {
    pool: &'a DbPool,
    conn: Option<DbConn>,
}

impl Lazy<'_> {
    /// The connection, checked out now if it was not yet.
    pub async fn get(&mut self) -> Result<&mut DbConn, Error> {
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => self.pool.get().await?,
        };
        Ok(self.conn.insert(conn))
    }
}

/// Where a SQLite [`DbConn`]'s connection is: checked out of the pool, or, for the length of a
/// write, the writers' turn with the writer connection ([`WriteGate`]).
pub enum SqliteSlot {
    /// A pooled connection.
    Pooled(held::Held<Object<SqliteConn>>),
    /// The writer connection, in the writers' turn.
    Writer(Turn),
}

impl std::ops::Deref for SqliteSlot {
    type Target = SqliteConn;

    fn deref(&self) -> &SqliteConn {
        match self {
            SqliteSlot::Pooled(c) => c,
            SqliteSlot::Writer(turn) => &turn.conn,
        }
    }
}

impl std::ops::DerefMut for SqliteSlot {
    fn deref_mut(&mut self) -> &mut SqliteConn {
        match self {
            SqliteSlot::Pooled(c) => c,
            SqliteSlot::Writer(turn) => &mut turn.conn,
        }
    }
}

/// Failure to open the database at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL is neither `postgres://` nor `sqlite://`.
    #[error("database_url: expected `postgres://…` or `sqlite://path`, got `{0}`")]
    BadUrl(String),
    /// The pool could not be built or the first connection failed.
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(String),
}

impl Backend {
    /// The backend a URL names.
    pub fn of_url(url: &str) -> Result<Self, ConnectError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else {
            Err(ConnectError::BadUrl(url.to_owned()))
        }
    }
}

/// The file path in a `sqlite://path` or `sqlite:path` URL.
pub fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url)
}

impl DbPool {
    /// Opens the pool, runs pending migrations, and checks one connection.
    pub async fn connect_and_migrate(config: &DbConfig) -> Result<Self, ConnectError> {
        Self::open(config, true).await
    }

    /// Opens the pool on the database as it is, running no migration, and checks one connection
    /// (`backup verify` on a restored copy: what it holds is what is checked).
    pub async fn connect_existing(config: &DbConfig) -> Result<Self, ConnectError> {
        Self::open(config, false).await
    }

    async fn open(config: &DbConfig, migrate: bool) -> Result<Self, ConnectError> {
        let pool = match Backend::of_url(&config.url)? {
            Backend::Postgres => {
                if migrate {
                    migrate::migrate_pg(&config.url).await?;
                }
                // `Fast` recycling: no `SELECT 1` before every checkout (a round trip per query).
                // A connection the server dropped fails its next query once and is then discarded.
                let mut manager_config = ManagerConfig::<AsyncPgConnection>::default();
                manager_config.recycling_method = RecyclingMethod::Fast;
                let manager =
                    AsyncDieselConnectionManager::new_with_config(&config.url, manager_config);
                DbPool::Pg(build_pool(manager, config)?)
            }
            Backend::Sqlite => {
                let path = sqlite_path(&config.url).to_owned();
                if let Some(parent) = Path::new(&path)
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        ConnectError::Connect(format!("cannot create {}: {e}", parent.display()))
                    })?;
                }
                if migrate {
                    migrate::migrate_sqlite(&path).await?;
                }
                let mut manager_config = ManagerConfig::<SqliteConn>::default();
                manager_config.recycling_method = RecyclingMethod::Fast;
                manager_config.custom_setup =
                    Box::new(|url| establish_sqlite(url.to_owned()).boxed());
                let writer = writer::establish_writer(path.clone())
                    .await
                    .map_err(|e| ConnectError::Connect(e.to_string()))?;
                let manager =
                    AsyncDieselConnectionManager::new_with_config(path.clone(), manager_config);
                DbPool::Sqlite(build_pool(manager, config)?, WriteGate::new(writer, path))
            }
        };
        pool.ping()
            .await
            .map_err(|e| ConnectError::Connect(e.to_string()))?;
        Ok(pool)
    }

    /// SQLite's writer turn; `None` on PostgreSQL.
    pub fn write_gate(&self) -> Option<WriteGate> {
        match self {
            DbPool::Sqlite(_, gate) => Some(gate.clone()),
            DbPool::Pg(_) => None,
        }
    }

    /// Which backend this pool talks to.
    pub fn backend(&self) -> Backend {
        match self {
            DbPool::Pg(_) => Backend::Postgres,
            DbPool::Sqlite(..) => Backend::Sqlite,
        }
    }

    /// Checks out a connection, waiting at most the configured acquire timeout. Inside a request
    /// ([`held::scope`]) it first waits for the request's one connection slot (a sibling field may
    /// hold it); asking for a second one while the same field holds one is refused in debug builds.
    pub async fn get(&self) -> Result<DbConn, Error> {
        match self {
            DbPool::Pg(pool) => {
                let held = held::Held::take(()).await?;
                let conn = pool.get().await.map_err(pool_error)?;
                Ok(DbConn::Pg(held.with(conn)))
            }
            DbPool::Sqlite(pool, gate) => {
                let held = held::Held::take(()).await?;
                let conn = pool.get().await.map_err(pool_error)?;
                Ok(DbConn::Sqlite(
                    SqliteSlot::Pooled(held.with(conn)),
                    gate.clone(),
                ))
            }
        }
    }

    /// A connection to be checked out on first use ([`Lazy`]).
    pub fn lazy(&self) -> Lazy<'_> {
        Lazy {
            pool: self,
            conn: None,
        }
    }

    /// A round trip to the database, for `/readyz`.
    pub async fn ping(&self) -> Result<(), Error> {
        let mut conn = self.get().await?;
        db_run!(&mut conn, |c| {
            diesel::sql_query("SELECT 1").execute(c).await?;
        });
        Ok(())
    }

    /// Connections in use, idle and at most, and callers waiting for one (for metrics).
    pub fn usage(&self) -> PoolUsage {
        let status = match self {
            DbPool::Pg(pool) => pool.status(),
            DbPool::Sqlite(pool, _) => pool.status(),
        };
        PoolUsage {
            in_use: status.size.saturating_sub(status.available),
            idle: status.available,
            max: status.max_size,
            waiting: status.waiting,
        }
    }
}

/// A snapshot of the pool, from [`DbPool::usage`].
#[derive(Debug, Clone, Copy)]
pub struct PoolUsage {
    /// Checked out.
    pub in_use: usize,
    /// Open and free.
    pub idle: usize,
    /// The pool's size limit.
    pub max: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}

fn pool_error(e: PoolError) -> Error {
    match e {
        PoolError::Timeout(_) => Error::Unavailable("no free database connection".into()),
        PoolError::Backend(e) => Error::Unavailable(format!("database connection failed: {e}")),
        other => Error::Internal(format!("database pool: {other}")),
    }
}

fn build_pool<C>(
    manager: AsyncDieselConnectionManager<C>,
    config: &DbConfig,
) -> Result<Pool<C>, ConnectError>
where
    C: Send + 'static,
    AsyncDieselConnectionManager<C>: deadpool::managed::Manager<Type = C>,
{
    Pool::builder(manager)
        .max_size(config.max_connections.max(1))
        .runtime(deadpool::Runtime::Tokio1)
        .wait_timeout(Some(config.acquire_timeout))
        .create_timeout(Some(config.acquire_timeout))
        .build()
        .map_err(|e| ConnectError::Connect(e.to_string()))
}

async fn establish_sqlite(path: String) -> diesel::ConnectionResult<SqliteConn> {
    let mut conn = SqliteConn::establish(&path).await?;
    conn.batch_execute(SQLITE_PRAGMAS)
        .await
        .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

impl DbConn {
    /// Runs `body` inside a write transaction on this connection: commit on `Ok`, roll back on
    /// `Err`. Query functions taking `&mut DbConn` compose inside it. On SQLite it runs in the
    /// writers' turn on the writer connection, in a savepoint of a batch that writers queued
    /// behind each other commit together ([`WriteGate`]); it returns once that commit is done.
    pub async fn transaction<T>(
        &mut self,
        body: impl AsyncFnOnce(&mut DbConn) -> Result<T, Error>,
    ) -> Result<T, Error> {
        match self {
            DbConn::Pg(c) => {
                <diesel_async::AnsiTransactionManager as TransactionManager<AsyncPgConnection>>::begin_transaction(&mut **c).await?;
                let result = body(self).await;
                let DbConn::Pg(c) = self else {
                    return Err(Error::Internal(
                        "a PostgreSQL transaction's connection changed backend".into(),
                    ));
                };
                finish_tx(&mut **c, result).await
            }
            DbConn::Sqlite(_, gate) => gate.clone().write(self, body).await,
        }
    }

    /// Runs `body`, one write statement outside a transaction (or a few that need no
    /// transaction together): on SQLite as [`Self::transaction`] does (the writers' turn admits
    /// nothing else), on PostgreSQL as it is. `body` must not start a transaction: that takes
    /// the turn again.
    pub async fn write<T>(
        &mut self,
        body: impl AsyncFnOnce(&mut DbConn) -> Result<T, Error>,
    ) -> Result<T, Error> {
        match self {
            DbConn::Pg(_) => body(self).await,
            DbConn::Sqlite(_, gate) => gate.clone().write(self, body).await,
        }
    }
}

/// Commits on `Ok` and rolls back on `Err`. A connection whose rollback failed is left marked
/// broken, and the pool discards it.
async fn finish_tx<C, T>(conn: &mut C, result: Result<T, Error>) -> Result<T, Error>
where
    C: AsyncConnection,
{
    match result {
        Ok(value) => {
            <C::TransactionManager as TransactionManager<C>>::commit_transaction(conn).await?;
            Ok(value)
        }
        Err(e) => {
            if let Err(rollback) =
                <C::TransactionManager as TransactionManager<C>>::rollback_transaction(conn).await
            {
                tracing::warn!(error = %rollback, "rollback failed");
            }
            Err(e)
        }
    }
}

/// Runs `$body` with `$c` bound to the backend connection inside `$conn` (a `&mut DbConn`).
/// The body is compiled once per backend.
#[macro_export]
macro_rules! db_run {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConn::Pg(obj) => {
                let $c: &mut ::diesel_async::AsyncPgConnection = &mut **obj;
                $body
            }
            $crate::db::DbConn::Sqlite(obj, _) => {
                let $c: &mut $crate::db::SqliteConn = &mut **obj;
                $body
            }
        }
    };
}

pub use crate::db_run;
