//! A PostgreSQL database's inventory: its tables, their row counts and its schema version, read
//! in one snapshot that `pg_dump --snapshot` can share, so a backup records the counts of exactly
//! the rows it holds. (SQLite backups count their own finished copy, in `cloudbase-server`.)

use std::collections::BTreeMap;

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use crate::Error;

/// The rows a database holds, table by table, and the newest migration applied to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    /// The newest applied migration's version (digits only, as the migrations table stores it).
    pub schema_version: Option<String>,
    /// Rows per table of the current schema, by name.
    pub tables: BTreeMap<String, i64>,
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Version {
    #[diesel(sql_type = Nullable<Text>)]
    version: Option<String>,
}

/// Counts the rows of every table in the connection's current schema.
pub async fn census(conn: &mut AsyncPgConnection) -> Result<Census, Error> {
    let names: Vec<Name> = diesel::sql_query(
        "SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema() \
         ORDER BY tablename",
    )
    .load(conn)
    .await?;
    let mut census = Census::default();
    for Name { name } in names {
        let quoted = name.replace('"', "\"\"");
        let count: Count = diesel::sql_query(format!("SELECT COUNT(*) AS n FROM \"{quoted}\""))
            .get_result(conn)
            .await?;
        if name == "__diesel_schema_migrations" {
            let v: Version = diesel::sql_query(
                "SELECT MAX(version)::text AS version FROM __diesel_schema_migrations",
            )
            .get_result(conn)
            .await?;
            census.schema_version = v.version;
        }
        census.tables.insert(name, count.n);
    }
    Ok(census)
}

/// A read-only `REPEATABLE READ` transaction whose snapshot is exported for `pg_dump
/// --snapshot`: what [`census`] counts in it is what the dump holds. Keep it until the dump is
/// done, then [`PgSnapshot::finish`].
pub struct PgSnapshot {
    conn: AsyncPgConnection,
    /// The exported snapshot's id.
    pub id: String,
}

#[derive(QueryableByName)]
struct SnapshotId {
    #[diesel(sql_type = Text)]
    id: String,
}

impl PgSnapshot {
    /// Connects to `url`, opens the transaction and exports its snapshot.
    pub async fn begin(url: &str) -> Result<Self, Error> {
        let mut conn = AsyncPgConnection::establish(url)
            .await
            .map_err(|e| Error::Unavailable(format!("cannot connect to the database: {e}")))?;
        conn.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?;
        let SnapshotId { id } = diesel::sql_query("SELECT pg_export_snapshot() AS id")
            .get_result(&mut conn)
            .await?;
        Ok(Self { conn, id })
    }

    /// The tables and their rows as of the snapshot.
    pub async fn census(&mut self) -> Result<Census, Error> {
        census(&mut self.conn).await
    }

    /// Ends the transaction (the snapshot can no longer be imported).
    pub async fn finish(mut self) -> Result<(), Error> {
        self.conn.batch_execute("COMMIT").await?;
        Ok(())
    }
}

/// How many other client sessions have the connection's database open (a running server has
/// some; autovacuum and other background workers do not count).
pub async fn other_sessions(conn: &mut AsyncPgConnection) -> Result<i64, Error> {
    let count: Count = diesel::sql_query(
        "SELECT COUNT(*) AS n FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
         AND backend_type = 'client backend'",
    )
    .get_result(conn)
    .await?;
    Ok(count.n)
}
