//! A call's record: opened `PENDING` (with the budget reservations) before the provider is
//! asked, and closed once, in named steps: price it, finish and settle it (with the daily rollup,
//! the tokens for the rate limit and the conversation turn, in one transaction), then publish. Both run on the call path
//! ([`crate::db::on_call_path`]) and hold one pooled connection at a time (DESIGN §9).

use std::sync::Arc;
use std::time::Instant;

use cloudbase_plugin_api::{ChatRequest, Usage};

use super::admissions::{Admitted, ToAdmit};
use super::batches::Unwritten;
use super::prepare::Prepared;
use crate::Error;
use crate::db::models::{AiCall, Price};
use crate::db::{DbConn, ai_calls, budgets as budget_queries};
use crate::domain::{CallStatus, UsageSource};
use crate::events::Event;
use crate::services::sealing::Column;
use crate::services::{
    App, RequestMeta, Viewer, audit, budgets, conversations, pricing, rate_limits,
};

/// The price in force at a call's start, for the provider and model first asked.
#[derive(Debug, Clone)]
struct KnownPrice {
    provider: String,
    model: String,
    price: Option<Price>,
}

/// A `PENDING` record and what is already known about pricing it.
#[derive(Debug, Clone)]
pub(super) struct Opened {
    pub(super) call: AiCall,
    price: KnownPrice,
    /// How many budgets hold reservations for it (to settle).
    reserved_in: usize,
    /// The budgets it reserved in that have alert thresholds (read again after settling).
    watched: Vec<String>,
    /// The token counters its tokens are added to (where a token limit applied at admission).
    tokens_per_minute: rate_limits::TokenCounters,
}

/// Everything known when a call ends.
pub(super) struct Ending {
    /// The provider and model that answered (or were tried last).
    pub(super) provider: String,
    pub(super) model: String,
    /// The attempt chain, as stored in the record.
    pub(super) attempts: serde_json::Value,
    /// Served from the response cache: no provider call, cost 0.
    pub(super) cached: bool,
    pub(super) status: CallStatus,
    /// `(extensions.code, message)` of the failure.
    pub(super) error: Option<(&'static str, String)>,
    pub(super) usage: Option<(Usage, UsageSource)>,
    pub(super) content: String,
    pub(super) reasoning: String,
    pub(super) latency_ms: i64,
    pub(super) ttft_ms: Option<i64>,
    pub(super) upstream_ms: Option<i64>,
}

impl Ending {
    /// A call whose client went away before anything came back: its prompt estimated, no
    /// output, no attempt known to have ended.
    pub(super) fn cancelled(p: &Prepared, latency_ms: i64) -> Self {
        Self {
            provider: p.provider.clone(),
            model: p.model.clone(),
            attempts: serde_json::Value::Array(Vec::new()),
            cached: false,
            status: CallStatus::Cancelled,
            error: None,
            usage: Some((estimate_usage(&p.request, ""), UsageSource::Estimated)),
            content: String::new(),
            reasoning: String::new(),
            latency_ms,
            ttft_ms: None,
            upstream_ms: None,
        }
    }

