//! A stream in progress: what it has seen so far, how it ends (succeeded, failed, or cancelled
//! when its client goes away), and the stream of chunks handed to the client.

use std::sync::Arc;
use std::time::Instant;

use cloudbase_plugin_api::{StreamEvent, Usage};
use futures_util::stream::{BoxStream, StreamExt};

use super::prepare::Prepared;
use super::record::{self, Ending, Opened, described, ms};
use super::{CacheKey, ChatChunk, ChatOutcome, Target, remember};
use crate::Error;
use crate::domain::{CallStatus, UsageSource};
use crate::ports::EventStream;
use crate::services::{App, admission, breakers, plugins};

/// The state of a stream in progress; finishing it as `CANCELLED` if it is dropped unfinished.
pub(super) struct Streaming {
    /// The call's slot, until the stream ends or is dropped.
    _admitted: admission::Admitted,
    app: Arc<App>,
    opened: Opened,
    prepared: Arc<Prepared>,
    provider: String,
    model: String,
    attempts: Vec<serde_json::Value>,
    /// The provider's breaker, told how the stream ended (dropped untold when it was cancelled).
    pass: Option<breakers::Pass>,
    cache: Option<CacheKey>,
    started: Instant,
    first_token: Option<i64>,
    content: String,
    reasoning: String,
    usage: Option<Usage>,
    finish_reason: Option<String>,
    finished: bool,
}

impl Streaming {
    pub(super) fn new(
        admitted: admission::Admitted,
        app: Arc<App>,
        opened: Opened,
        prepared: Prepared,
        target: Target,
        cache: Option<CacheKey>,
        started: Instant,
    ) -> Self {
        Self {
            _admitted: admitted,
            app,
            opened,
            prepared: Arc::new(prepared),
            provider: target.provider,
            model: target.model,
            attempts: target.attempts,
            pass: target.pass,
            cache,
            started,
            first_token: None,
            content: String::new(),
            reasoning: String::new(),
            usage: None,
            finish_reason: None,
            finished: false,
        }
    }

    fn usage_or_estimate(&self) -> (Usage, UsageSource) {
        match self.usage {
            Some(u) => (u, UsageSource::Reported),
            None => (
                record::estimate_usage(&self.prepared.request, &self.content),
                UsageSource::Estimated,
            ),
        }
    }

    fn ending(&self, status: CallStatus, error: Option<(&'static str, String)>) -> Ending {
        let mut attempts = self.attempts.clone();
        if let Some(last) = attempts.last_mut() {
            let outcome = error.as_ref().map_or(status.as_str(), |(code, _)| *code);
            last["outcome"] = serde_json::json!(outcome);
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

    /// Keeps a delta; the chunk for the client, unless it carried no text.
    fn delta(&mut self, content: String, reasoning: String) -> Option<ChatChunk> {
        if content.is_empty() && reasoning.is_empty() {
            return None;
        }
        self.first_token.get_or_insert_with(|| ms(self.started));
        self.content.push_str(&content);
        self.reasoning.push_str(&reasoning);
        Some(ChatChunk::Delta {
            call_id: self.opened.call.id.clone(),
            content,
            reasoning,
        })
    }

    /// The upstream failed mid-stream: the call is recorded as `FAILED`.
    async fn fail(mut self, error: Error) -> Error {
        self.finished = true;
        if let Some(pass) = self.pass.take() {
            pass.failed(&self.app, &error);
        }
        plugins::count_call_error(&self.app, &self.provider, &error);
        let ending = self.ending(CallStatus::Failed, Some(described(&error)));
        match record::close(&self.app, &self.opened, &self.prepared, ending).await {
            Ok(_) => error,
            Err(e) => e,
        }
    }

    /// The upstream ended: the call is recorded as `SUCCEEDED` and the reply cached.
    async fn succeed(mut self) -> Result<ChatChunk, Error> {
        self.finished = true;
        if let Some(pass) = self.pass.take() {
            pass.succeeded(&self.app);
        }
        let ending = self.ending(CallStatus::Succeeded, None);
        let record = record::close(&self.app, &self.opened, &self.prepared, ending).await?;
        let outcome = ChatOutcome {
            content: std::mem::take(&mut self.content),
            reasoning: Some(std::mem::take(&mut self.reasoning)).filter(|r| !r.is_empty()),
            finish_reason: self.finish_reason.take(),
            call: record,
        };
        remember(&self.app, self.cache.take(), &outcome);
        Ok(ChatChunk::Done(Box::new(outcome)))
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // The client went away mid-stream: the upstream request is cancelled with the stream,
        // and the call is recorded as CANCELLED with what was seen (or an estimate).
        record::close_in_background(
            Arc::clone(&self.app),
            self.opened.clone(),
            Arc::clone(&self.prepared),
            self.ending(CallStatus::Cancelled, None),
        );
    }
}

/// The chunks for the client: deltas as the upstream sends them, then the finished record (or
/// the error that ended the stream).
pub(super) fn deliver(
    upstream: EventStream,
    state: Streaming,
) -> BoxStream<'static, Result<ChatChunk, Error>> {
    futures_util::stream::unfold(Some((upstream, state)), |step| async move {
        let (mut upstream, mut s) = step?;
        loop {
            match upstream.next().await {
                Some(Ok(StreamEvent::Delta { content, reasoning })) => {
                    if let Some(chunk) = s.delta(content, reasoning) {
                        return Some((Ok(chunk), Some((upstream, s))));
                    }
                }
                // The last usage seen counts; never a sum.
                Some(Ok(StreamEvent::Usage { usage })) => s.usage = Some(usage),
                Some(Ok(StreamEvent::Done { finish_reason })) => {
                    if s.finish_reason.is_none() {
                        s.finish_reason = finish_reason;
                    }
                }
                Some(Err(error)) => return Some((Err(s.fail(error).await), None)),
                None => return Some((s.succeed().await, None)),
            }
        }
    })
    .boxed()
}
