//! Statements diesel would prepare again on every run, kept prepared instead.
//!
//! Diesel never caches an `UPDATE` or an upsert's `DO UPDATE` prepared statement, because a
//! changeset of `Option` fields skips its `None`s and so changes shape from one run to the next.
//! The statements of the call path have one shape (their changesets store `None` as `NULL`), and
//! preparing them again was a fifth of the instructions of a call on SQLite (`bench/RESULTS.md`).
//! [`FixedShape`] tells the statement cache so.

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::QueryResult;

/// A statement whose SQL text depends on its type alone: never on its values (no changeset
/// that skips `None` fields, no `IN` list, no batch of rows of varying length).
#[derive(Debug, Clone, Copy)]
pub struct FixedShape<Q>(pub Q);

impl<Q, DB> QueryFragment<DB> for FixedShape<Q>
where
    DB: Backend,
    Q: QueryFragment<DB>,
{
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Q: QueryId> QueryId for FixedShape<Q> {
    type QueryId = FixedShape<Q::QueryId>;
    const HAS_STATIC_QUERY_ID: bool = Q::HAS_STATIC_QUERY_ID;
}

impl<Q: Query> Query for FixedShape<Q> {
    type SqlType = Q::SqlType;
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
