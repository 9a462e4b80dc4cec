//! Conversations: create, list, rename, delete, and read their messages.

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use super::ContextExt;
use super::view::view;
use crate::Error;
use crate::db::models::{Conversation as ConversationRow, Message as MessageRow};
use crate::domain::MessageRole;
use crate::services::conversations;

view!(
    /// Conversation as the API shows it.
    Conversation(ConversationRow)
);

/// A stored conversation.
#[Object]
impl Conversation {
    /// Stable id.
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }
    /// Shown in the history list.
    async fn title(&self) -> &str {
        &self.title
    }
    /// Default provider for new turns.
    async fn provider(&self) -> Option<&str> {
        self.provider.as_deref()
    }
    /// Default model for new turns.
    async fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }
    /// When it was started.
    async fn created_at(&self) -> DateTime<Utc> {
        self.created_at.and_utc()
    }
    /// Last turn or rename.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.updated_at.and_utc()
    }
    /// The messages, oldest first.
    async fn messages(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1–100 (default 20).")] first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, Message, EmptyFields, EmptyFields>, Error> {
        let (items, more) =
            conversations::messages(ctx.app()?, ctx.viewer()?, self, first, after.as_deref())
                .await?;
        let mut connection = Connection::new(after.is_some(), more);
        connection
            .edges
            .extend(items.into_iter().map(|m| Edge::new(m.id.clone(), m.into())));
        Ok(connection)
    }
}

view!(
    /// Message as the API shows it.
    Message(MessageRow)
);

/// A message of a conversation.
#[Object]
impl Message {
    /// Stable id (sorts in order).
    async fn id(&self) -> ID {
        ID(self.id.clone())
    }
    /// Who wrote it.
    async fn role(&self) -> MessageRole {
        self.role
    }
    /// The text.
    async fn content(&self) -> &str {
        &self.content
    }
    /// The model's reasoning, for assistant messages of reasoning models.
    async fn reasoning(&self) -> Option<&str> {
        self.reasoning.as_deref()
    }
    /// The call that produced or answered it.
    async fn ai_call_id(&self) -> Option<ID> {
        self.ai_call_id.clone().map(ID)
    }
    /// When it was added.
    async fn created_at(&self) -> DateTime<Utc> {
        self.created_at.and_utc()
    }
}

/// Conversation queries.
#[derive(Default)]
pub struct ConversationsQuery;

#[Object]
impl ConversationsQuery {
    /// Your conversations, most recently active first.
    async fn conversations(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1–100 (default 20).")] first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, Conversation, EmptyFields, EmptyFields>, Error> {
        let page = conversations::list(ctx.app()?, ctx.viewer()?, first, after.as_deref()).await?;
        let mut connection = Connection::new(after.is_some(), page.has_next_page);
        connection.edges.extend(
            page.items
                .into_iter()
                .map(|c| Edge::new(conversations::cursor(&c), c.into())),
        );
        Ok(connection)
    }

    /// One conversation: yours, or any for an admin (support).
    async fn conversation(&self, ctx: &Context<'_>, id: ID) -> Result<Conversation, Error> {
        conversations::get(ctx.app()?, ctx.viewer()?, &id)
            .await
            .map(Into::into)
    }
}

/// Conversation mutations.
#[derive(Default)]
pub struct ConversationsMutation;

#[Object]
impl ConversationsMutation {
    /// Starts a conversation; chat in it with `chat(input: {conversationId, message})`.
    async fn create_conversation(
        &self,
        ctx: &Context<'_>,
        title: Option<String>,
        provider: Option<String>,
        model: Option<String>,
    ) -> Result<Conversation, Error> {
        conversations::create(ctx.app()?, ctx.viewer()?, title.as_deref(), provider, model)
            .await
            .map(Into::into)
    }

    /// Renames one of your conversations.
    async fn rename_conversation(
        &self,
        ctx: &Context<'_>,
        id: ID,
        title: String,
    ) -> Result<Conversation, Error> {
        conversations::rename(ctx.app()?, ctx.viewer()?, &id, &title)
            .await
            .map(Into::into)
    }

    /// Deletes one of your conversations and its messages (call records stay, for accounting).
    async fn delete_conversation(&self, ctx: &Context<'_>, id: ID) -> Result<bool, Error> {
        conversations::delete(ctx.app()?, ctx.viewer()?, &id).await?;
        Ok(true)
    }
}
