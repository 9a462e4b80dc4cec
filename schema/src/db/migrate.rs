//! The embedded migrations of both backends, run at start: SQLite on its one file, PostgreSQL on
//! a dedicated connection under an advisory lock, so instances that start together migrate once.

use diesel_async::{
    AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection,
};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::{Backend, ConnectError, establish_sqlite};

const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/sqlite");

/// Serialises migrations across instances that start together (an arbitrary, fixed key).
const MIGRATION_LOCK_KEY: i64 = 0x0c10_0dba_5e00_0001;

pub(super) async fn migrate_sqlite(path: &str) -> Result<(), ConnectError> {
    let conn = establish_sqlite(path.to_owned())
        .await
        .map_err(|e| ConnectError::Connect(format!("{path}: {e}")))?;
    let mut harness = AsyncMigrationHarness::new(conn);
    let ran = harness
        .run_pending_migrations(SQLITE_MIGRATIONS)
        .map_err(|e| ConnectError::Migrate(e.to_string()))?
        .len();
    if ran > 0 {
        // Migrations that rebuild a table do it with foreign keys off (SQLite's twelve steps):
        // nothing checked the references while they ran, so check them all now.
        let mut conn = harness.into_inner();
        let broken: ForeignKeyCheck =
            diesel::sql_query("SELECT COUNT(*) AS n FROM pragma_foreign_key_check")
                .get_result(&mut conn)
                .await
                .map_err(|e| ConnectError::Migrate(format!("foreign key check: {e}")))?;
        if broken.n > 0 {
            return Err(ConnectError::Migrate(format!(
                "{} rows refer to rows that are gone after the migrations \
                 (`PRAGMA foreign_key_check` lists them)",
                broken.n
            )));
        }
    }
    Ok(())
}

#[derive(diesel::QueryableByName)]
struct ForeignKeyCheck {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Runs the Postgres migrations on one dedicated connection that holds an advisory lock, so that
/// several instances starting together migrate once.
pub(super) async fn migrate_pg(url: &str) -> Result<(), ConnectError> {
    let mut conn = AsyncPgConnection::establish(url)
        .await
        .map_err(|e| ConnectError::Connect(e.to_string()))?;
    let lock = format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})");
    conn.batch_execute(&lock)
        .await
        .map_err(|e| ConnectError::Migrate(format!("advisory lock: {e}")))?;
    let mut harness = AsyncMigrationHarness::new(conn);
    let result = harness
        .run_pending_migrations(PG_MIGRATIONS)
        .map(|_| ())
        .map_err(|e| ConnectError::Migrate(e.to_string()));
    let mut conn = harness.into_inner();
    let unlock = format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})");
    // The lock also goes away with the connection, which is dropped right after.
    let _ = conn.batch_execute(&unlock).await;
    result
}

/// The newest migration this build carries for `backend` (`2026-12-01-000017`): the schema version
/// a database is at once migrated, which a backup records.
pub fn latest_version(backend: Backend) -> Option<String> {
    let versions: Vec<String> = match backend {
        Backend::Postgres => {
            diesel::migration::MigrationSource::<diesel::pg::Pg>::migrations(&PG_MIGRATIONS)
                .ok()?
                .iter()
                .map(|m| m.name().version().to_string())
                .collect()
        }
        Backend::Sqlite => {
            diesel::migration::MigrationSource::<diesel::sqlite::Sqlite>::migrations(
                &SQLITE_MIGRATIONS,
            )
            .ok()?
            .iter()
            .map(|m| m.name().version().to_string())
            .collect()
        }
    };
    versions.into_iter().max()
}
