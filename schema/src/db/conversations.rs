//! Queries on `conversations` and `messages` (whose text is sealed here, on its way in and out).

use chrono::NaiveDateTime;
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{QueryFragment, QueryId};
use diesel::sqlite::Sqlite;
use diesel_async::RunQueryDsl;

use super::fixed::fixed_shape;
use super::models::{Conversation, Message};
use super::schema::{conversations, messages};
use super::{DbConn, db_run};
use crate::services::sealing::{self, Column, Sealer};

/// Inserts a conversation.
pub async fn insert(conn: &mut DbConn, conversation: &Conversation) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::insert_into(conversations::table)
            .values(conversation)
            .execute(c)
            .await
    })
}

/// One conversation.
pub async fn find(conn: &mut DbConn, id: &str) -> QueryResult<Conversation> {
    db_run!(conn, |c| {
        conversations::table
            .find(id)
            .select(Conversation::as_select())
            .get_result(c)
            .await
    })
}

/// A user's conversations, most recently active first, after the cursor `(updated_at, id)`.
pub async fn page(
    conn: &mut DbConn,
    user_id: &str,
    after: Option<(NaiveDateTime, String)>,
    limit: i64,
) -> QueryResult<Vec<Conversation>> {
    db_run!(conn, |c| {
        let mut query = conversations::table
            .filter(conversations::user_id.eq(user_id))
            .select(Conversation::as_select())
            .order((conversations::updated_at.desc(), conversations::id.desc()))
            .limit(limit)
            .into_boxed();
        if let Some((at, id)) = &after {
            query = query.filter(
                conversations::updated_at
                    .lt(*at)
                    .or(conversations::updated_at
                        .eq(*at)
                        .and(conversations::id.lt(id))),
            );
        }
        query.load(c).await
    })
}

/// Renames a conversation.
pub async fn rename(
    conn: &mut DbConn,
    id: &str,
    title: &str,
    now: NaiveDateTime,
) -> QueryResult<Conversation> {
    db_run!(conn, |c| {
        diesel::update(conversations::table.find(id))
            .set((
                conversations::title.eq(title),
                conversations::updated_at.eq(now),
            ))
            .returning(Conversation::as_returning())
            .get_result(c)
            .await
    })
}

/// Marks a conversation active now.
pub async fn touch(conn: &mut DbConn, id: &str, now: NaiveDateTime) -> QueryResult<usize> {
    db_run!(conn, |c| touch_statement(id, now).execute(c).await)
}

/// [`touch`]'s update, run with every turn: prepared once per connection (diesel prepares an
/// `UPDATE` again on every run unless told its shape is fixed).
pub(super) fn touch_statement(
    id: &str,
    now: NaiveDateTime,
) -> impl QueryFragment<Pg> + QueryFragment<Sqlite> + QueryId + Send + '_ {
    fixed_shape!(
        diesel::update(conversations::table.find(id)).set(conversations::updated_at.eq(now))
    )
}

/// Deletes a conversation and its messages (call records keep their data, unlinked).
pub async fn delete(conn: &mut DbConn, id: &str) -> QueryResult<usize> {
    db_run!(conn, |c| {
        diesel::delete(conversations::table.find(id))
            .execute(c)
            .await
    })
}

/// Appends a message, its text and reasoning sealed.
pub async fn insert_message(
    conn: &mut DbConn,
    sealer: &Sealer,
    new: &Message,
) -> QueryResult<usize> {
    let sealed = Message {
        content: sealer.seal(Column::MessageContent, &new.id, &new.content),
        reasoning: new
            .reasoning
            .as_deref()
            .map(|r| sealer.seal(Column::MessageReasoning, &new.id, r)),
        ..new.clone()
    };
    db_run!(conn, |c| {
        diesel::insert_into(messages::table)
            .values(&sealed)
            .execute(c)
            .await
    })
}

/// Messages of a conversation in order, after the message id `after`, opened.
pub async fn messages(
    conn: &mut DbConn,
    sealer: &Sealer,
    conversation_id: &str,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<Message>> {
    db_run!(conn, |c| {
        let mut query = messages::table
            .filter(messages::conversation_id.eq(conversation_id))
            .select(Message::as_select())
            .order(messages::id.asc())
            .limit(limit)
            .into_boxed();
        if let Some(a) = after {
            query = query.filter(messages::id.gt(a));
        }
        query.load(c).await
    })?
    .into_iter()
    .map(|m| open_message(sealer, m))
    .collect()
}

fn open_message(sealer: &Sealer, mut m: Message) -> QueryResult<Message> {
    m.content = sealer
        .open(Column::MessageContent, &m.id, m.content)
        .map_err(sealing::db_error)?;
    m.reasoning = match m.reasoning {
        Some(r) => Some(
            sealer
                .open(Column::MessageReasoning, &m.id, r)
                .map_err(sealing::db_error)?,
        ),
        None => None,
    };
    Ok(m)
}
