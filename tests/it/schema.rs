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

/// Every row of `table`, each as one text of its columns' quoted values in order, by `order`.
async fn sqlite_rows(app: &TestApp, table: &str, order: &str) -> Vec<String> {
    let columns = app
        .sql_texts(&format!(
            "SELECT group_concat('quote(' || name || ')', ' || '','' || ') AS t \
             FROM (SELECT name FROM pragma_table_info('{table}') ORDER BY cid)"
        ))
        .await
        .remove(0);
    app.sql_texts(&format!(
        "SELECT {columns} AS t FROM {table} ORDER BY {order}"
    ))
    .await
}

/// The tables' and their indexes' definitions, by name.
async fn sqlite_definitions(app: &TestApp, kind: &str) -> Vec<String> {
    app.sql_texts(&format!(
        "SELECT name || ': ' || sql AS t FROM sqlite_schema \
         WHERE type = '{kind}' AND tbl_name IN ('ai_calls', 'messages') AND sql IS NOT NULL \
         ORDER BY name"
    ))
    .await
}

/// SQLite's `2026-12-04-000022_status_checks` rebuilds `ai_calls` and `messages` (a CHECK's `IN`
/// list becomes a chain of `=`). A database from before it keeps every row as it was, the rows
/// that refer to the rebuilt tables (messages, reservations) keep their references, the indexes
/// come back as they were, and the references and CHECKs act afterwards as before.
#[tokio::test(flavor = "multi_thread")]
async fn sqlite_rebuilds_the_call_tables_keeping_every_row_and_reference() {
    use diesel_migrations::{FileBasedMigrations, MigrationHarness};
    use serde_json::json;

    let mut app = TestApp::spawn().await;
    if app.is_postgres() {
        eprintln!("the rebuild is SQLite's (PostgreSQL's migration of the version does nothing)");
        return;
    }
    let admin = app.admin_token().await;
    let (token, _, user_id) = app.register("rows@example.com", "rows-password").await;
    let created = app
        .gql_ok(Some(&token), "mutation { createConversation(title: \"kept\", provider: \"mock\", model: \"mock-echo\") { id } }", json!({}))
        .await;
    let conversation = created["createConversation"]["id"].clone();
    for text in ["first", "second"] {
        app.gql_ok(
            Some(&token),
            &crate::chat::chat_query(),
            json!({"input": {"conversationId": conversation, "message": text}}),
        )
        .await;
    }
    app.gql_ok(
        Some(&token),
        &crate::chat::chat_query(),
        json!({"input": {"provider": "mock", "model": "mock-echo", "message": "alone"}}),
    )
    .await;
    let budget = app.gql_ok(Some(&admin), "mutation($i: CreateBudgetInput!) { createBudget(input: $i) { id } }", json!({"i": {"userId": user_id, "period": "TOTAL", "currency": "CNY", "limitMicros": "1000000"}})).await;
    let budget_id = budget["createBudget"]["id"].as_str().unwrap().to_owned();
    let indexes = sqlite_definitions(&app, "index").await;
    assert_eq!(indexes.len(), 7, "{indexes:#?}");
    let migrated_tables = sqlite_definitions(&app, "table").await;
    assert!(
        migrated_tables
            .iter()
            .all(|sql| !sql.contains(" IN ('PENDING'") && !sql.contains(" IN ('SYSTEM'")),
        "{migrated_tables:#?}"
    );

    // Back to before the rebuild (its down.sql, which rebuilds them the old way).
    app.stop().await;
    let url = app.config.database_url.clone().unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/sqlite");
    let mut harness =
        diesel_async::AsyncMigrationHarness::new(crate::support::sqlite_connection(&url).await);
    let reverted = harness
        .revert_last_migration(FileBasedMigrations::from_path(&dir).unwrap())
        .unwrap()
        .to_string();
    assert_eq!(reverted, "20261204000022");
    drop(harness);
    let old_tables = sqlite_definitions(&app, "table").await;
    assert!(
        old_tables
            .iter()
            .any(|sql| sql.contains("status IN ('PENDING'")),
        "{old_tables:#?}"
    );
    assert_eq!(sqlite_definitions(&app, "index").await, indexes);
    // A call still in flight when the server stopped: PENDING, holding a reservation.
    let pending = uuid::Uuid::now_v7().to_string();
    let started = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S");
    app.sql(&format!(
        "INSERT INTO ai_calls (id, user_id, provider, model, stream, status, started_at) \
         VALUES ('{pending}', '{user_id}', 'mock', 'mock-echo', 0, 'PENDING', '{started}')"
    ))
    .await;
    app.sql(&format!(
        "INSERT INTO budget_reservations (ai_call_id, budget_id, amount_micros, tokens, requests, expires_at) \
         VALUES ('{pending}', '{budget_id}', 500, 0, 1, '2999-01-01 00:00:00')"
    ))
    .await;
    let calls = sqlite_rows(&app, "ai_calls", "id").await;
    let messages = sqlite_rows(&app, "messages", "id").await;
    let reservations = sqlite_rows(&app, "budget_reservations", "ai_call_id").await;
    assert_eq!(calls.len(), 4);
    assert_eq!(messages.len(), 4);
    assert_eq!(reservations.len(), 1);
    assert_eq!(
        app.sql_number("SELECT COUNT(*) AS n FROM messages WHERE ai_call_id IS NOT NULL")
            .await,
        4,
        "every message of a turn names its call"
    );

    // The server migrates again at start: the rebuild, and the foreign key check after it.
    app.restart_with(|_| {}).await;
    assert_eq!(sqlite_definitions(&app, "table").await, migrated_tables);
    assert_eq!(sqlite_definitions(&app, "index").await, indexes);
    assert_eq!(sqlite_rows(&app, "ai_calls", "id").await, calls);
    assert_eq!(sqlite_rows(&app, "messages", "id").await, messages);
    assert_eq!(
        sqlite_rows(&app, "budget_reservations", "ai_call_id").await,
        reservations
    );

    // The CHECKs refuse what they refused, and allow every status and role they allowed.
    let mut conn = crate::support::sqlite_connection(&url).await;
    for statement in [
        format!("UPDATE ai_calls SET status = 'DONE' WHERE id = '{pending}'"),
        format!("UPDATE ai_calls SET status = 'pending' WHERE id = '{pending}'"),
        "UPDATE messages SET role = 'TOOL'".to_owned(),
    ] {
        let error = diesel::sql_query(&statement)
            .execute(&mut conn)
            .await
            .expect_err(&statement);
        assert!(
            error.to_string().contains("CHECK constraint failed"),
            "{error}"
        );
    }
    for status in ["SUCCEEDED", "FAILED", "CANCELLED", "PENDING"] {
        diesel::sql_query(format!(
            "UPDATE ai_calls SET status = '{status}' WHERE id = '{pending}'"
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    }
    drop(conn);

    // The references act: deleting the conversation takes its messages and unlinks its calls.
    app.gql_ok(
        Some(&token),
        "mutation($id: ID!) { deleteConversation(id: $id) }",
        json!({"id": conversation}),
    )
    .await;
    assert_eq!(
        app.sql_number("SELECT COUNT(*) AS n FROM messages").await,
        0
    );
    assert_eq!(
        app.sql_number("SELECT COUNT(*) AS n FROM ai_calls WHERE conversation_id IS NOT NULL")
            .await,
        0
    );
    // Deleting the user cascades to the calls, and through them to what refers to them.
    let mut conn = crate::support::sqlite_connection(&url).await;
    diesel::sql_query("PRAGMA foreign_keys = ON")
        .execute(&mut conn)
        .await
        .unwrap();
    diesel::sql_query(format!("DELETE FROM users WHERE id = '{user_id}'"))
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    assert_eq!(
        app.sql_number("SELECT COUNT(*) AS n FROM ai_calls").await,
        0
    );
    assert_eq!(
        app.sql_number("SELECT COUNT(*) AS n FROM budget_reservations")
            .await,
        0
    );
    // And a call after all of it is recorded as before.
    app.gql_ok(
        Some(&admin),
        &crate::chat::chat_query(),
        json!({"input": {"provider": "mock", "model": "mock-echo", "message": "after"}}),
    )
    .await;
    assert_eq!(
        app.sql_number("SELECT COUNT(*) AS n FROM ai_calls WHERE status = 'SUCCEEDED'")
            .await,
        1
    );
}
