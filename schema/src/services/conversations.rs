//! Conversations for the chat and history screens: create, list, rename, delete, read. Only
//! the owner sees a conversation; admins may read any, for support.

use chrono::NaiveDateTime;

use super::{App, Viewer, validate};
use crate::Error;
use crate::db::DbConn;
use crate::db::conversations as queries;
use crate::db::models::{Conversation, Message};
use crate::domain::MessageRole;
use crate::services::sealing::Sealer;

fn not_found(e: diesel::result::Error) -> Error {
    match e {
        diesel::result::Error::NotFound => Error::NotFound("conversation"),
        other => other.into(),
    }
}

/// A conversation the viewer may read: their own, or any for an admin. Someone else's
/// conversation is reported as not found, so ids cannot be probed.
pub async fn readable(conn: &mut DbConn, viewer: &Viewer, id: &str) -> Result<Conversation, Error> {
    validate::id("id", id)?;
    let conversation = queries::find(conn, id).await.map_err(not_found)?;
    if conversation.user_id != viewer.user_id && !viewer.is_admin() {
        return Err(Error::NotFound("conversation"));
    }
    Ok(conversation)
}

/// A conversation the viewer owns (to write to it).
pub async fn owned(conn: &mut DbConn, viewer: &Viewer, id: &str) -> Result<Conversation, Error> {
    validate::id("input.conversationId", id)?;
    let conversation = queries::find(conn, id).await.map_err(not_found)?;
    if conversation.user_id != viewer.user_id {
        return Err(Error::NotFound("conversation"));
    }
    Ok(conversation)
}

fn title(field: &'static str, raw: &str) -> Result<String, Error> {
    let t = raw.trim();
    if t.is_empty() || t.chars().count() > 200 || t.chars().any(char::is_control) {
        return Err(Error::bad_input(
            field,
            "title must be 1-200 printable characters",
        ));
    }
    Ok(t.to_owned())
}

/// Starts a conversation.
pub async fn create(
    app: &App,
    viewer: &Viewer,
    title_raw: Option<&str>,
    provider: Option<String>,
    model: Option<String>,
) -> Result<Conversation, Error> {
    let title = title("title", title_raw.unwrap_or("New conversation"))?;
    let now = app.now();
    let conversation = Conversation {
        id: uuid::Uuid::now_v7().to_string(),
        user_id: viewer.user_id.clone(),
        title,
        provider,
        model,
        created_at: now,
        updated_at: now,
    };
    let mut conn = app.db.get().await?;
    queries::insert(&mut conn, &conversation).await?;
    Ok(conversation)
}

/// A page of the viewer's conversations, most recently active first.
pub struct ConversationPage {
    /// The conversations.
    pub items: Vec<Conversation>,
    /// Whether more follow.
    pub has_next_page: bool,
}

/// Encodes a list cursor.
pub fn cursor(c: &Conversation) -> String {
    format!("{}:{}", c.updated_at.and_utc().timestamp_micros(), c.id)
}

fn parse_cursor(raw: &str) -> Result<(NaiveDateTime, String), Error> {
    let bad = || Error::bad_input("after", "invalid cursor");
    let (micros, id) = raw.split_once(':').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let at = chrono::DateTime::from_timestamp_micros(micros)
        .ok_or_else(bad)?
        .naive_utc();
    validate::id("after", id)?;
    Ok((at, id.to_owned()))
}

/// Lists the viewer's own conversations.
pub async fn list(
    app: &App,
    viewer: &Viewer,
    first: Option<i32>,
    after: Option<&str>,
) -> Result<ConversationPage, Error> {
    let limit = validate::page_size(first)?;
    let after = after.map(parse_cursor).transpose()?;
    let mut conn = app.db.get().await?;
    let mut items = queries::page(&mut conn, &viewer.user_id, after, limit + 1).await?;
    let has_next_page = items.len() as i64 > limit;
    items.truncate(limit as usize);
    Ok(ConversationPage {
        items,
        has_next_page,
    })
}

/// One conversation.
pub async fn get(app: &App, viewer: &Viewer, id: &str) -> Result<Conversation, Error> {
    let mut conn = app.db.get().await?;
    readable(&mut conn, viewer, id).await
}

/// Renames one of the viewer's conversations.
pub async fn rename(
    app: &App,
    viewer: &Viewer,
    id: &str,
    new_title: &str,
) -> Result<Conversation, Error> {
    let title = title("title", new_title)?;
    let mut conn = app.db.get().await?;
    owned(&mut conn, viewer, id).await?;
    Ok(queries::rename(&mut conn, id, &title, app.now()).await?)
}

/// Deletes one of the viewer's conversations and its messages.
pub async fn delete(app: &App, viewer: &Viewer, id: &str) -> Result<(), Error> {
    let mut conn = app.db.get().await?;
    owned(&mut conn, viewer, id).await?;
    queries::delete(&mut conn, id).await?;
    Ok(())
}

/// Messages of a conversation the viewer may read, in order.
pub async fn messages(
    app: &App,
    viewer: &Viewer,
    conversation: &Conversation,
    first: Option<i32>,
    after: Option<&str>,
) -> Result<(Vec<Message>, bool), Error> {
    if conversation.user_id != viewer.user_id && !viewer.is_admin() {
        return Err(Error::NotFound("conversation"));
    }
    let limit = validate::page_size(first)?;
    if let Some(a) = after {
        validate::id("after", a)?;
    }
    let mut conn = app.db.get().await?;
    let mut items =
        queries::messages(&mut conn, &app.sealer, &conversation.id, after, limit + 1).await?;
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    Ok((items, more))
}

/// A turn of a conversation: the user's message and the answer of the call that took it.
#[derive(Debug, Clone)]
pub struct Turn<'a> {
    /// The conversation.
    pub conversation_id: &'a str,
    /// The call that answered.
    pub ai_call_id: &'a str,
    /// The user's message.
    pub question: &'a str,
    /// The model's answer.
    pub answer: &'a str,
    /// The model's reasoning (empty if none).
    pub reasoning: &'a str,
    /// When the call finished (UTC).
    pub at: NaiveDateTime,
}

/// Appends a turn (two messages) to its conversation and marks the conversation updated, inside
/// the caller's transaction (the one that finishes the call).
pub async fn append_turn(tx: &mut DbConn, sealer: &Sealer, turn: &Turn<'_>) -> Result<(), Error> {
    for (role, content, reasoning) in [
        (MessageRole::User, turn.question, None),
        (MessageRole::Assistant, turn.answer, Some(turn.reasoning)),
    ] {
        let message = Message {
            id: uuid::Uuid::now_v7().to_string(),
            conversation_id: turn.conversation_id.to_owned(),
            role,
            content: content.to_owned(),
            reasoning: reasoning.filter(|r| !r.is_empty()).map(str::to_owned),
            ai_call_id: Some(turn.ai_call_id.to_owned()),
            created_at: turn.at,
        };
        queries::insert_message(tx, sealer, &message).await?;
    }
    queries::touch(tx, turn.conversation_id, turn.at).await?;
    Ok(())
}
