//! Statements diesel would prepare again on every run, kept prepared instead, and known by
//! the place they are written.
//!
//! Diesel never caches an `UPDATE` or an upsert's `DO UPDATE` prepared statement, because a
//! changeset of `Option` fields skips its `None`s and so changes shape from one run to the next.
//! The statements of the call path have one shape (their changesets store `None` as `NULL`), and
//! preparing them again was a fifth of the instructions of a call on SQLite (`bench/RESULTS.md`).
//! [`FixedShape`] tells the statement cache so.
//!
//! It also gives the statement a static [`QueryId`], made from the place in the source where it
//! is written ([`fixed_shape!`]), so that the cache finds it by that id: without one (diesel
//! gives none to an `UPDATE`, an upsert or `sql_query`), every run builds the statement's SQL
//! text and hashes it to find the prepared statement, on SQLite about a tenth of a call's
//! instructions (`bench/instructions.sh`).
//!
//! diesel-async builds a statement's text on every run even when its prepared statement is
//! found by id: on PostgreSQL, and on SQLite through the async wrapper. Every identifier it
//! writes is copied to double its quotes, and the text of a call's finish (its rollups, the
//! rate limits' counters and the audit row in one statement) was a tenth of a call's
//! instructions there. A statement whose text is fixed by its type writes it once per process
//! and copies it after ([`write_kept`]).

use std::any::TypeId;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{LazyLock, RwLock};

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryBuilder, QueryFragment, QueryId};
use diesel::result::QueryResult;

/// Statements' texts by statement id and backend.
type Texts = HashMap<(TypeId, TypeId), Box<str>>;

/// The texts written so far.
static TEXTS: LazyLock<RwLock<Texts>> = LazyLock::new(RwLock::default);

/// Writes `statement`'s text into `out` (a fresh builder: `to_sql` is only ever called on a
/// whole statement): the text written the first time for its id, else built and kept.
///
/// Only for a statement whose text its [`QueryId`] alone fixes, which is what diesel's statement
/// cache assumes of a statement it keeps by id ([`FixedShape`], and the statements of the call
/// path that declare it of themselves). One without a static id is built as usual.
pub(crate) fn write_kept<T, DB>(
    statement: &T,
    out: &mut DB::QueryBuilder,
    backend: &DB,
) -> QueryResult<()>
where
    T: QueryFragment<DB> + QueryId,
    DB: Backend + 'static,
    DB::QueryBuilder: Default,
{
    // `&T`'s `to_sql` is diesel's own: it walks the statement.
    let Some(id) = T::query_id() else {
        return QueryFragment::<DB>::to_sql(&statement, out, backend);
    };
    let key = (id, TypeId::of::<DB>());
    if let Ok(texts) = TEXTS.read()
        && let Some(text) = texts.get(&key)
    {
        out.push_sql(text);
        return Ok(());
    }
    let mut own = DB::QueryBuilder::default();
    QueryFragment::<DB>::to_sql(&statement, &mut own, backend)?;
    let text = own.finish();
    out.push_sql(&text);
    if let Ok(mut texts) = TEXTS.write() {
        texts.entry(key).or_insert_with(|| text.into_boxed_str());
    }
    Ok(())
}

/// A statement whose SQL text depends on the place it is written (`K`, a type of its own made by
/// [`fixed_shape!`]) alone: never on its values (no changeset that skips `None` fields, no `IN`
/// list, no batch of rows of varying length), nor on a type parameter of the function around it.
/// Its text is written once per process and backend ([`write_kept`]): one that varied would run
/// its first text every time, on every path.
#[derive(Debug)]
pub struct FixedShape<Q, K>(Q, PhantomData<fn() -> K>);

impl<Q, K> FixedShape<Q, K> {
    /// Use [`fixed_shape!`], which makes `K`.
    #[doc(hidden)]
    pub fn at_site(statement: Q) -> Self {
        Self(statement, PhantomData)
    }
}

