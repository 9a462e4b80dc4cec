//! The AI-call workflow, in one place: validate → record `PENDING` → call the provider → price →
//! finish the record (and append the conversation turn) in one transaction. Streaming uses the
//! same steps; a stream dropped by its client is finished as `CANCELLED`, never lost.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use cloudbase_plugin_api::{ChatMessage, ChatRequest, ChatRole, StreamEvent, Usage};
use futures_util::stream::{BoxStream, StreamExt};

use super::cache::{CachedReply, ResponseCache};
use super::{
    App, RequestMeta, Viewer, admission, budgets, conversations, plugins, pricing, rate_limits,
};
use crate::Error;
use crate::db::ai_calls::{self, Finish};
use crate::db::models::{AiCall, Conversation, Message};
use crate::db::{budgets as budget_queries, conversations as conversation_queries, prices};
use crate::events::Event;

/// Chat defaults and switches, from config.
#[derive(Debug, Clone)]
pub struct ChatSettings {
    /// Provider instance used when a chat names none.
    pub default_provider: String,
    /// Model used when a chat names none.
    pub default_model: String,
    /// Keep prompts and replies in call records (off by default; they live in conversations).
    pub log_prompts: bool,
    /// Fallbacks per model: `"provider/model"` → the `"provider/model"`s to try, in order, when
    /// it fails (not for bad input).
    pub fallbacks: BTreeMap<String, Vec<String>>,
}

impl Default for ChatSettings {
    fn default() -> Self {
        Self {
            default_provider: "mock".into(),
            default_model: "mock-echo".into(),
            log_prompts: false,
            fallbacks: BTreeMap::new(),
        }
    }
}

/// One chat request, as the API takes it.
#[derive(Debug, Clone, Default)]
pub struct ChatInput {
    /// Provider instance (default from config).
    pub provider: Option<String>,
    /// Model (default from config, or the conversation's).
    pub model: Option<String>,
    /// A whole conversation to complete (stateless use).
    pub messages: Option<Vec<ChatMessage>>,
    /// A stored conversation to continue with `message`.
    pub conversation_id: Option<String>,
    /// The new user message.
    pub message: Option<String>,
    /// Instructions placed first.
    pub system_prompt: Option<String>,
    /// 0–2.
    pub temperature: Option<f64>,
    /// (0, 1].
    pub top_p: Option<f64>,
    /// 1 to the model's output cap.
    pub max_tokens: Option<i32>,
    /// Up to 4 stop sequences.
    pub stop: Option<Vec<String>>,
}

/// What a finished call returns.
#[derive(Debug, Clone)]
pub struct ChatOutcome {
    /// The answer.
    pub content: String,
    /// Reasoning, for models that expose it.
    pub reasoning: Option<String>,
    /// Why generation stopped.
    pub finish_reason: Option<String>,
    /// The call record.
    pub call: AiCall,
}

/// One item of a streamed chat.
#[derive(Debug, Clone)]
pub enum ChatChunk {
    /// New text.
    Delta {
        /// The call being streamed.
        call_id: String,
        /// Answer text.
        content: String,
        /// Reasoning text.
        reasoning: String,
    },
    /// The last item: the finished call record.
    Done(Box<ChatOutcome>),
}

const MAX_MESSAGE_CHARS: usize = 200_000;