    /// A call that failed before any output.
    pub(super) fn failed(
        error: &Error,
        latency_ms: i64,
        (provider, model): (&str, &str),
        attempts: Vec<serde_json::Value>,
    ) -> Self {
        Self {
            provider: provider.to_owned(),
            model: model.to_owned(),
            attempts: serde_json::Value::Array(attempts),
            cached: false,
            status: CallStatus::Failed,
            error: Some(described(error)),
            usage: None,
            content: String::new(),
            reasoning: String::new(),
            latency_ms,
            ttft_ms: None,
            upstream_ms: None,
        }
    }
}

/// Inserts the `PENDING` record and reserves against the budgets that apply, on the call path.
pub(super) async fn open(
    app: &App,
    viewer: &Viewer,
    meta: &RequestMeta,
    p: &Prepared,
    stream: bool,
    tokens_per_minute: rate_limits::TokenCounters,
) -> Result<Opened, Error> {
    crate::db::on_call_path(async {
        let call = AiCall {
            api_key_id: viewer.key_id().map(str::to_owned),
            ..AiCall::pending(
                viewer.user_id.clone(),
                p.conversation.as_ref().map(|c| c.id.clone()),
                Some(meta.request_id.clone()).filter(|r| !r.is_empty()),
                (p.provider.clone(), p.model.clone()),
                stream,
                app.now(),
            )
        };
        // One connection for the lookups and the insert (never two at once: DESIGN §9), checked
        // out when first needed: the lookups are most often answered from memory. A call with no
        // budget is then one INSERT (on PostgreSQL, in a batch's, with no connection of its own
        // held while it waits); a call with budgets reserves in a transaction (`budgets::admit`).
        let mut conn = app.db.lazy();
        let mut prices_by_target = Vec::with_capacity(p.targets.len());
        for (provider, model) in &p.targets {
            prices_by_target
                .push(pricing::in_force(app, &mut conn, provider, model, call.started_at).await?);
        }
        let family = viewer.key.as_deref().map(|k| k.family_id.as_str());
        let applicable = budgets::applicable(app, &mut conn, &call.user_id, family).await?;
        let price = prices_by_target.first().cloned().flatten();
        let call = if !applicable.is_empty() {
            let worst = worst_case(&p.request, p.max_output, &prices_by_target);
            let currency = price.as_ref().map(|p| p.currency.clone());
            let planned = budgets::plan(
                &mut conn,
                app,
                &call,
                &applicable,
                worst,
                currency.as_deref(),
            )
            .await?;
            if app.admissions.batched() {
                // On PostgreSQL, with the calls admitted beside it (`admissions`), holding no
                // connection while it waits; on its own if the batch did not admit it.
                drop(conn);
                admit_batched(app, ToAdmit { call, planned }).await?
            } else {
                budgets::admit(conn.get().await?, &call, &planned).await?;
                drop(conn);
                call
            }
        } else if app.pendings.batched() {
            // On PostgreSQL, with the calls opening beside it (`pendings`), holding no
            // connection while it waits; on its own, as below, if the batch did not insert it.
            drop(conn);
            match app.pendings.write(call).await {
                Ok((call, ())) => call,
                Err(Unwritten::Alone(call)) => {
                    insert_pending_given_back(app, &call).await?;
                    call
                }
                Err(Unwritten::Failed(_, e)) => return Err(e),
                Err(Unwritten::Gone) => {
                    return Err(Error::Unavailable("the server is shutting down".into()));
                }
            }
        } else {
            conn.get()
                .await?
                .write(async |c| Ok(ai_calls::insert_pending(c, &call).await?))
                .await?;
            drop(conn);
            call
        };
        app.events.publish(Event::call_updated(&call));
        Ok(Opened {
            price: KnownPrice {
                provider: call.provider.clone(),
                model: call.model.clone(),
                price,
            },
            reserved_in: applicable.len(),
            watched: applicable
                .iter()
                .filter(|b| !b.threshold_list().is_empty())
                .map(|b| b.id.clone())
                .collect(),
            tokens_per_minute,
            call,
        })
    })
    .await
}

/// Admits a call under budgets with the calls queued beside it ([`super::admissions`]); alone
/// (a connection of its own, taken now) if the batch gave it back.
async fn admit_batched(app: &App, item: ToAdmit) -> Result<AiCall, Error> {
    match app.admissions.write(item).await {
        Ok((admitted, Admitted::Yes)) => Ok(admitted.call),
        Ok((refused, Admitted::Refused(full))) => {
            let mut conn = app.db.get().await?;
            Err(budgets::refused(&mut conn, &refused.planned, full).await)
        }
        Ok((_, Admitted::Unsure(e))) => Err(Error::Internal(format!(
            "a call's admission was not confirmed on disk: {e}"
        ))),
        Err(Unwritten::Alone(item)) => {
            let mut conn = app.db.get().await?;
            budgets::admit(&mut conn, &item.call, &item.planned).await?;
            Ok(item.call)
        }
        Err(Unwritten::Failed(_, e)) => Err(e),
        Err(Unwritten::Gone) => Err(Error::Unavailable("the server is shutting down".into())),
    }
}

/// A call opened and not yet closed by its own future. Dropped armed (its client went away: a
/// plain call's HTTP request or socket, or a stream before its first event), it finishes the
/// call `CANCELLED` in a task of its own ([`close_in_background`]), with [`Ending::cancelled`],
/// instead of leaving it `PENDING`, its budget reserved, until the sweep of interrupted calls.
/// A finish of the call's own that got there first wins: a record is finished once. A call cut
/// off by shutdown ([`crate::services::admission::Admission::cut_off`]) is left to be recorded as
/// interrupted.
pub(super) struct Unfinished<'a> {
    app: &'a Arc<App>,
    opened: &'a Opened,
    prepared: &'a Prepared,
    started: Instant,
    armed: bool,
}