/// `fixed_shape!(statement)`: `statement`, kept prepared, known to the statement cache by where
/// this is written (see [`FixedShape`]). Never inside a function generic over what the statement
/// names: every instance would share the one place.
macro_rules! fixed_shape {
    ($statement:expr $(,)?) => {{
        enum Site {}
        $crate::db::fixed::FixedShape::<_, Site>::at_site($statement)
    }};
}
pub(crate) use fixed_shape;

impl<Q, K, DB> QueryFragment<DB> for FixedShape<Q, K>
where
    DB: Backend + 'static,
    DB::QueryBuilder: Default,
    Q: QueryFragment<DB> + QueryId,
    K: 'static,
{
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn to_sql(&self, out: &mut DB::QueryBuilder, backend: &DB) -> QueryResult<()> {
        write_kept(self, out, backend)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Q: QueryId, K: 'static> QueryId for FixedShape<Q, K> {
    type QueryId = (K, Q::QueryId);
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<Q: Query, K> Query for FixedShape<Q, K> {
    type SqlType = Q::SqlType;
}

/// Diesel's synchronous `RunQueryDsl`, for the statements run on SQLite's own connection
/// (`crate::db::budgets`, inside the blocking wrapper).
impl<Q, K, Conn> diesel::RunQueryDsl<Conn> for FixedShape<Q, K> {}

/// Runs `statement`, which returns no rows, on SQLite's own connection (the work of the
/// blocking wrapper), prepared once per connection.
///
/// Diesel's synchronous `execute` takes the statement by reference, and its `QueryFragment`
/// for `&T` does not pass on [`FixedShape`]'s word that it may be kept: it walks the statement
/// instead, an `UPDATE` or an upsert says no, and the statement would be prepared again on every
/// run. Loaded by value (as a statement of no rows, its cursor run to the end), it is kept.
pub(crate) fn run_on_sqlite<S>(
    conn: &mut diesel::sqlite::SqliteConnection,
    statement: S,
) -> QueryResult<()>
where
    S: QueryFragment<diesel::sqlite::Sqlite> + QueryId,
{
    use diesel::connection::LoadConnection;
    for row in conn.load(NoRows(statement))? {
        row?;
    }
    Ok(())
}

/// A statement that returns no rows, as a query of none (see [`run_on_sqlite`]).
struct NoRows<S>(S);

impl<S: QueryFragment<DB>, DB: Backend> QueryFragment<DB> for NoRows<S> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, backend: &DB) -> QueryResult<bool> {
        self.0.is_safe_to_cache_prepared(backend)
    }
}

impl<S: QueryId> QueryId for NoRows<S> {
    type QueryId = S::QueryId;
    const HAS_STATIC_QUERY_ID: bool = S::HAS_STATIC_QUERY_ID;
}

impl<S> Query for NoRows<S> {
    type SqlType = diesel::sql_types::Untyped;
}

