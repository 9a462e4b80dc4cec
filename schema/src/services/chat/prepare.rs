//! Everything checked before any upstream call: the conversation's owner, the provider and
//! model, the parameters and messages, and the targets to try (the one asked for, then its
//! fallbacks).

use cloudbase_plugin_api::{ChatMessage, ChatRequest, ChatRole};

use super::ChatInput;
use crate::Error;
use crate::db::conversations as conversation_queries;
use crate::db::models::Conversation;
use crate::ports::ModelRow;
use crate::services::{App, Viewer, conversations};

const MAX_MESSAGE_CHARS: usize = 200_000;

#[derive(Clone)]
pub(super) struct Prepared {
    pub(super) provider: String,
    pub(super) model: String,
    /// The provider/model pairs to try in order: the one asked for, then its fallbacks.
    pub(super) targets: Vec<(String, String)>,
    /// The largest output cap among the targets (for the worst-case reservation).
    pub(super) max_output: Option<u32>,
    pub(super) request: ChatRequest,
    pub(super) conversation: Option<Conversation>,
    pub(super) user_message: Option<String>,
}

fn check_params(input: &ChatInput, max_output: Option<u32>) -> Result<(), Error> {
    if let Some(t) = input.temperature
        && !(0.0..=2.0).contains(&t)
    {
        return Err(Error::bad_input(
            "input.temperature",
            "temperature must be between 0 and 2",
        ));
    }
    if let Some(p) = input.top_p
        && !(p > 0.0 && p <= 1.0)
    {
        return Err(Error::bad_input(
            "input.topP",
            "topP must be greater than 0 and at most 1",
        ));
    }
    if let Some(m) = input.max_tokens {
        let cap = max_output.map_or(1_000_000, i64::from);
        if m < 1 || i64::from(m) > cap {
            return Err(Error::bad_input(
                "input.maxTokens",
                format!("maxTokens must be between 1 and {cap}"),
            ));
        }
    }
    if let Some(stop) = &input.stop
        && (stop.len() > 4 || stop.iter().any(|s| s.is_empty() || s.chars().count() > 100))
    {
        return Err(Error::bad_input(
            "input.stop",
            "at most 4 stop sequences of 1-100 characters",
        ));
    }
    Ok(())
}

fn check_text(field: &'static str, text: &str) -> Result<(), Error> {
    if text.trim().is_empty() {
        return Err(Error::bad_input(field, "must not be empty"));
    }
    if text.chars().count() > MAX_MESSAGE_CHARS {
        return Err(Error::bad_input(
            field,
            format!("must be at most {MAX_MESSAGE_CHARS} characters"),
        ));
    }
    Ok(())
}

/// Validates everything before any upstream call: the conversation's owner, provider, model,
/// parameters and messages; then lists the targets.
pub(super) async fn prepare(
    app: &App,
    viewer: &Viewer,
    input: &ChatInput,
) -> Result<Prepared, Error> {
    let conversation = match &input.conversation_id {
        Some(id) => Some(conversations::owned(&mut app.db.get().await?, viewer, id).await?),
        None => None,
    };
    let provider = input
        .provider
        .clone()
        .or_else(|| conversation.as_ref().and_then(|c| c.provider.clone()))
        .unwrap_or_else(|| app.chat.default_provider.clone());
    let model = input
        .model
        .clone()
        .or_else(|| conversation.as_ref().and_then(|c| c.model.clone()))
        .unwrap_or_else(|| app.chat.default_model.clone());
    let models = app.plugins.models();
    let info = callable(&models, &provider, &model)?;
    if let Some(key) = viewer.key.as_deref()
        && !key.allows(&provider, &model)
    {
        return Err(Error::Forbidden(format!(
            "this API key may not call `{provider}/{model}`"
        )));
    }
    check_params(input, info.info.max_output_tokens)?;
    let (messages, user_message) = messages(app, input, conversation.as_ref()).await?;
    let request = ChatRequest {
        model: model.clone(),
        messages,
        temperature: input.temperature,
        top_p: input.top_p,
        max_tokens: input.max_tokens.and_then(|m| u32::try_from(m).ok()),
        stop: input.stop.clone().unwrap_or_default(),
        stream: false,
    };
    let (targets, max_output) = targets(app, &models, info);
    Ok(Prepared {
        provider,
        model,
        targets,
        max_output,
        request,
        conversation,
        user_message,
    })
}

