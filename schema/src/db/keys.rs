//! Queries on keys: `encryption_state` (which master key seals new values), `signing_keys`,
//! and the sealed columns read and rewritten in batches by a re-seal pass.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel_async::RunQueryDsl;

use super::schema::{encryption_state, signing_keys};
use super::{DbConn, db_run};
use crate::db::models::SigningKeyRow;
use crate::services::sealing::Column;

/// The master key new values are sealed with, if one was ever chosen.
pub async fn active_master(conn: &mut DbConn) -> QueryResult<Option<String>> {
    db_run!(conn, |c| {
        encryption_state::table
            .find(1)
            .select(encryption_state::master_key_id)
            .first(c)
            .await
            .optional()
    })
}

/// Names `id` the master key of a database that has none yet; returns the one in force (this
/// one, or the one another instance chose first).
pub async fn init_master(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> QueryResult<String> {
    db_run!(conn, |c| {
        diesel::insert_into(encryption_state::table)
            .values((
                encryption_state::id.eq(1),
                encryption_state::master_key_id.eq(id),
                encryption_state::changed_at.eq(now),
            ))
            .on_conflict_do_nothing()
            .execute(c)
            .await
    })?;
    active_master(conn)
        .await?
        .ok_or(diesel::result::Error::NotFound)
}

/// Makes `to` the master key, if `from` still is; the number of rows changed (0: someone else
/// rotated first).
pub async fn set_master(
    conn: &mut DbConn,
    from: &str,
    to: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::update(
            encryption_state::table
                .find(1)
                .filter(encryption_state::master_key_id.eq(from)),
        )
        .set((
            encryption_state::master_key_id.eq(to),
            encryption_state::changed_at.eq(now),
        ))
        .execute(c)
        .await
    })
}

/// The key a complete re-seal pass last left every value under, if any.
pub async fn sealed_through(conn: &mut DbConn) -> QueryResult<Option<String>> {
    db_run!(conn, |c| {
        encryption_state::table
            .find(1)
            .select(encryption_state::sealed_through)
            .first(c)
            .await
            .optional()
            .map(Option::flatten)
    })
}

/// Records that a complete pass left every value under `id`, if `id` is still the master key.
pub async fn set_sealed_through(conn: &mut DbConn, id: &str) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::update(
            encryption_state::table
                .find(1)
                .filter(encryption_state::master_key_id.eq(id)),
        )
        .set(encryption_state::sealed_through.eq(id))
        .execute(c)
        .await
    })
}

/// The signing keys that still verify at `now` (or will sign), oldest generation first.
pub async fn live_signing_keys(
    conn: &mut DbConn,
    now: NaiveDateTime,
) -> QueryResult<Vec<SigningKeyRow>> {
    db_run!(conn, |c| {
        signing_keys::table
            .filter(
                signing_keys::verifies_until
                    .is_null()
                    .or(signing_keys::verifies_until.gt(now)),
            )
            .order(signing_keys::generation.asc())
            .select(SigningKeyRow::as_select())
            .load(c)
            .await
    })
}

/// The newest generation, if any key was ever made.
pub async fn last_generation(conn: &mut DbConn) -> QueryResult<Option<i64>> {
    db_run!(conn, |c| {
        signing_keys::table
            .select(diesel::dsl::max(signing_keys::generation))
            .first(c)
            .await
    })
}

/// Adds a key; fails on a generation already taken (a rotation that raced another).
pub async fn insert_signing_key(conn: &mut DbConn, row: &SigningKeyRow) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::insert_into(signing_keys::table)
            .values(row)
            .execute(c)
            .await
    })
}

/// Gives every key below `generation` that verifies without an end the end `until`.
pub async fn end_older(
    conn: &mut DbConn,
    generation: i64,
    until: NaiveDateTime,
) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::update(
            signing_keys::table
                .filter(signing_keys::generation.lt(generation))
                .filter(signing_keys::verifies_until.is_null()),
        )
        .set(signing_keys::verifies_until.eq(until))
        .execute(c)
        .await
    })
}

/// Ends key `kid` at `now` (it verifies nothing more); the number of rows changed.
pub async fn retire_now(conn: &mut DbConn, kid: &str, now: NaiveDateTime) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::update(
            signing_keys::table.find(kid).filter(
                signing_keys::verifies_until
                    .is_null()
                    .or(signing_keys::verifies_until.gt(now)),
            ),
        )
        .set(signing_keys::verifies_until.eq(now))
        .execute(c)
        .await
    })
}

/// Sets when key `kid` stops verifying (`None`: without end).
pub async fn set_until(
    conn: &mut DbConn,
    kid: &str,
    until: Option<NaiveDateTime>,
) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::update(signing_keys::table.find(kid))
            .set(signing_keys::verifies_until.eq(until))
            .execute(c)
            .await
    })
}

/// Deletes the keys that stopped verifying before `before`: their private halves are gone.
pub async fn delete_retired(conn: &mut DbConn, before: NaiveDateTime) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::delete(signing_keys::table.filter(signing_keys::verifies_until.lt(before)))
            .execute(c)
            .await
    })
}

/// Where a sealed column lives, and how its text is read and written on each backend.
struct Place {
    table: &'static str,
    id: &'static str,
    column: &'static str,
    /// The column read as text (`prompt_log` is JSON).
    read_pg: &'static str,
    read_sqlite: &'static str,
    /// The bound text written back.
    write_pg: &'static str,
    write_sqlite: &'static str,
}