/// Whether diesel's statement cache keeps `statement` prepared on `backend` (for the tests of
/// the statements that use [`FixedShape`]).
#[cfg(test)]
pub(crate) fn kept_prepared<DB: Backend>(statement: &impl QueryFragment<DB>, backend: &DB) -> bool {
    statement
        .is_safe_to_cache_prepared(backend)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDateTime;
    use diesel::pg::Pg;
    use diesel::prelude::*;
    use diesel::sqlite::Sqlite;

    use super::kept_prepared;
    use crate::db::models::AiCall;
    use crate::db::schema::rate_counters;
    use crate::db::{ai_calls, conversations, rate_limits};

    #[test]
    fn diesel_alone_prepares_an_update_again_every_run() {
        // The premise of `FixedShape`: without it, the statements below would not be kept.
        let bare = diesel::update(rate_counters::table.find(("k", NaiveDateTime::default())))
            .set(rate_counters::count.eq(rate_counters::count + 1));
        assert!(!kept_prepared(&bare, &Pg));
        assert!(!kept_prepared(&bare, &Sqlite));
        let raw = diesel::sql_query("SELECT 1");
        assert!(!kept_prepared(&raw, &Pg));
    }

    #[test]
    fn the_rate_limit_and_conversation_writes_of_a_call_stay_prepared() {
        let at = NaiveDateTime::default();
        let bump = rate_limits::bump_statement("rpm:u", at, 1, 120);
        let add = rate_limits::add_statement("tpm:u", at, 10);
        let touch = conversations::touch_statement("c", at);
        assert!(kept_prepared(&bump, &Pg) && kept_prepared(&bump, &Sqlite));
        assert!(kept_prepared(&add, &Pg) && kept_prepared(&add, &Sqlite));
        assert!(kept_prepared(&touch, &Pg) && kept_prepared(&touch, &Sqlite));
        assert!(kept_prepared(&rate_limits::lock_statement("rpm:u"), &Pg));
        // On PostgreSQL each of a counter's steps is a statement alone that says how it commits
        // (`flight::ASYNC_COMMIT`).
        let alone = [
            texts(&rate_limits::bump_statement_pg("rpm:u", at, 1, 120), &Pg),
            texts(&rate_limits::create_statement_pg("rpm:u", at, 1), &Pg),
            texts(&rate_limits::add_statement_pg("tpm:u", at, 10), &Pg),
        ];
        for (walked, written) in alone {
            assert_eq!(written, walked);
            assert!(
                written.ends_with(&format!("RETURNING {}", crate::db::flight::ASYNC_COMMIT)),
                "{written}"
            );
        }
        assert!(kept_prepared(
            &rate_limits::bump_statement_pg("rpm:u", at, 1, 120),
            &Pg
        ));
        assert!(kept_prepared(
            &rate_limits::create_statement_pg("rpm:u", at, 1),
            &Pg
        ));
        assert!(kept_prepared(
            &rate_limits::add_statement_pg("tpm:u", at, 10),
            &Pg
        ));
    }

    /// The statement cache's key: diesel's `QueryId::query_id`.
    fn key<Q: diesel::query_builder::QueryId>(_: &Q) -> Option<std::any::TypeId> {
        Q::query_id()
    }

    #[test]
    fn each_place_a_statement_is_written_is_a_prepared_statement_of_its_own() {
        let (at, later) = (NaiveDateTime::default(), NaiveDateTime::MAX);
        let add = rate_limits::add_statement("tpm:u", at, 10);
        let bump = rate_limits::bump_statement("rpm:u", at, 1, 120);
        // Found by a static id, never by building the text…
        assert!(key(&add).is_some() && key(&bump).is_some());
        // …one per place: two statements of one type (`sql_query`) are not confused…
        assert_ne!(
            key(&crate::db::flight::begin()),
            key(&crate::db::flight::commit())
        );
        assert_ne!(key(&add), key(&bump));
        // …and the values do not matter.
        assert_eq!(
            key(&add),
            key(&rate_limits::add_statement("tpm:v", later, 1))
        );
        assert_eq!(
            key(&conversations::touch_statement("c", at)),
            key(&conversations::touch_statement("d", later))
        );
    }

    #[test]
    fn on_sqlite_a_fixed_statement_is_prepared_once_per_connection() {
        use diesel::connection::{Instrumentation, InstrumentationEvent};
        use std::sync::{Arc, Mutex};
        let prepared = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = prepared.clone();
        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        diesel::connection::SimpleConnection::batch_execute(
            &mut conn,
            "CREATE TABLE rate_counters (key TEXT NOT NULL, window_start TIMESTAMP NOT NULL, \
             count BIGINT NOT NULL, PRIMARY KEY (key, window_start))",
        )
        .unwrap();
        struct Count(Arc<Mutex<Vec<String>>>);
        impl Instrumentation for Count {
            fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
                if let InstrumentationEvent::CacheQuery { sql, .. } = event {
                    self.0.lock().unwrap().push(sql.to_owned());
                }
            }
        }
        conn.set_instrumentation(Count(seen));
        let at = NaiveDateTime::default();
        for (key, amount) in [("tpm:u", 1), ("tpm:v", 2), ("tpm:u", 3)] {
            super::run_on_sqlite(&mut conn, rate_limits::add_statement(key, at, amount)).unwrap();
            super::run_on_sqlite(&mut conn, rate_limits::bump_statement(key, at, 1, 100)).unwrap();
        }
        // Each prepared once (diesel's `execute` would have prepared each every time)…
        assert_eq!(
            prepared.lock().unwrap().len(),
            2,
            "{:?}",
            prepared.lock().unwrap()
        );
        // …and each run: u got 1, +1, 3, +1; v got 2, +1.
        let counts: Vec<(String, i64)> = rate_counters::table
            .select((rate_counters::key, rate_counters::count))
            .order(rate_counters::key)
            .load(&mut conn)
            .unwrap();
        assert_eq!(counts, [("tpm:u".to_owned(), 6), ("tpm:v".to_owned(), 3)]);
        // An error is the statement's, not lost with the rows it did not return.
        let clash = diesel::insert_into(rate_counters::table).values((
            rate_counters::key.eq("tpm:v"),
            rate_counters::window_start.eq(at),
            rate_counters::count.eq(1),
        ));
        assert!(super::run_on_sqlite(&mut conn, clash).is_err());
    }

    /// `statement`'s text walked (`&T`'s `to_sql`, diesel's own), and as its `to_sql` writes it.
    fn texts<DB>(
        statement: &(impl diesel::query_builder::QueryFragment<DB> + diesel::query_builder::QueryId),
        backend: &DB,
    ) -> (String, String)
    where
        DB: diesel::backend::Backend + 'static,
        DB::QueryBuilder: Default,
    {
        use diesel::query_builder::QueryBuilder as _;
        let mut walked = DB::QueryBuilder::default();
        diesel::query_builder::QueryFragment::<DB>::to_sql(&statement, &mut walked, backend)
            .unwrap();
        let mut written = DB::QueryBuilder::default();
        statement.to_sql(&mut written, backend).unwrap();
        (walked.finish(), written.finish())
    }

    #[test]
    fn a_fixed_statements_text_is_written_once_per_place_and_backend_and_copied_after() {
        let at = NaiveDateTime::default();
        // The first run of a place writes the text, the second copies it: the same text, for
        // other values…
        for (key, amount) in [("tpm:u", 1), ("tpm:v", 2)] {
            let (walked, written) = texts(&rate_limits::add_statement(key, at, amount), &Pg);
            assert_eq!(written, walked);
            assert!(walked.contains("$3"), "{walked}");
            // …for each backend apart…
            let (walked, written) = texts(&rate_limits::add_statement(key, at, amount), &Sqlite);
            assert_eq!(written, walked);
            assert!(walked.contains('?') && !walked.contains('$'), "{walked}");
        }
        // …and for each place apart: one type (`sql_query`), two texts.
        for _ in 0..2 {
            assert_eq!(texts(&crate::db::flight::begin(), &Pg).1, "BEGIN");
            assert_eq!(texts(&crate::db::flight::commit(), &Pg).1, "COMMIT");
            assert_eq!(
                texts(&crate::db::flight::commit_without_waiting(), &Pg).1,
                "SET LOCAL synchronous_commit TO off"
            );
        }
        // What diesel's `debug_query` shows is that text.
        let bump = rate_limits::bump_statement("rpm:u", at, 1, 120);
        let shown = diesel::debug_query::<Pg, _>(&bump).to_string();
        assert_eq!(
            shown.split(" -- binds").next(),
            Some(texts(&bump, &Pg).0.as_str())
        );
    }

    #[test]
    fn a_calls_pending_insert_stays_prepared() {
        let call = AiCall::pending(
            "u".into(),
            None,
            None,
            ("p".into(), "m".into()),
            false,
            NaiveDateTime::default(),
        );
        assert!(kept_prepared(
            &ai_calls::insert_pending_statement(&call),
            &Pg
        ));
    }
}