impl<'a> Unfinished<'a> {
    /// Armed, for a call opened at `started`.
    pub(super) fn new(
        app: &'a Arc<App>,
        opened: &'a Opened,
        prepared: &'a Prepared,
        started: Instant,
    ) -> Self {
        Self {
            app,
            opened,
            prepared,
            started,
            armed: true,
        }
    }

    /// The call's own future has closed it, or has handed it to what will.
    pub(super) fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for Unfinished<'_> {
    fn drop(&mut self) {
        if self.armed && !self.app.admission.is_cut_off() {
            close_in_background(
                Arc::clone(self.app),
                self.opened.clone(),
                Arc::new(self.prepared.clone()),
                Ending::cancelled(self.prepared, ms(self.started)),
            );
        }
    }
}

/// Closes a call whose own future was dropped, in a task of its own (nothing, outside a
/// runtime). Finding it finished already is no error: its own finish got there first.
pub(super) fn close_in_background(
    app: Arc<App>,
    opened: Opened,
    prepared: Arc<Prepared>,
    ending: Ending,
) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            match close(&app, &opened, &prepared, ending).await {
                Ok(_) => {}
                Err(Error::Conflict(_)) => {
                    tracing::debug!(ai_call.id = %opened.call.id, "a dropped call was finished by its own future first");
                }
                Err(e) => {
                    tracing::error!(ai_call.id = %opened.call.id, error = %e, "recording a cancelled call failed");
                }
            }
        });
    }
}

/// Output cap assumed when neither the request nor the model gives one.
const DEFAULT_OUTPUT_CAP: u64 = 16_384;