/// The provider and model a single model name stands for: a configured alias, a
/// `provider/model` pair, or a bare model id that exactly one provider serves. `NOT_FOUND` when
/// nothing matches; `BAD_USER_INPUT` when a bare id is served by several providers.
pub fn resolve_model(app: &App, name: &str) -> Result<(String, String), Error> {
    let name = app
        .chat
        .model_aliases
        .get(name)
        .map_or(name, String::as_str);
    let models = app.plugins.models();
    // Model ids may hold a `/` themselves (`meta-llama/Llama-3`): match whole names.
    if let Some(row) = models.iter().find(|m| {
        name.strip_prefix(m.provider.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            == Some(m.info.id.as_str())
    }) {
        return Ok((row.provider.clone(), row.info.id.clone()));
    }
    let serving: Vec<&ModelRow> = models.iter().filter(|m| m.info.id == name).collect();
    match serving.as_slice() {
        [row] => Ok((row.provider.clone(), row.info.id.clone())),
        [] => Err(Error::NotFound("model")),
        several => Err(Error::bad_input(
            "model",
            format!(
                "`{name}` is served by several providers; name one: {}",
                several
                    .iter()
                    .map(|m| format!("{}/{}", m.provider, m.info.id))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// The model row of `provider`/`model`, or which of the two is unknown.
fn callable<'m>(
    models: &'m [ModelRow],
    provider: &str,
    model: &str,
) -> Result<&'m ModelRow, Error> {
    if !models.iter().any(|m| m.provider == provider) {
        return Err(Error::bad_input(
            "input.provider",
            format!("unknown provider `{provider}`; see `models`"),
        ));
    }
    models
        .iter()
        .find(|m| m.provider == provider && m.info.id == model)
        .ok_or_else(|| {
            Error::bad_input(
                "input.model",
                format!("provider `{provider}` has no model `{model}`; see `models`"),
            )
        })
}

/// The messages to send: the system prompt, then either the caller's whole list or the
/// conversation's history and the new message (returned too: the turn appends it).
async fn messages(
    app: &App,
    input: &ChatInput,
    conversation: Option<&Conversation>,
) -> Result<(Vec<ChatMessage>, Option<String>), Error> {
    let mut messages = Vec::new();
    if let Some(system) = &input.system_prompt {
        check_text("input.systemPrompt", system)?;
        messages.push(ChatMessage {
            role: ChatRole::System,
            content: system.clone(),
        });
    }
    match (&input.messages, &input.message) {
        (Some(_), _) if input.conversation_id.is_some() => Err(Error::bad_input(
            "input.messages",
            "use `message` to continue a conversation, not `messages`",
        )),
        (Some(_), Some(_)) => Err(Error::bad_input(
            "input.message",
            "give either `messages` or `message`, not both",
        )),
        (Some(list), None) => {
            if list.is_empty() {
                return Err(Error::bad_input(
                    "input.messages",
                    "messages must not be empty",
                ));
            }
            for m in list {
                check_text("input.messages", &m.content)?;
            }
            messages.extend(list.iter().cloned());
            Ok((messages, None))
        }
        (None, Some(text)) => {
            check_text("input.message", text)?;
            if let Some(c) = conversation {
                let mut conn = app.db.get().await?;
                for m in conversation_queries::messages(&mut conn, &app.sealer, &c.id, None, 10_000)
                    .await?
                {
                    messages.push(ChatMessage {
                        role: m.role.into(),
                        content: m.content,
                    });
                }
            }
            messages.push(ChatMessage {
                role: ChatRole::User,
                content: text.clone(),
            });
            Ok((messages, Some(text.clone())))
        }
        (None, None) => Err(Error::bad_input(
            "input.message",
            "give `message` (or a `messages` list)",
        )),
    }
}

/// The provider/model pairs to try in order (the one asked for, then its configured fallbacks
/// that are callable), and the largest output cap among them.
fn targets(
    app: &App,
    models: &[ModelRow],
    first: &ModelRow,
) -> (Vec<(String, String)>, Option<u32>) {
    let mut targets = vec![(first.provider.clone(), first.info.id.clone())];
    let mut max_output = first.info.max_output_tokens;
    let fallbacks = app
        .chat
        .fallbacks
        .get(&format!("{}/{}", first.provider, first.info.id));
    for fallback in fallbacks.into_iter().flatten() {
        let row = fallback.split_once('/').and_then(|(p, m)| {
            models
                .iter()
                .find(|row| row.provider == p && row.info.id == m)
        });
        match row {
            Some(row) => {
                // No cap on either side means no cap at all.
                max_output = max_output
                    .zip(row.info.max_output_tokens)
                    .map(|(a, b)| a.max(b));
                targets.push((row.provider.clone(), row.info.id.clone()));
            }
            None => tracing::warn!(%fallback, "fallback is not a callable provider/model; skipped"),
        }
    }
    (targets, max_output)
}
