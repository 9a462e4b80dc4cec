//! The AI-call workflow, in one place: admit → validate → record `PENDING` (with the budget
//! reservations) → call the provider, falling back in order → price → finish the record, settle
//! the budgets, add to the daily rollup and append the conversation turn in one transaction →
//! publish. Streaming uses the same steps. A call whose client goes away (a plain call's
//! request, a stream at any point) is finished as `CANCELLED`, never left `PENDING`. The flow
//! takes and returns domain types only, so any door (GraphQL, REST) calls it the same way.
//!
//! - [`prepare`]: ownership, history, parameter checks and the targets to try.
//! - [`record`]: opening the `PENDING` record and closing it, step by step.
//! - [`batches`]: on PostgreSQL, the writes of concurrent calls gathered into one statement:
//!   [`pendings`], their `PENDING` records, [`admissions`], their records and reservations under
//!   budgets, and [`finishes`], their finishes.
//! - [`stream`]: the state of a stream in progress and its cancellation.
//! - [`interrupted`]: calls whose server died before they finished, recorded as such.

pub mod admissions;
pub mod batches;
pub mod finishes;
pub mod interrupted;
pub mod pendings;
mod prepare;
mod record;
mod stream;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use cloudbase_plugin_api::{ChatMessage, ChatRequest};
use futures_util::stream::{BoxStream, StreamExt};

use self::prepare::Prepared;
use self::record::{Ending, Opened, attempt, ms};
use super::cache::{CachedReply, ResponseCache};
use super::{App, RequestMeta, Viewer, breakers, plugins, rate_limits};
use crate::Error;
use crate::db::models::AiCall;
use crate::domain::{CallStatus, UsageSource};

pub use self::prepare::resolve_model;
pub use self::record::estimate_tokens;

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
    /// Public model names → the `"provider/model"` they stand for (the `/v1` door's `model`).
    pub model_aliases: BTreeMap<String, String>,
    /// When a provider instance's circuit breaker opens, and for how long.
    pub breaker: super::breakers::BreakerSettings,
}