/// The most a call could cost: every prompt byte a token (no tokenizer makes more tokens than
/// bytes), the full output cap, at the dearest price among the targets.
fn worst_case(
    request: &ChatRequest,
    max_output: Option<u32>,
    prices_by_target: &[Option<Price>],
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

/// Closes the record: price, finish and settle, publish. Returns the finished record.
pub(super) async fn close(
    app: &App,
    opened: &Opened,
    prepared: &Prepared,
    ending: Ending,
) -> Result<AiCall, Error> {
    crate::db::on_call_path(async {
        let price = price(app, opened, &ending).await?;
        let mut closing = closing(app, opened, prepared, &ending, price.as_ref());
        // On PostgreSQL, a call with nothing to settle and no turn to append finishes with the
        // calls finishing beside it (`finishes`), holding no connection while it waits.
        if app.finishes.batched() && opened.reserved_in == 0 && closing.turn.is_none() {
            let queued = super::finishes::Queued {
                id: opened.call.id.clone(),
                finish: closing.finish,
                day: closing.day,
                minute: closing.minute,
                token_counters: opened.tokens_per_minute.keys().to_vec(),
                audit: closing.audited.take(),
            };
            match app.finishes.write(queued).await {
                Ok((queued, conversation_id)) => {
                    let record = budget_queries::finished_record(
                        opened.call.clone(),
                        conversation_id,
                        queued.finish,
                    );
                    publish(app, &record, Vec::new());
                    return Ok(record);
                }
                // Not finished there: on its own, as below (a lost `PENDING` row is written
                // again there).
                Err(Unwritten::Alone(back)) => {
                    closing.finish = back.finish;
                    closing.day = back.day;
                    closing.audited = back.audit;
                }
                Err(Unwritten::Failed(back, e)) => {
                    if let Some(stored) = back.audit {
                        audit::give_back(stored);
                    }
                    return Err(e);
                }
                Err(Unwritten::Gone) => {
                    return Err(Error::Unavailable(
                        "the call's record could not be finished; it is recorded as interrupted"
                            .into(),
                    ));
                }
            }
        }
        let finished = async {
            let mut conn = app.db.get().await?;
            match finish_and_settle(&mut conn, app, opened, &closing).await {
                Err(Error::Conflict(_)) if write_lost_pending_again(&mut conn, opened).await? => {
                    finish_and_settle(&mut conn, app, opened, &closing).await
                }
                other => other,
            }
        }
        .await;
        match finished {
            Ok((record, alerts)) => {
                publish(app, &record, alerts);
                Ok(record)
            }
            Err(e) => {
                if let Some(stored) = closing.audited {
                    audit::give_back(stored);
                }
                Err(e)
            }
        }
    })
    .await
}

/// Step 1: the price in force at the call's start for whoever answered (none for a cache hit).
async fn price(app: &App, opened: &Opened, ending: &Ending) -> Result<Option<Price>, Error> {
    let known = &opened.price;
    Ok(if ending.cached {
        None
    } else if known.provider == ending.provider && known.model == ending.model {
        known.price.clone()
    } else {
        // A fallback answered: its own price in force at the call's start.
        pricing::in_force(
            app,
            &mut app.db.lazy(),
            &ending.provider,
            &ending.model,
            opened.call.started_at,
        )
        .await?
    })
}

/// What step 2 writes, however it is written.
struct Closing<'a> {
    finish: ai_calls::Finish,
    /// On success inside a conversation, the turn to append.
    turn: Option<conversations::Turn<'a>>,
    /// The rollups' day.
    day: String,
    /// The minute its tokens count in.
    minute: chrono::NaiveDateTime,
    /// Inside a mutation (`chat`), its audit row, committed with the record: one transaction
    /// fewer. Given back if the record is not written.
    audited: Option<audit::Stored>,
}

/// Prices the call and says how it ended.
fn closing<'a>(
    app: &App,
    opened: &'a Opened,
    prepared: &'a Prepared,
    ending: &'a Ending,
    price: Option<&Price>,
) -> Closing<'a> {
    let call = &opened.call;
    let (usage, source) = ending
        .usage
        .map_or((Usage::default(), None), |(u, s)| (u, Some(s)));
    let cost = price.map_or(0, |p| pricing::cost_micros(&usage, p));
    if price.is_none() && ending.usage.is_some() && !ending.cached {
        tracing::warn!(ai_call.id = %call.id, provider = %call.provider, model = %call.model, "no price in force; call recorded with cost 0");
    }
    let now = app.now();
    let finish = ai_calls::Finish {
        provider: ending.provider.clone(),
        model: ending.model.clone(),
        status: ending.status,
        error_code: ending.error.as_ref().map(|(code, _)| (*code).to_owned()),
        error_message: ending
            .error
            .as_ref()
            .map(|(_, m)| m.chars().take(1000).collect()),
        prompt_tokens: tokens(usage.prompt_tokens),
        cached_prompt_tokens: tokens(usage.cached_prompt_tokens),
        completion_tokens: tokens(usage.completion_tokens),
        usage_source: source,
        finished_at: Some(now),
        latency_ms: Some(ending.latency_ms),
        ttft_ms: ending.ttft_ms,
        upstream_ms: ending.upstream_ms,
        price_id: price.map(|p| p.id.clone()),
        cost_micros: cost,
        currency: price.map(|p| p.currency.clone()),
        priced: price.is_some(),
        cached: ending.cached,
        attempts: ending.attempts.clone(),
        prompt_log: app.chat.log_prompts.then(|| {
            let log = serde_json::json!({
                "messages": prepared.request.messages,
                "reply": ending.content,
            });
            serde_json::Value::String(app.sealer.seal(
                Column::PromptLog,
                &call.id,
                &log.to_string(),
            ))
        }),
    };
    let turn = match (
        &prepared.conversation,
        &prepared.user_message,
        ending.status,
    ) {
        (Some(c), Some(text), CallStatus::Succeeded) => Some(conversations::Turn {
            conversation_id: &c.id,
            ai_call_id: &call.id,
            question: text,
            answer: &ending.content,
            reasoning: &ending.reasoning,
            at: now,
        }),
        _ => None,
    };
    let outcome = ending.error.as_ref().map_or("OK", |(code, _)| *code);
    Closing {
        finish,
        turn,
        day: budgets::report_day(&app.budgets, call.started_at),
        minute: rate_limits::minute_of(now.and_utc()),
        audited: audit::take_running(app, outcome),
    }
}

