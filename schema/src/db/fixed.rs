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