impl Default for ChatSettings {
    fn default() -> Self {
        Self {
            default_provider: "mock".into(),
            default_model: "mock-echo".into(),
            log_prompts: false,
            fallbacks: BTreeMap::new(),
            model_aliases: BTreeMap::new(),
            breaker: super::breakers::BreakerSettings::default(),
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

/// A plain (non-streamed) chat: each target in turn until one answers.
pub async fn chat(
    app: &Arc<App>,
    viewer: &Viewer,
    meta: &RequestMeta,
    input: ChatInput,
) -> Result<ChatOutcome, Error> {
    // The flow's future is large (every step's state), and the doors' futures around it are
    // moved several times before they run (async-graphql's resolver sets, axum's layers): boxed
    // once here, each of those moves copies a pointer instead of kilobytes
    // (`bench/instructions.sh`).
    in_box(|| chat_flow(app, viewer, meta, input)).await
}

/// `make`'s future in a box allocated before the future is made, so that the compiler may build
/// it in its place, not build it on the stack and copy all of it (kilobytes of state not yet in
/// use) as `Box::pin(make())` does.
fn in_box<F: Future>(make: impl FnOnce() -> F) -> std::pin::Pin<Box<F>> {
    Box::into_pin(Box::write(Box::new_uninit(), make()))
}

async fn chat_flow(
    app: &Arc<App>,
    viewer: &Viewer,
    meta: &RequestMeta,
    input: ChatInput,
) -> Result<ChatOutcome, Error> {
    let mut admitted = app.admission.admit()?;
    let prepared = prepare::prepare(app, viewer, &input).await?;
    let tpm = rate_limits::admit(app, viewer).await?;
    let opened = record::open(app, viewer, meta, &prepared, false, tpm).await?;
    admitted.track(&opened.call.id);
    let started = Instant::now();
    // Until it is closed here, a call whose client goes away is finished `CANCELLED`.
    let mut unfinished = record::Unfinished::new(app, &opened, &prepared, started);
    let key = cache_key(app, viewer, &prepared);
    let host = &app.plugins;
    let tried = try_targets(
        app,
        &opened,
        &prepared,
        key.as_ref(),
        started,
        |p, r| async move {
            let reply = host.chat(&p, r).await?;
            Ok((reply.http_attempts, reply))
        },
    )
    .await;
    if !matches!(tried, Ok(Tried::Answered(..))) {
        // Closed there: served from the cache, or every target failed.
        unfinished.disarm();
    }
    let (reply, target) = match tried? {
        Tried::Cached(outcome) => return Ok(*outcome),
        Tried::Answered(reply, target) => (reply, target),
    };
    let r = reply.response;
    let usage = match r.usage {
        Some(u) => (u, UsageSource::Reported),
        None => (
            record::estimate_usage(&prepared.request, &r.content),
            UsageSource::Estimated,
        ),
    };
    let ending = Ending {
        provider: target.provider,
        model: target.model,
        attempts: serde_json::Value::Array(target.attempts),
        cached: false,
        status: CallStatus::Succeeded,
        error: None,
        usage: Some(usage),
        content: r.content.clone(),
        reasoning: r.reasoning.clone().unwrap_or_default(),
        latency_ms: ms(started),
        ttft_ms: None,
        upstream_ms: i64::try_from(reply.upstream_ms).ok(),
    };
    let record = record::close(app, &opened, &prepared, ending).await;
    unfinished.disarm();
    let outcome = ChatOutcome {
        call: record?,
        content: r.content,
        reasoning: r.reasoning,
        finish_reason: r.finish_reason,
    };
    remember(app, key, &outcome);
    Ok(outcome)
}

/// A streamed chat: deltas as they arrive, then one final item with the finished record.
/// Fallbacks apply until a stream starts; once bytes flow, a failure ends the stream.
pub async fn chat_stream(
    app: Arc<App>,
    viewer: &Viewer,
    meta: &RequestMeta,
    input: ChatInput,
) -> Result<BoxStream<'static, Result<ChatChunk, Error>>, Error> {
    // Boxed as [`chat`]'s flow is.
    in_box(|| chat_stream_flow(app, viewer, meta, input)).await
}

async fn chat_stream_flow(
    app: Arc<App>,
    viewer: &Viewer,
    meta: &RequestMeta,
    input: ChatInput,
) -> Result<BoxStream<'static, Result<ChatChunk, Error>>, Error> {
    let mut admitted = app.admission.admit()?;
    let prepared = prepare::prepare(&app, viewer, &input).await?;
    let tpm = rate_limits::admit(&app, viewer).await?;
    let opened = record::open(&app, viewer, meta, &prepared, true, tpm).await?;
    admitted.track(&opened.call.id);
    let started = Instant::now();
    // Until the stream starts (then `stream::Streaming` does it), a call whose client goes away
    // is finished `CANCELLED`.
    let mut unfinished = record::Unfinished::new(&app, &opened, &prepared, started);
    let key = cache_key(&app, viewer, &prepared);
    let host = &app.plugins;
    let tried = try_targets(
        &app,
        &opened,
        &prepared,
        key.as_ref(),
        started,
        |p, r| async move {
            let start = host.chat_stream(&p, r).await?;
            Ok((start.http_attempts, start.events))
        },
    )
    .await;
    unfinished.disarm();
    drop(unfinished);
    let tried = tried?;
    let (events, target) = match tried {
        Tried::Cached(outcome) => {
            let delta = ChatChunk::Delta {
                call_id: opened.call.id.clone(),
                content: outcome.content.clone(),
                reasoning: outcome.reasoning.clone().unwrap_or_default(),
            };
            let done = ChatChunk::Done(outcome);
            return Ok(futures_util::stream::iter([Ok(delta), Ok(done)]).boxed());
        }
        Tried::Answered(events, target) => (events, target),
    };
    let state = stream::Streaming::new(admitted, app, opened, prepared, target, key, started);
    Ok(stream::deliver(events, state))
}

/// The cache key of a prepared request and how long its reply may be kept, when its provider
/// opted into caching.
type CacheKey = ([u8; 32], std::time::Duration);

fn cache_key(app: &App, viewer: &Viewer, p: &Prepared) -> Option<CacheKey> {
    let ttl = app.plugins.cache_ttl(&p.provider)?;
    Some((
        ResponseCache::key(&viewer.user_id, &p.provider, &p.request),
        ttl,
    ))
}

/// Keeps a successful reply in the response cache, when its provider opted in.
fn remember(app: &App, key: Option<CacheKey>, outcome: &ChatOutcome) {
    if let Some((k, ttl)) = key {
        let reply = CachedReply {
            content: outcome.content.clone(),
            reasoning: outcome.reasoning.clone(),
            finish_reason: outcome.finish_reason.clone(),
        };
        app.cache.put(k, reply, ttl);
    }
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
        status: CallStatus::Succeeded,
        error: None,
        usage: None,
        content: hit.content.clone(),
        reasoning: hit.reasoning.clone().unwrap_or_default(),
        latency_ms: ms(started),
        ttft_ms: None,
        upstream_ms: Some(0),
    };
    let record = record::close(app, opened, p, ending).await?;
    Ok(ChatOutcome {
        content: hit.content,
        reasoning: hit.reasoning,
        finish_reason: hit.finish_reason,
        call: record,
    })
}