/// Step 2, on its own, in one transaction: the finished record, the budget settlement, the
/// daily rollup, the tokens for the rate limits and, on success inside a conversation, the turn.
/// Returns the record and the budget alerts the settlement raised.
async fn finish_and_settle(
    conn: &mut DbConn,
    app: &App,
    opened: &Opened,
    closing: &Closing<'_>,
) -> Result<(AiCall, Vec<Event>), Error> {
    let call = &opened.call;
    let Closing {
        finish,
        turn,
        day,
        minute,
        audited,
    } = closing;
    let add_to = budget_queries::AddTo {
        day,
        token_counters: opened.tokens_per_minute.keys(),
        minute: *minute,
    };
    let reserved = opened.reserved_in > 0;
    match conn {
        // On PostgreSQL, a call with budgets to settle and no turn to append: one statement.
        DbConn::Pg(c) if reserved && turn.is_none() => {
            let audit_row = audited.as_ref().map(audit::Stored::row);
            match budget_queries::finish_and_settle(
                c,
                call,
                finish,
                &add_to,
                audit_row.as_ref(),
                &opened.watched,
                opened.reserved_in,
            )
            .await
            {
                Ok(budget_queries::FinishedAndSettled {
                    record: Some(record),
                    watched,
                    tokens_counted,
                }) => {
                    if let Err(e) = tokens_counted {
                        tracing::warn!(ai_call.id = %call.id, error = %e, "counting tokens for the rate limit failed");
                    }
                    // Thresholds after the commit: each is raised once per period, by whichever
                    // settlement gets to it first. The call is recorded and settled whatever
                    // happens here; a threshold not raised now is raised by the next settlement.
                    let alerts = match budgets::raise_thresholds(conn, &watched).await {
                        Ok(alerts) => alerts,
                        Err(e) => {
                            tracing::warn!(ai_call.id = %call.id, error = %e, "raising budget thresholds failed");
                            Vec::new()
                        }
                    };
                    Ok((record, alerts))
                }
                Ok(budget_queries::FinishedAndSettled { record: None, .. }) => {
                    Err(already_finished())
                }
                Err(e) => Err(e.into()),
            }
        }
        _ => {
            // On PostgreSQL the finish with its rollups and audit row is one statement: with
            // nothing to settle and no turn to append, it needs no transaction around it.
            let pg = matches!(conn, DbConn::Pg(_));
            let alone = pg && !reserved && turn.is_none();
            // Where it is in a transaction on PostgreSQL, the tokens are counted after the
            // commit, as above (`db::budgets::finish_and_settle` says why).
            let later = pg && !alone;
            let add_to = budget_queries::AddTo {
                token_counters: if later { &[] } else { add_to.token_counters },
                ..add_to
            };
            let body = async |tx: &mut DbConn| {
                let audit_row = audited.as_ref().map(audit::Stored::row);
                let record = budget_queries::finish_and_add_to_daily(
                    tx,
                    call,
                    finish,
                    &add_to,
                    audit_row.as_ref(),
                )
                .await?
                .ok_or_else(already_finished)?;
                let alerts = if reserved {
                    let tokens = record.prompt_tokens + record.completion_tokens;
                    let currency = record.currency.as_deref();
                    budgets::settle(tx, &call.id, record.cost_micros, currency, tokens).await?
                } else {
                    Vec::new()
                };
                if let Some(turn) = turn {
                    conversations::append_turn(tx, &app.sealer, turn).await?;
                }
                Ok((record, alerts))
            };
            let finished = if alone {
                conn.write(body).await
            } else {
                conn.transaction(body).await
            };
            if let Ok((record, _)) = &finished
                && later
            {
                let tokens = record.prompt_tokens + record.completion_tokens;
                let counters = opened.tokens_per_minute.keys();
                if let Err(e) = rate_limits::spend(conn, counters, add_to.minute, tokens).await {
                    tracing::warn!(ai_call.id = %call.id, error = %e, "counting tokens for the rate limit failed");
                }
            }
            finished
        }
    }
}