struct Prepared {
    provider: String,
    model: String,
    /// The provider/model pairs to try in order: the one asked for, then its fallbacks.
    targets: Vec<(String, String)>,
    /// The largest output cap among the targets (for the worst-case reservation).
    max_output: Option<u32>,
    request: ChatRequest,
    conversation: Option<Conversation>,
    user_message: Option<String>,
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

/// Validates everything before any upstream call: provider, model, parameters, messages, and
/// the conversation's owner.
async fn prepare(app: &App, viewer: &Viewer, input: &ChatInput) -> Result<Prepared, Error> {
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
    if !models.iter().any(|m| m.provider == provider) {
        return Err(Error::bad_input(
            "input.provider",
            format!("unknown provider `{provider}`; see `models`"),
        ));
    }
    let Some(info) = models
        .iter()
        .find(|m| m.provider == provider && m.info.id == model)
    else {
        return Err(Error::bad_input(
            "input.model",
            format!("provider `{provider}` has no model `{model}`; see `models`"),
        ));
    };
    check_params(input, info.info.max_output_tokens)?;

    let mut messages = Vec::new();
    if let Some(system) = &input.system_prompt {
        check_text("input.systemPrompt", system)?;
        messages.push(ChatMessage {
            role: ChatRole::System,
            content: system.clone(),
        });
    }
    let user_message = match (&input.messages, &input.message) {
        (Some(_), Some(_)) | (Some(_), None) if input.conversation_id.is_some() => {
            return Err(Error::bad_input(
                "input.messages",
                "use `message` to continue a conversation, not `messages`",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(Error::bad_input(
                "input.message",
                "give either `messages` or `message`, not both",
            ));
        }
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
            None
        }
        (None, Some(text)) => {
            check_text("input.message", text)?;
            if let Some(c) = &conversation {
                let mut conn = app.db.get().await?;
                for m in conversation_queries::messages(&mut conn, &c.id, None, 10_000).await? {
                    let role = match m.role.as_str() {
                        "SYSTEM" => ChatRole::System,
                        "ASSISTANT" => ChatRole::Assistant,
                        _ => ChatRole::User,
                    };
                    messages.push(ChatMessage {
                        role,
                        content: m.content,
                    });
                }
            }
            messages.push(ChatMessage {
                role: ChatRole::User,
                content: text.clone(),
            });
            Some(text.clone())
        }
        (None, None) => {
            return Err(Error::bad_input(
                "input.message",
                "give `message` (or a `messages` list)",
            ));
        }
    };
    let request = ChatRequest {
        model: model.clone(),
        messages,
        temperature: input.temperature,
        top_p: input.top_p,
        max_tokens: input.max_tokens.and_then(|m| u32::try_from(m).ok()),
        stop: input.stop.clone().unwrap_or_default(),
        stream: false,
    };
    let mut targets = vec![(provider.clone(), model.clone())];
    let mut max_output = info.info.max_output_tokens;
    let fallbacks = app.chat.fallbacks.get(&format!("{provider}/{model}"));
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

/// Inserts the `PENDING` record, on the call path ([`crate::db::on_call_path`]).
async fn open_record(
    app: &App,
    viewer: &Viewer,
    meta: &RequestMeta,
    p: &Prepared,
    stream: bool,
    tokens_per_minute: Option<i64>,
) -> Result<Opened, Error> {
    crate::db::on_call_path(insert_pending(
        app,
        viewer,
        meta,
        p,
        stream,
        tokens_per_minute,
    ))
    .await
}

async fn insert_pending(
    app: &App,
    viewer: &Viewer,
    meta: &RequestMeta,
    p: &Prepared,
    stream: bool,
    tokens_per_minute: Option<i64>,
) -> Result<Opened, Error> {
    let call = AiCall {
        id: uuid::Uuid::now_v7().to_string(),
        user_id: viewer.user_id.clone(),
        conversation_id: p.conversation.as_ref().map(|c| c.id.clone()),
        request_id: Some(meta.request_id.clone()).filter(|r| !r.is_empty()),
        provider: p.provider.clone(),
        model: p.model.clone(),
        stream,
        status: "PENDING".into(),
        error_code: None,
        error_message: None,
        prompt_tokens: 0,
        cached_prompt_tokens: 0,
        completion_tokens: 0,
        usage_source: None,
        started_at: app.now(),
        finished_at: None,
        latency_ms: None,
        ttft_ms: None,
        upstream_ms: None,
        price_id: None,
        cost_micros: 0,
        currency: None,
        priced: false,
        cached: false,
        attempts: serde_json::json!([]),
        prompt_log: None,
    };
    // One connection for the lookups and the insert (never two at once: DESIGN §9). A call with
    // no budget is then one INSERT; a call with budgets reserves in the same transaction.
    let mut conn = app.db.get().await?;
    let mut prices_by_target = Vec::with_capacity(p.targets.len());
    for (provider, model) in &p.targets {
        prices_by_target.push(prices::in_force(&mut conn, provider, model, call.started_at).await?);
    }
    let applicable = budget_queries::applicable(&mut conn, &call.user_id).await?;
    let price = prices_by_target.first().cloned().flatten();
    if applicable.is_empty() {
        conn.write(async |c| Ok(ai_calls::insert(c, &call).await?))
            .await?;
    } else {
        let worst = worst_case(&p.request, p.max_output, &prices_by_target);
        let currency = price.as_ref().map(|p| p.currency.clone());
        conn.transaction(async |tx| {
            ai_calls::insert(tx, &call).await?;
            budgets::admit(tx, app, &call, &applicable, worst, currency.as_deref()).await
        })
        .await?;
    }
    drop(conn);
    app.events.publish(Event::AiCallUpdated {
        call_id: call.id.clone(),
        user_id: call.user_id.clone(),
        provider: call.provider.clone(),
        model: call.model.clone(),
    });
    Ok(Opened {
        price: KnownPrice {
            provider: call.provider.clone(),
            model: call.model.clone(),
            price,
        },
        reserved: !applicable.is_empty(),
        tokens_per_minute,
        call,
    })
}

/// Output cap assumed when neither the request nor the model gives one.
const DEFAULT_OUTPUT_CAP: u64 = 16_384;

/// The most a call could cost: every prompt byte a token (no tokenizer makes more tokens than
/// bytes), the full output cap, at the dearest price among the targets.
fn worst_case(
    request: &ChatRequest,
    max_output: Option<u32>,
    prices_by_target: &[Option<crate::db::models::Price>],
) -> budgets::Worst {
    let prompt: u64 = request
        .messages
        .iter()
        .map(|m| m.content.len() as u64 + 8)
        .sum::<u64>()
        + 8;
    let output = request
        .max_tokens
        .map(u64::from)
        .or(max_output.map(u64::from))
        .unwrap_or(DEFAULT_OUTPUT_CAP);
    let usage = Usage {
        prompt_tokens: prompt,
        cached_prompt_tokens: 0,
        completion_tokens: output,
    };
    let micros = prices_by_target
        .iter()
        .flatten()
        .map(|p| pricing::cost_micros(&usage, p))
        .max()
        .unwrap_or(0);
    budgets::Worst {
        micros,
        tokens: i64::try_from(prompt + output).unwrap_or(i64::MAX),
    }
}

/// The price in force at a call's start, for the provider and model first asked.
#[derive(Debug, Clone)]
struct KnownPrice {
    provider: String,
    model: String,
    price: Option<crate::db::models::Price>,
}

/// A `PENDING` record and what is already known about pricing it.
#[derive(Debug, Clone)]
struct Opened {
    call: AiCall,
    price: KnownPrice,
    /// Whether budgets hold reservations for it (to settle).
    reserved: bool,
    /// The tokens-per-minute limit in force when it was admitted (its tokens count against it).
    tokens_per_minute: Option<i64>,
}

/// A rough token estimate (about four characters a token), used only when a provider reports no
/// usage; such records say `ESTIMATED`.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

fn estimate_usage(request: &ChatRequest, completion: &str) -> Usage {
    let prompt: u64 = request
        .messages
        .iter()
        .map(|m| estimate_tokens(&m.content) + 4)
        .sum();
    Usage {
        prompt_tokens: prompt,
        cached_prompt_tokens: 0,
        completion_tokens: estimate_tokens(completion),
    }
}

fn ms(since: Instant) -> i64 {
    i64::try_from(since.elapsed().as_millis()).unwrap_or(i64::MAX)
}

fn tokens(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Everything known when a call ends.
struct Ending {
    /// The provider and model that answered (or were tried last).
    provider: String,
    model: String,
    /// The attempt chain, as stored in the record.
    attempts: serde_json::Value,
    /// Served from the response cache: no provider call, cost 0.
    cached: bool,
    status: &'static str,
    /// `(extensions.code, message)` of the failure.
    error: Option<(&'static str, String)>,
    usage: Option<(Usage, &'static str)>,
    content: String,
    reasoning: String,
    latency_ms: i64,
    ttft_ms: Option<i64>,
    upstream_ms: Option<i64>,
}

/// Prices the call, finishes its record and, on success inside a conversation, appends the turn,
/// all in one transaction, on the call path ([`crate::db::on_call_path`]). Returns the finished
/// record.
async fn close_record(
    app: &App,
    opened: &Opened,
    prepared: &Prepared,
    ending: Ending,
) -> Result<AiCall, Error> {
    crate::db::on_call_path(finish_record(app, opened, prepared, ending)).await
}

async fn finish_record(
    app: &App,
    opened: &Opened,
    prepared: &Prepared,
    ending: Ending,
) -> Result<AiCall, Error> {
    let call = &opened.call;
    let mut conn = app.db.get().await?;
    let known = &opened.price;
    let price = if ending.cached {
        None
    } else if known.provider == ending.provider && known.model == ending.model {
        known.price.clone()
    } else {
        // A fallback answered: its own price in force at the call's start.
        prices::in_force(&mut conn, &ending.provider, &ending.model, call.started_at).await?
    };
    let (usage, source) = ending
        .usage
        .map_or((Usage::default(), None), |(u, s)| (u, Some(s)));
    let cost = price
        .as_ref()
        .map_or(0, |p| pricing::cost_micros(&usage, p));
    if price.is_none() && ending.usage.is_some() && !ending.cached {
        tracing::warn!(ai_call.id = %call.id, provider = %call.provider, model = %call.model, "no price in force; call recorded with cost 0");
    }
    let now = app.now();
    let finish = Finish {
        provider: ending.provider.clone(),
        model: ending.model.clone(),
        status: ending.status.into(),
        error_code: ending.error.as_ref().map(|(code, _)| (*code).to_owned()),
        error_message: ending
            .error
            .as_ref()
            .map(|(_, m)| m.chars().take(1000).collect()),
        prompt_tokens: tokens(usage.prompt_tokens),
        cached_prompt_tokens: tokens(usage.cached_prompt_tokens),
        completion_tokens: tokens(usage.completion_tokens),
        usage_source: source.map(str::to_owned),
        finished_at: Some(now),
        latency_ms: Some(ending.latency_ms),
        ttft_ms: ending.ttft_ms,
        upstream_ms: ending.upstream_ms,
        price_id: price.as_ref().map(|p| p.id.clone()),
        cost_micros: cost,
        currency: price.as_ref().map(|p| p.currency.clone()),
        priced: price.is_some(),
        cached: ending.cached,
        attempts: ending.attempts.clone(),
        prompt_log: app.chat.log_prompts.then(|| {
            serde_json::json!({
                "messages": prepared.request.messages,
                "reply": ending.content,
            })
        }),
    };
    let turn = match (
        &prepared.conversation,
        &prepared.user_message,
        ending.status,
    ) {
        (Some(c), Some(text), "SUCCEEDED") => Some((c.id.clone(), text.clone())),
        _ => None,
    };
    let call_id = call.id.clone();
    let (content, reasoning) = (ending.content.clone(), ending.reasoning.clone());
    let already = || Error::Conflict("the call was already finished".into());
    let reserved = opened.reserved;
    let day = budgets::report_day(&app.budgets, call.started_at);
    // One transaction: the record, the budget settlement, the daily rollup and the turn.
    let record = conn
        .transaction(async |tx| {
            let record = ai_calls::finish(tx, &call_id, &finish)
                .await?
                .ok_or_else(already)?;
            let tokens = record.prompt_tokens + record.completion_tokens;
            let alerts = if reserved {
                budgets::settle(
                    tx,
                    &call_id,
                    record.cost_micros,
                    record.currency.as_deref(),
                    tokens,
                )
                .await?
            } else {
                Vec::new()
            };
            budget_queries::add_daily(
                tx,
                &budget_queries::DailyUsage {
                    day: &day,
                    user_id: &record.user_id,
                    provider: &record.provider,
                    model: &record.model,
                    currency: record.currency.as_deref().unwrap_or(""),
                    requests: 1,
                    prompt_tokens: record.prompt_tokens,
                    cached_prompt_tokens: record.cached_prompt_tokens,
                    completion_tokens: record.completion_tokens,
                    cost_micros: record.cost_micros,
                },
            )
            .await?;
            if let Some((conversation_id, text)) = &turn {
                for (role, body, thinking) in [
                    ("USER", text.as_str(), None),
                    ("ASSISTANT", content.as_str(), Some(reasoning.as_str())),
                ] {
                    let message = Message {
                        id: uuid::Uuid::now_v7().to_string(),
                        conversation_id: conversation_id.clone(),
                        role: role.into(),
                        content: body.to_owned(),
                        reasoning: thinking.filter(|r| !r.is_empty()).map(str::to_owned),
                        ai_call_id: Some(call_id.clone()),
                        created_at: now,
                    };
                    conversation_queries::insert_message(tx, &message).await?;
                }
                conversation_queries::touch(tx, conversation_id, now).await?;
            }
            Ok((record, alerts))
        })
        .await?;
    drop(conn);
    let (record, alerts) = record;
    // Published after the commit: subscribers read what is now stored.
    app.events.publish(Event::AiCallUpdated {
        call_id: record.id.clone(),
        user_id: record.user_id.clone(),
        provider: record.provider.clone(),
        model: record.model.clone(),
    });
    app.events.publish(Event::UsageUpdated {
        user_id: record.user_id.clone(),
    });
    for alert in alerts {
        app.events.publish(alert);
    }
    let used = record.prompt_tokens + record.completion_tokens;
    if let Err(e) =
        rate_limits::spend_tokens(app, &record.user_id, opened.tokens_per_minute, used).await
    {
        tracing::warn!(ai_call.id = %record.id, error = %e, "counting tokens for the rate limit failed");
    }
    tracing::info!(
        ai_call.id = %record.id, provider = %record.provider, model = %record.model,
        status = %record.status, cost_micros = record.cost_micros,
        latency_ms = record.latency_ms.unwrap_or_default(), "AI call finished"
    );
    if record.status == "FAILED" {
        tracing::warn!(
            target: "cloudbase::event::provider",
            provider = %record.provider, model = %record.model, ai_call.id = %record.id,
            error.code = record.error_code.as_deref().unwrap_or(""), "AI call failed"
        );
    }
    record_metrics(app, &record);
    Ok(record)
}

/// Counts a finished call: by status, its tokens and cost, and its timings.
fn record_metrics(app: &App, r: &AiCall) {
    let labels = [("provider", r.provider.clone()), ("model", r.model.clone())];
    let secs = |ms: i64| ms.max(0) as f64 / 1000.0;
    app.metrics.record(|| {
        let status = ("status", r.status.clone());
        metrics::counter!("cloudbase_ai_calls_total", &[labels[0].clone(), labels[1].clone(), status])
            .increment(1);
        for (kind, n) in [
            ("prompt", r.prompt_tokens),
            ("cached_prompt", r.cached_prompt_tokens),
            ("completion", r.completion_tokens),
        ] {
            if n > 0 {
                let kind = ("kind", kind.to_owned());
                metrics::counter!("cloudbase_ai_tokens_total", &[labels[0].clone(), labels[1].clone(), kind])
                    .increment(n.unsigned_abs());
            }
        }
        if r.cost_micros > 0 {
            let currency = ("currency", r.currency.clone().unwrap_or_default());
            metrics::counter!("cloudbase_ai_cost_micros_total", &[labels[0].clone(), labels[1].clone(), currency])
                .increment(r.cost_micros.unsigned_abs());
        }
        if let Some(latency) = r.latency_ms {
            metrics::histogram!("cloudbase_ai_call_duration_seconds", &labels).record(secs(latency));
            if let Some(upstream) = r.upstream_ms {
                metrics::histogram!("cloudbase_ai_upstream_duration_seconds", &labels)
                    .record(secs(upstream));
                metrics::histogram!("cloudbase_ai_overhead_duration_seconds", "provider" => r.provider.clone())
                    .record(secs(latency - upstream));
            }
        }
    });
}

/// What the record keeps of an error: its code and message.
fn described(error: &Error) -> (&'static str, String) {
    (error.code().as_str(), error.to_string())
}

/// One entry of the attempt chain.
fn attempt(
    provider: &str,
    model: &str,
    outcome: &str,
    http_attempts: u32,
    since: Instant,
) -> serde_json::Value {
    serde_json::json!({
        "provider": provider,
        "model": model,
        "outcome": outcome,
        "httpAttempts": http_attempts,
        "ms": ms(since),
    })
}

/// A call that failed before any output.
fn failed_ending(
    error: &Error,
    latency_ms: i64,
    (provider, model): (&str, &str),
    attempts: Vec<serde_json::Value>,
) -> Ending {
    Ending {
        provider: provider.to_owned(),
        model: model.to_owned(),
        attempts: serde_json::Value::Array(attempts),
        cached: false,
        status: "FAILED",
        error: Some(described(error)),
        usage: None,
        content: String::new(),
        reasoning: String::new(),
        latency_ms,
        ttft_ms: None,
        upstream_ms: None,
    }
}

/// The cache key of a prepared request, when its provider opted into caching.
fn cache_key(app: &App, viewer: &Viewer, p: &Prepared) -> Option<([u8; 32], std::time::Duration)> {
    let ttl = app.plugins.cache_ttl(&p.provider)?;
    Some((
        ResponseCache::key(&viewer.user_id, &p.provider, &p.request),
        ttl,
    ))
}

/// Records and returns a cache hit: no provider call, cost 0.
async fn serve_cached(
    app: &App,
    opened: &Opened,
    p: &Prepared,
    hit: CachedReply,
    started: Instant,
) -> Result<ChatOutcome, Error> {
    let ending = Ending {
        provider: p.provider.clone(),
        model: p.model.clone(),
        attempts: serde_json::json!([attempt(&p.provider, &p.model, "CACHED", 0, started)]),
        cached: true,
        status: "SUCCEEDED",
        error: None,
        usage: None,
        content: hit.content.clone(),
        reasoning: hit.reasoning.clone().unwrap_or_default(),
        latency_ms: ms(started),
        ttft_ms: None,
        upstream_ms: Some(0),
    };
    let record = close_record(app, opened, p, ending).await?;
    Ok(ChatOutcome {
        content: hit.content,
        reasoning: hit.reasoning,
        finish_reason: hit.finish_reason,
        call: record,
    })
}

/// A plain (non-streamed) chat: each target in turn until one answers.
pub async fn chat(
    app: &App,
    viewer: &Viewer,
    meta: &RequestMeta,
    input: ChatInput,
) -> Result<ChatOutcome, Error> {
    let _admitted = app.admission.admit()?;
    let prepared = prepare(app, viewer, &input).await?;
    let tpm = rate_limits::admit(app, &viewer.user_id).await?;
    let opened = open_record(app, viewer, meta, &prepared, false, tpm).await?;
    let started = Instant::now();
    let key = cache_key(app, viewer, &prepared);
    if let Some(hit) = key.as_ref().and_then(|(k, _)| app.cache.get(k)) {
        return serve_cached(app, &opened, &prepared, hit, started).await;
    }
    let mut attempts = Vec::new();
    let mut last_error = None;
    for (provider, model) in &prepared.targets {
        let tried = Instant::now();
        let mut request = prepared.request.clone();
        request.model = model.clone();
        match app.plugins.chat(provider, request).await {
            Ok(reply) => {
                attempts.push(attempt(
                    provider,
                    model,
                    "SUCCEEDED",
                    reply.http_attempts,
                    tried,
                ));
                let r = reply.response;
                let usage = match r.usage {
                    Some(u) => (u, "REPORTED"),
                    None => (estimate_usage(&prepared.request, &r.content), "ESTIMATED"),
                };
                let ending = Ending {
                    provider: provider.clone(),
                    model: model.clone(),
                    attempts: serde_json::Value::Array(attempts),
                    cached: false,
                    status: "SUCCEEDED",
                    error: None,
                    usage: Some(usage),
                    content: r.content.clone(),
                    reasoning: r.reasoning.clone().unwrap_or_default(),
                    latency_ms: ms(started),
                    ttft_ms: None,
                    upstream_ms: i64::try_from(reply.upstream_ms).ok(),
                };
                let record = close_record(app, &opened, &prepared, ending).await?;
                let outcome = ChatOutcome {
                    content: r.content,
                    reasoning: r.reasoning,
                    finish_reason: r.finish_reason,
                    call: record,
                };
                if let Some((k, ttl)) = key {
                    app.cache.put(
                        k,
                        CachedReply {
                            content: outcome.content.clone(),
                            reasoning: outcome.reasoning.clone(),
                            finish_reason: outcome.finish_reason.clone(),
                        },
                        ttl,
                    );
                }
                return Ok(outcome);
            }
            Err(error) => {
                plugins::count_call_error(app, provider, &error);
                attempts.push(attempt(provider, model, error.code().as_str(), 0, tried));
                let fall = error.is_provider_fault();
                last_error = Some((error, provider.clone(), model.clone()));
                if !fall {
                    break;
                }
                tracing::warn!(ai_call.id = %opened.call.id, %provider, %model, "provider failed; trying the next fallback");
            }
        }
    }
    let (error, provider, model) =
        last_error.ok_or_else(|| Error::Internal("no provider to try".into()))?;
    close_record(
        app,
        &opened,
        &prepared,
        failed_ending(&error, ms(started), (&provider, &model), attempts),
    )
    .await?;
    Err(error)
}

/// The state of a stream in progress; finishing it as `CANCELLED` if it is dropped unfinished.
struct Streaming {
    /// The call's slot, until the stream ends or is dropped.
    _admitted: admission::Admitted,
    app: Arc<App>,
    opened: Opened,
    prepared: Arc<Prepared>,
    provider: String,
    model: String,
    attempts: Vec<serde_json::Value>,
    cache: Option<([u8; 32], std::time::Duration)>,
    started: Instant,
    first_token: Option<i64>,
    content: String,
    reasoning: String,
    usage: Option<Usage>,
    finish_reason: Option<String>,
    finished: bool,
}

impl Streaming {
    fn usage_or_estimate(&self) -> (Usage, &'static str) {
        match self.usage {
            Some(u) => (u, "REPORTED"),
            None => (
                estimate_usage(&self.prepared.request, &self.content),
                "ESTIMATED",
            ),
        }
    }

    fn ending(&self, status: &'static str, error: Option<(&'static str, String)>) -> Ending {
        let mut attempts = self.attempts.clone();
        if let Some(last) = attempts.last_mut() {
            last["outcome"] = serde_json::json!(error.as_ref().map_or(status, |(code, _)| *code));
        }
        Ending {
            provider: self.provider.clone(),
            model: self.model.clone(),
            attempts: serde_json::Value::Array(attempts),
            cached: false,
            status,
            error,
            usage: Some(self.usage_or_estimate()),
            content: self.content.clone(),
            reasoning: self.reasoning.clone(),
            latency_ms: ms(self.started),
            ttft_ms: self.first_token,
            upstream_ms: Some(ms(self.started)),
        }
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // The client went away mid-stream: the upstream request is cancelled with the stream,
        // and the call is recorded as CANCELLED with what was seen (or an estimate).
        let ending = self.ending("CANCELLED", None);
        let (app, opened, prepared) = (
            Arc::clone(&self.app),
            self.opened.clone(),
            Arc::clone(&self.prepared),
        );
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = close_record(
            &app,
            &opened, &prepared, ending).await {
                    tracing::error!(ai_call.id = %opened.call.id, error = %e, "recording a cancelled call failed");
                }
            });
        }
    }
}

/// A streamed chat: deltas as they arrive, then one final item with the finished record.
/// Fallbacks apply until a stream starts; once bytes flow, a failure ends the stream.
pub async fn chat_stream(
    app: Arc<App>,
    viewer: &Viewer,
    meta: &RequestMeta,
    input: ChatInput,
) -> Result<BoxStream<'static, Result<ChatChunk, Error>>, Error> {
    let admitted = app.admission.admit()?;
    let prepared = prepare(&app, viewer, &input).await?;
    let tpm = rate_limits::admit(&app, &viewer.user_id).await?;
    let opened = open_record(&app, viewer, meta, &prepared, true, tpm).await?;
    let started = Instant::now();
    let key = cache_key(&app, viewer, &prepared);
    if let Some(hit) = key.as_ref().and_then(|(k, _)| app.cache.get(k)) {
        let outcome = serve_cached(&app, &opened, &prepared, hit, started).await?;
        let delta = ChatChunk::Delta {
            call_id: opened.call.id.clone(),
            content: outcome.content.clone(),
            reasoning: outcome.reasoning.clone().unwrap_or_default(),
        };
        let done = ChatChunk::Done(Box::new(outcome));
        return Ok(futures_util::stream::iter([Ok(delta), Ok(done)]).boxed());
    }
    let mut attempts = Vec::new();
    let mut started_stream = None;
    let mut last_error = None;
    for (provider, model) in &prepared.targets {
        let tried = Instant::now();
        let mut request = prepared.request.clone();
        request.model = model.clone();
        match app.plugins.chat_stream(provider, request).await {
            Ok(start) => {
                attempts.push(attempt(
                    provider,
                    model,
                    "STARTED",
                    start.http_attempts,
                    tried,
                ));
                started_stream = Some((start.events, provider.clone(), model.clone()));
                break;
            }
            Err(error) => {
                plugins::count_call_error(&app, provider, &error);
                attempts.push(attempt(provider, model, error.code().as_str(), 0, tried));
                let fall = error.is_provider_fault();
                last_error = Some((error, provider.clone(), model.clone()));
                if !fall {
                    break;
                }
            }
        }
    }
    let Some((upstream, provider, model)) = started_stream else {
        let (error, provider, model) =
            last_error.ok_or_else(|| Error::Internal("no provider to try".into()))?;
        close_record(
            &app,
            &opened,
            &prepared,
            failed_ending(&error, ms(started), (&provider, &model), attempts),
        )
        .await?;
        return Err(error);
    };
    let state = Streaming {
        _admitted: admitted,
        app,
        opened,
        prepared: Arc::new(prepared),
        provider,
        model,
        attempts,
        cache: key,
        started,
        first_token: None,
        content: String::new(),
        reasoning: String::new(),
        usage: None,
        finish_reason: None,
        finished: false,
    };
    Ok(
        futures_util::stream::unfold(Some((upstream, state)), |step| async move {
            let (mut upstream, mut s) = step?;
            loop {
                match upstream.next().await {
                    Some(Ok(StreamEvent::Delta { content, reasoning })) => {
                        if content.is_empty() && reasoning.is_empty() {
                            continue;
                        }
                        s.first_token.get_or_insert_with(|| ms(s.started));
                        s.content.push_str(&content);
                        s.reasoning.push_str(&reasoning);
                        let chunk = ChatChunk::Delta {
                            call_id: s.opened.call.id.clone(),
                            content,
                            reasoning,
                        };
                        return Some((Ok(chunk), Some((upstream, s))));
                    }
                    // The last usage seen counts; never a sum.
                    Some(Ok(StreamEvent::Usage { usage })) => s.usage = Some(usage),
                    Some(Ok(StreamEvent::Done { finish_reason })) => {
                        if s.finish_reason.is_none() {
                            s.finish_reason = finish_reason;
                        }
                    }
                    Some(Err(error)) => {
                        s.finished = true;
                        plugins::count_call_error(&s.app, &s.opened.call.provider, &error);
                        let ending = s.ending("FAILED", Some(described(&error)));
                        let item = match close_record(&s.app, &s.opened, &s.prepared, ending).await
                        {
                            Ok(_) => Err(error),
                            Err(e) => Err(e),
                        };
                        return Some((item, None));
                    }
                    None => {
                        s.finished = true;
                        let ending = s.ending("SUCCEEDED", None);
                        let item = close_record(&s.app, &s.opened, &s.prepared, ending)
                            .await
                            .map(|record| {
                                let outcome = ChatOutcome {
                                    content: s.content.clone(),
                                    reasoning: Some(s.reasoning.clone()).filter(|r| !r.is_empty()),
                                    finish_reason: s.finish_reason.clone(),
                                    call: record,
                                };
                                if let Some((k, ttl)) = s.cache {
                                    s.app.cache.put(
                                        k,
                                        CachedReply {
                                            content: outcome.content.clone(),
                                            reasoning: outcome.reasoning.clone(),
                                            finish_reason: outcome.finish_reason.clone(),
                                        },
                                        ttl,
                                    );
                                }
                                ChatChunk::Done(Box::new(outcome))
                            });
                        return Some((item, None));
                    }
                }
            }
        })
        .boxed(),
    )
}