/// The target that answered, and the attempt chain that led to it.
struct Target {
    provider: String,
    model: String,
    attempts: Vec<serde_json::Value>,
    /// For a stream: the breaker's leave, reported when the stream ends.
    pass: Option<breakers::Pass>,
}

/// How [`try_targets`] got an answer.
enum Tried<T> {
    /// From the response cache: the call is already recorded, at cost 0.
    Cached(Box<ChatOutcome>),
    /// From a provider: what it gave, and which target it was.
    Answered(T, Target),
}

/// The response cache first, then each target in turn until one answers, for both the plain and
/// the streamed path (`call` makes one attempt and says how many HTTP attempts it took). A target
/// whose circuit breaker is open is skipped at once (`CIRCUIT_OPEN` in the chain). A failure
/// that is not the provider's (bad input) stops the fallbacks. When every target failed, the
/// call is recorded as `FAILED` and the last error is returned.
async fn try_targets<T, F, Fut>(
    app: &App,
    opened: &Opened,
    prepared: &Prepared,
    key: Option<&CacheKey>,
    started: Instant,
    call: F,
) -> Result<Tried<T>, Error>
where
    F: Fn(String, ChatRequest) -> Fut,
    Fut: Future<Output = Result<(u32, T), Error>>,
{
    if let Some(hit) = key.and_then(|(k, _)| app.cache.get(k)) {
        return serve_cached(app, opened, prepared, hit, started)
            .await
            .map(|outcome| Tried::Cached(Box::new(outcome)));
    }
    let mut attempts = Vec::new();
    let mut last_error = None;
    for (provider, model) in &prepared.targets {
        let tried = Instant::now();
        let pass = match breakers::admit(app, provider) {
            Ok(pass) => pass,
            Err(refused) => {
                attempts.push(attempt(provider, model, "CIRCUIT_OPEN", 0, tried));
                last_error = Some((refused, provider.clone(), model.clone()));
                tracing::debug!(ai_call.id = %opened.call.id, %provider, %model, "circuit open; trying the next fallback");
                continue;
            }
        };
        let mut request = prepared.request.clone();
        request.model = model.clone();
        match call(provider.clone(), request).await {
            Ok((http_attempts, answer)) => {
                let (outcome, pass) = if opened.call.stream {
                    // A stream's outcome is known when it ends.
                    ("STARTED", Some(pass))
                } else {
                    pass.succeeded(app);
                    (CallStatus::Succeeded.as_str(), None)
                };
                attempts.push(attempt(provider, model, outcome, http_attempts, tried));
                let target = Target {
                    provider: provider.clone(),
                    model: model.clone(),
                    attempts,
                    pass,
                };
                return Ok(Tried::Answered(answer, target));
            }
            Err(error) => {
                pass.failed(app, &error);
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
    let ending = Ending::failed(&error, ms(started), (&provider, &model), attempts);
    record::close(app, opened, prepared, ending).await?;
    Err(error)
}