/// Inserts, alone, a `PENDING` record that its batch gave back. A unique violation means the
/// batch's statement did insert it and only its answer was lost (the connection dropped after
/// the commit): the id is the call's own UUIDv7, so the row is this call's.
async fn insert_pending_given_back(app: &App, call: &AiCall) -> Result<(), Error> {
    let mut conn = app.db.get().await?;
    match conn
        .write(async |c| Ok(ai_calls::insert_pending(c, call).await?))
        .await
    {
        Err(Error::Database(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        ))) => Ok(()),
        other => other,
    }
}

/// A finish that found no `PENDING` row: when the row is not there at all, the database lost
/// its insert, committed without waiting for the disk (`db::ai_calls::insert_pending`), in a
/// crash while the call was in flight. It is written again, here synchronously, so that the
/// call is recorded, counted and priced like any other; `true` then, and the finish runs again.
/// A call with budgets was admitted synchronously and never needs this.
async fn write_lost_pending_again(conn: &mut DbConn, opened: &Opened) -> Result<bool, Error> {
    if opened.reserved_in > 0 {
        return Ok(false);
    }
    let call = &opened.call;
    if ai_calls::exists(conn, &call.id).await? {
        return Ok(false);
    }
    tracing::warn!(ai_call.id = %call.id, "the call's PENDING record was lost (a database crash before its commit reached the disk); writing it again");
    conn.write(async |c| Ok(ai_calls::insert(c, call).await?))
        .await?;
    Ok(true)
}

fn already_finished() -> Error {
    Error::Conflict("the call was already finished".into())
}

/// Step 3, after the commit (subscribers read what is now stored): the events, the log lines and
/// the metrics.
fn publish(app: &App, record: &AiCall, alerts: Vec<Event>) {
    app.events.publish(Event::call_updated(record));
    app.events.publish(Event::UsageUpdated {
        user_id: record.user_id.clone(),
    });
    for alert in alerts {
        app.events.publish(alert);
    }
    tracing::info!(
        ai_call.id = %record.id, provider = %record.provider, model = %record.model,
        status = %record.status, cost_micros = record.cost_micros,
        latency_ms = record.latency_ms.unwrap_or_default(), "AI call finished"
    );
    if record.status == CallStatus::Failed {
        tracing::warn!(
            target: "cloudbase::event::provider",
            provider = %record.provider, model = %record.model, ai_call.id = %record.id,
            error.code = record.error_code.as_deref().unwrap_or(""), "AI call failed"
        );
    }
    crate::metrics::record_call(&app.metrics, record);
}

/// A rough token estimate (about four characters a token), used only when a provider reports no
/// usage; such records say `ESTIMATED`.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// The usage of a call whose provider reported none.
pub(super) fn estimate_usage(request: &ChatRequest, completion: &str) -> Usage {
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

/// Milliseconds since `since`.
pub(super) fn ms(since: Instant) -> i64 {
    i64::try_from(since.elapsed().as_millis()).unwrap_or(i64::MAX)
}

fn tokens(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// What the record keeps of an error: its code and message.
pub(super) fn described(error: &Error) -> (&'static str, String) {
    (error.code().as_str(), error.to_string())
}

/// One entry of the attempt chain.
pub(super) fn attempt(
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