const fn text(table: &'static str, id: &'static str, column: &'static str) -> Place {
    Place {
        table,
        id,
        column,
        read_pg: column,
        read_sqlite: column,
        write_pg: "$1",
        write_sqlite: "?1",
    }
}

fn place(column: Column) -> Place {
    match column {
        Column::MessageContent => text("messages", "id", "content"),
        Column::MessageReasoning => text("messages", "id", "reasoning"),
        Column::MfaSecret => text("mfa_secrets", "user_id", "secret"),
        Column::SigningKey => text("signing_keys", "kid", "private_key"),
        Column::AlertTargets => text("alert_rules", "id", "targets"),
        Column::DeliveryRecipient => text("alert_deliveries", "id", "recipient"),
        Column::PromptLog => Place {
            table: "ai_calls",
            id: "id",
            column: "prompt_log",
            read_pg: "prompt_log::text",
            read_sqlite: "json(prompt_log)",
            write_pg: "$1::jsonb",
            write_sqlite: "jsonb(?1)",
        },
    }
}

/// A row of a sealed column, its value as text.
#[derive(Debug, QueryableByName)]
pub struct SealedValue {
    /// The row's id.
    #[diesel(sql_type = Text)]
    pub id: String,
    /// The stored value (for `prompt_log`, its JSON text).
    #[diesel(sql_type = Text)]
    pub value: String,
}

/// Up to `limit` rows of `column` after row id `after`, in id order, whose value is not sealed
/// under master key `active` (NULLs skipped).
pub async fn unsealed_page(
    conn: &mut DbConn,
    column: Column,
    active: &str,
    after: &str,
    limit: i64,
) -> QueryResult<Vec<SealedValue>> {
    let p = place(column);
    let pg = matches!(conn, DbConn::Pg(_));
    let (read, n) = if pg {
        (p.read_pg, ["$1", "$2", "$3"])
    } else {
        (p.read_sqlite, ["?1", "?2", "?3"])
    };
    // `prompt_log` holds a JSON string: its text starts with a quote. Compared exactly (LIKE is
    // case-blind on SQLite).
    let prefix = if column == Column::PromptLog {
        format!("\"{}{active}:", crate::services::sealing::PREFIX)
    } else {
        format!("{}{active}:", crate::services::sealing::PREFIX)
    };
    let sql = format!(
        "SELECT {id} AS id, {read} AS value FROM {table} \
         WHERE {id} > {p1} AND {column} IS NOT NULL AND SUBSTR({read}, 1, {len}) <> {p2} \
         ORDER BY {id} LIMIT {p3}",
        id = p.id,
        table = p.table,
        column = p.column,
        len = prefix.chars().count(),
        p1 = n[0],
        p2 = n[1],
        p3 = n[2],
    );
    db_run!(conn, |c| {
        diesel::sql_query(&sql)
            .bind::<Text, _>(after)
            .bind::<Text, _>(&prefix)
            .bind::<BigInt, _>(limit)
            .load::<SealedValue>(c)
            .await
    })
}

/// Writes `new` over row `id`'s value of `column` if it still is `old`; the rows changed.
pub async fn replace_value(
    conn: &mut DbConn,
    column: Column,
    id: &str,
    old: &str,
    new: &str,
) -> QueryResult<usize> {
    let p = place(column);
    let pg = matches!(conn, DbConn::Pg(_));
    let (read, write, n) = if pg {
        (p.read_pg, p.write_pg, ["$2", "$3"])
    } else {
        (p.read_sqlite, p.write_sqlite, ["?2", "?3"])
    };
    let sql = format!(
        "UPDATE {table} SET {column} = {write} WHERE {id} = {p2} AND {read} = {p3}",
        table = p.table,
        column = p.column,
        id = p.id,
        p2 = n[0],
        p3 = n[1],
    );
    db_run!(conn, |c| {
        diesel::sql_query(&sql)
            .bind::<Nullable<Text>, _>(Some(new))
            .bind::<Text, _>(id)
            .bind::<Text, _>(old)
            .execute(c)
            .await
    })
}

/// How many non-NULL values of `column` each master key sealed (`None`: not sealed yet).
pub async fn count_by_key(
    conn: &mut DbConn,
    column: Column,
) -> QueryResult<Vec<(Option<String>, i64)>> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = Nullable<Text>)]
        key_id: Option<String>,
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let p = place(column);
    let pg = matches!(conn, DbConn::Pg(_));
    let read = if pg { p.read_pg } else { p.read_sqlite };
    // The key id: the 16 characters after `cbx1:` (after `"cbx1:` in JSON text).
    let start = if column == Column::PromptLog { 7 } else { 6 };
    let prefix = if column == Column::PromptLog {
        "\"cbx1:%"
    } else {
        "cbx1:%"
    };
    let sql = format!(
        "SELECT CASE WHEN {read} LIKE '{prefix}' THEN SUBSTR({read}, {start}, 16) END AS key_id, \
         CAST(COUNT(*) AS BIGINT) AS n FROM {table} WHERE {column} IS NOT NULL GROUP BY 1",
        table = p.table,
        column = p.column,
    );
    let rows: Vec<Count> = db_run!(conn, |c| diesel::sql_query(&sql).load(c).await)?;
    Ok(rows.into_iter().map(|r| (r.key_id, r.n)).collect())
}
