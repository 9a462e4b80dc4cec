//! The schema in its three forms: the GraphQL SDL (snapshot), the migrations (same versions for
//! both backends), and `schema.rs` (checked against the columns each database really has).

use std::collections::BTreeSet;
use std::path::Path;

use cloudbase_schema::db::schema::{
    ai_calls, alert_deliveries, alert_rules, alert_states, alerts, api_keys, audit_head, audit_log,
    budget_reservations, budgets, conversations, encryption_state, invites, leases, messages,
    mfa_challenges, mfa_recovery_codes, mfa_secrets, password_resets, prices, rate_counters,
    refresh_tokens, sessions, signing_keys, system_logs, usage_daily, usage_daily_models,
    usage_daily_users, user_identities, user_limits, users,
};
use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use crate::support::TestApp;

#[test]
fn sdl_snapshot() {
    insta::assert_snapshot!(cloudbase_schema::sdl());
}

fn migration_names(backend: &str) -> BTreeSet<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../migrations")
        .join(backend);
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| {
            for file in ["up.sql", "down.sql"] {
                assert!(
                    e.path().join(file).exists(),
                    "{} lacks {file}",
                    e.path().display()
                );
            }
            e.file_name().to_string_lossy().into_owned()
        })
        .collect()
}

#[test]
fn both_backends_have_the_same_migrations() {
    let pg = migration_names("postgres");
    let sqlite = migration_names("sqlite");
    assert!(!pg.is_empty());
    assert_eq!(
        pg, sqlite,
        "migrations/postgres and migrations/sqlite must have the same versions"
    );
}

/// Column names of a `schema.rs` table, read from the SQL Diesel generates for it.
fn diesel_columns(sql: &str) -> BTreeSet<String> {
    let select = sql
        .split(" FROM ")
        .next()
        .unwrap()
        .trim_start_matches("SELECT ");
    select
        .split(", ")
        .map(|c| {
            c.rsplit('.')
                .next()
                .unwrap()
                .trim_matches(['"', '`'])
                .to_owned()
        })
        .collect()
}

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

/// Each listed `schema.rs` table with the columns Diesel selects for it.
macro_rules! declared_tables {
    ($($table:ident),* $(,)?) => {{
        use diesel::prelude::*;
        vec![$((
            stringify!($table),
            diesel_columns(
                &diesel::debug_query::<diesel::pg::Pg, _>(&$table::table.select($table::all_columns))
                    .to_string(),
            ),
        )),*]
    }};
}

fn expected() -> Vec<(&'static str, BTreeSet<String>)> {
    declared_tables!(
        users,
        sessions,
        refresh_tokens,
        prices,
        conversations,
        ai_calls,
        messages,
        budgets,
        budget_reservations,
        usage_daily,
        usage_daily_models,
        usage_daily_users,
        rate_counters,
        user_limits,
        audit_log,
        audit_head,
        system_logs,
        alert_rules,
        alert_states,
        alerts,
        alert_deliveries,
        leases,
        invites,
        api_keys,
        mfa_secrets,
        mfa_recovery_codes,
        mfa_challenges,
        password_resets,
        user_identities,
        signing_keys,
        encryption_state
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn schema_rs_matches_the_database() {
    let app = TestApp::spawn().await;
    let url = app.config.database_url.clone().unwrap();
    let expected = expected();
    let mut tables_in_db = BTreeSet::new();
    for (table, columns) in &expected {
        let actual: BTreeSet<String> = if app.is_postgres() {
            let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
            let q = format!(
                "SELECT column_name::text AS name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = '{table}'"
            );
            let rows: Vec<Name> = diesel::sql_query(q).load(&mut conn).await.unwrap();
            let tables: Vec<Name> = diesel::sql_query("SELECT table_name::text AS name FROM information_schema.tables WHERE table_schema = 'public'")
                .load(&mut conn)
                .await
                .unwrap();
            tables_in_db.extend(tables.into_iter().map(|t| t.name));
            rows.into_iter().map(|r| r.name).collect()
        } else {
            let path = cloudbase_schema::db::sqlite_path(&url);
            let mut conn = SyncConnectionWrapper::<diesel::SqliteConnection>::establish(path)
                .await
                .unwrap();
            let rows: Vec<Name> =
                diesel::sql_query(format!("SELECT name FROM pragma_table_info('{table}')"))
                    .load(&mut conn)
                    .await
                    .unwrap();
            let tables: Vec<Name> = diesel::sql_query(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            )
            .load(&mut conn)
            .await
            .unwrap();
            tables_in_db.extend(tables.into_iter().map(|t| t.name));
            rows.into_iter().map(|r| r.name).collect()
        };
        assert_eq!(
            &actual, columns,
            "columns of {table}: database vs schema.rs"
        );
    }
    tables_in_db.remove("__diesel_schema_migrations");
    let declared: BTreeSet<String> = expected.iter().map(|(t, _)| (*t).to_owned()).collect();
    assert_eq!(
        tables_in_db, declared,
        "every table in the database is declared in schema.rs"
    );
}
