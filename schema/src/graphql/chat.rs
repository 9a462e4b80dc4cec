//! Chat: the `chat` mutation and the `chatStream` subscription.

use std::sync::Arc;

use async_graphql::futures_util::{Stream, StreamExt};
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject, Subscription};
use cloudbase_plugin_api::{ChatMessage, ChatRole as ApiRole};

use super::ContextExt;
use super::ai_calls::AiCall;
use crate::Error;
use crate::services::App;
use crate::services::chat::{self, ChatChunk, ChatInput as ServiceInput, ChatOutcome};

/// Who said a message.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatRole {
    /// Instructions.
    System,
    /// The person.
    User,
    /// The model.
    Assistant,
}

/// One message of a stateless chat.
#[derive(InputObject)]
pub struct ChatMessageInput {
    /// Who said it.
    pub role: ChatRole,
    /// What was said.
    pub content: String,
}

/// A chat request. Give `messages` (the whole conversation, stateless), or `message` alone, or
/// `conversationId` and `message` to continue a stored conversation.
#[derive(InputObject, Default)]
pub struct ChatInput {
    /// Provider instance (see `models`); the server's default when omitted.
    pub provider: Option<String>,
    /// Model id; the conversation's or the server's default when omitted.
    pub model: Option<String>,
    /// The whole conversation so far (stateless use).
    pub messages: Option<Vec<ChatMessageInput>>,
    /// A stored conversation to continue.
    pub conversation_id: Option<ID>,
    /// The new user message.
    pub message: Option<String>,
    /// Instructions placed before everything else.
    pub system_prompt: Option<String>,
    /// Sampling temperature, 0–2.
    pub temperature: Option<f64>,
    /// Nucleus sampling, (0, 1].
    pub top_p: Option<f64>,
    /// Completion cap in tokens (1 to the model's limit).
    pub max_tokens: Option<i32>,
    /// Up to 4 stop sequences.
    pub stop: Option<Vec<String>>,
}

impl From<ChatInput> for ServiceInput {
    fn from(i: ChatInput) -> Self {
        ServiceInput {
            provider: i.provider,
            model: i.model,
            messages: i.messages.map(|list| {
                list.into_iter()
                    .map(|m| ChatMessage {
                        role: match m.role {
                            ChatRole::System => ApiRole::System,
                            ChatRole::User => ApiRole::User,
                            ChatRole::Assistant => ApiRole::Assistant,
                        },
                        content: m.content,
                    })
                    .collect()
            }),
            conversation_id: i.conversation_id.map(|id| id.0),
            message: i.message,
            system_prompt: i.system_prompt,
            temperature: i.temperature,
            top_p: i.top_p,
            max_tokens: i.max_tokens,
            stop: i.stop,
        }
    }
}

/// A finished chat.
#[derive(SimpleObject)]
pub struct ChatResult {
    /// The answer.
    pub content: String,
    /// The model's reasoning, for models that expose it.
    pub reasoning: Option<String>,
    /// Why generation stopped (`stop`, `length`, ...).
    pub finish_reason: Option<String>,
    /// The call record: tokens, latency, cost.
    pub ai_call: AiCall,
}

impl From<ChatOutcome> for ChatResult {
    fn from(o: ChatOutcome) -> Self {
        Self {
            content: o.content,
            reasoning: o.reasoning,
            finish_reason: o.finish_reason,
            ai_call: o.call.into(),
        }
    }
}

/// One item of `chatStream`: text deltas, then a last item with `done: true` and the record.
#[derive(SimpleObject)]
pub struct ChatStreamEvent {
    /// The call being streamed.
    pub ai_call_id: ID,
    /// New answer text.
    pub delta: String,
    /// New reasoning text.
    pub reasoning_delta: String,
    /// Set on the last item.
    pub done: bool,
    /// On the last item: why generation stopped.
    pub finish_reason: Option<String>,
    /// On the last item: the finished record, with usage and cost.
    pub ai_call: Option<AiCall>,
}

impl From<ChatChunk> for ChatStreamEvent {
    fn from(chunk: ChatChunk) -> Self {
        match chunk {
            ChatChunk::Delta {
                call_id,
                content,
                reasoning,
            } => Self {
                ai_call_id: ID(call_id),
                delta: content,
                reasoning_delta: reasoning,
                done: false,
                finish_reason: None,
                ai_call: None,
            },
            ChatChunk::Done(outcome) => Self {
                ai_call_id: ID(outcome.call.id.clone()),
                delta: String::new(),
                reasoning_delta: String::new(),
                done: true,
                finish_reason: outcome.finish_reason,
                ai_call: Some(outcome.call.into()),
            },
        }
    }
}

/// Chat mutations.
#[derive(Default)]
pub struct ChatMutation;

#[Object]
impl ChatMutation {
    /// Asks a model and waits for the whole answer. Every call is recorded and priced.
    async fn chat(&self, ctx: &Context<'_>, input: ChatInput) -> Result<ChatResult, Error> {
        let meta = ctx.request_meta();
        chat::chat(&ctx.shared_app()?, ctx.chat_viewer()?, &meta, input.into())
            .await
            .map(Into::into)
    }
}

/// Chat subscriptions.
#[derive(Default)]
pub struct ChatSubscription;

#[Subscription]
impl ChatSubscription {
    /// Asks a model and streams the answer. Closing the subscription cancels the upstream call;
    /// the call is then recorded as `CANCELLED`.
    async fn chat_stream(
        &self,
        ctx: &Context<'_>,
        input: ChatInput,
    ) -> Result<impl Stream<Item = async_graphql::Result<ChatStreamEvent>> + use<>, Error> {
        let app = ctx
            .data::<Arc<App>>()
            .map_err(|_| Error::Internal("schema built without App".into()))?
            .clone();
        let viewer = ctx.chat_viewer()?.clone();
        let meta = ctx.request_meta();
        let stream = chat::chat_stream(app, &viewer, &meta, input.into()).await?;
        Ok(stream.map(|item| {
            item.map(ChatStreamEvent::from)
                .map_err(async_graphql::Error::from)
        }))
    }
}
