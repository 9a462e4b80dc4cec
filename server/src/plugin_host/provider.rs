//! A live provider instance: a chat call, whole or streamed, through a local plugin or through
//! the plugin's HTTP requests, with retries and backoff.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use cloudbase_plugin_api::{
    ChatRequest, ChatResponse, HttpRequest, HttpResponse, JsonBodies, Manifest, ModelInfo,
    SseEvent, StreamEvent, Transport,
};
use cloudbase_schema::Error;
use cloudbase_schema::ports::{EventStream, ProviderReply, StreamStart};
use futures_util::stream::{BoxStream, StreamExt};

use super::call;
use super::callee::Callee;
use super::failure::{CallFailure, failure};
use super::upstream;
use crate::config::UpstreamTimeouts;

/// A live provider instance.
pub(super) struct Provider {
    pub(super) name: String,
    /// "provider `name`", for messages.
    pub(super) what: String,
    /// The endpoint the plugin builds, parsed once.
    pub(super) url: upstream::UrlMemo,
    pub(super) instance: Callee,
    pub(super) manifest: Manifest,
    pub(super) models: Vec<ModelInfo>,
    pub(super) client: reqwest::Client,
    pub(super) secrets: BTreeMap<String, String>,
    pub(super) timeouts: UpstreamTimeouts,
    pub(super) retries: u32,
    pub(super) retry_backoff: Duration,
    pub(super) cache_ttl: Option<Duration>,
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Provider {
    async fn call<I: serde::Serialize + ?Sized, O: serde::de::DeserializeOwned>(
        &self,
        method: &'static str,
        input: &I,
    ) -> Result<O, Error> {
        self.instance
            .call(method, input)
            .await
            .map_err(|f| failure(&self.name, f))
    }

    /// Sends `http`, trying again (with backoff) after a connect failure, a timeout before the
    /// first byte, a 429 or a 5xx, at most `retries` more times, unless the plugin reads the
    /// answer as a billing refusal ([`Self::refuse_billing`]). Returns the last response.
    async fn send_retrying(&self, http: &HttpRequest) -> Result<(reqwest::Response, u32), Error> {
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let outcome = upstream::send(
                &self.client,
                http,
                &self.secrets,
                &self.timeouts,
                &self.what,
                Some(&self.url),
            )
            .await;
            let (retryable, asked) = match &outcome {
                Ok(response) => upstream::retry_hint(response),
                Err(failure) => (failure.retryable, None),
            };
            if !retryable || attempts > self.retries {
                return outcome.map(|r| (r, attempts)).map_err(Error::from);
            }
            if let Ok(response) = outcome {
                self.refuse_billing(response).await?;
            }
            let backoff = self
                .retry_backoff
                .saturating_mul(1 << (attempts - 1).min(5))
                .min(Duration::from_secs(5));
            let wait = asked.map_or(backoff, |a| a.min(Duration::from_secs(10)).max(backoff));
            tracing::info!(
                provider = %self.name,
                attempt = attempts,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "retrying the provider"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// The plugin's reading of a whole answer (its body as JSON itself when the plugin reads
    /// that form: `cloudbase_plugin_api::JsonBodies`).
    async fn parse_response(&self, whole: &HttpResponse) -> Result<ChatResponse, Error> {
        let raw_json = self.instance.raw_json_bodies();
        self.call(
            "chat.parse_response",
            &JsonBodies {
                message: whole,
                raw_json,
            },
        )
        .await
    }

    /// Before a retryable answer (a 429 or 5xx) is retried, lets the plugin read it: a billing
    /// refusal (Moonshot answers a used-up balance with 429) ends the call instead, since waiting
    /// cannot clear it. Any other reading lets the retry go ahead.
    async fn refuse_billing(&self, response: reqwest::Response) -> Result<(), Error> {
        let Ok(whole) = upstream::read_whole(response, &self.what).await else {
            return Ok(());
        };
        match self.parse_response(&whole).await {
            Err(billing @ Error::UpstreamBilling(_)) => Err(billing),
            _ => Ok(()),
        }
    }

    pub(super) async fn complete(&self, request: ChatRequest) -> Result<ProviderReply, Error> {
        let started = Instant::now();
        let (response, http_attempts): (ChatResponse, u32) = match self.manifest.transport {
            Transport::Local => (self.call("chat.complete", &request).await?, 1),
            Transport::Http => {
                let http: HttpRequest = self.call("chat.build_request", &request).await?;
                let (sent, attempts) = self.send_retrying(&http).await?;
                let whole = upstream::read_whole(sent, &self.what).await?;
                (self.parse_response(&whole).await?, attempts)
            }
        };
        Ok(ProviderReply {
            response,
            upstream_ms: elapsed_ms(started),
            http_attempts,
        })
    }

    pub(super) async fn stream(&self, mut request: ChatRequest) -> Result<StreamStart, Error> {
        request.stream = true;
        match self.manifest.transport {
            Transport::Local => {
                let input = cloudbase_plugin_api::ffi::to_json(&request)
                    .map_err(|e| Error::Internal(format!("encoding a chat request: {e}")))?;
                let (events, done) = self.instance.start_stream("chat.stream", input);
                Ok(StreamStart {
                    events: local_events(events, done, self.instance.deadline(), self.name.clone()),
                    http_attempts: 1,
                })
            }
            Transport::Http => {
                let http: HttpRequest = self.call("chat.build_request", &request).await?;
                let (sent, http_attempts) = self.send_retrying(&http).await?;
                if !sent.status().is_success() {
                    // The plugin turns the provider's error body into the right error.
                    let whole: HttpResponse = upstream::read_whole(sent, &self.what).await?;
                    let status = whole.status;
                    return Err(match self.parse_response(&whole).await {
                        Err(e) => e,
                        Ok(_) => Error::Upstream(format!("{} answered HTTP {status}", self.what)),
                    });
                }
                let events = upstream::sse_events(sent, self.what.clone());
                Ok(StreamStart {
                    events: http_events(events, self.instance.clone(), self.name.clone()),
                    http_attempts,
                })
            }
        }
    }
}

/// Events of a local (in-plugin) stream, with the plugin deadline as the idle limit. The stream
/// ends after the plugin's last event, or right after the first error.
fn local_events(
    events: tokio::sync::mpsc::Receiver<Vec<u8>>,
    done: tokio::task::JoinHandle<Result<(), CallFailure>>,
    idle: Duration,
    instance: String,
) -> EventStream {
    let state = (events, Some(done), instance);
    futures_util::stream::unfold(state, move |(mut events, done, instance)| async move {
        let done = done?;
        match tokio::time::timeout(idle, events.recv()).await {
            Ok(Some(bytes)) => {
                let item =
                    call::decode_event::<StreamEvent>(&bytes).map_err(|f| failure(&instance, f));
                let next = if item.is_ok() { Some(done) } else { None };
                Some((item, (events, next, instance)))
            }
            Ok(None) => {
                let error = match done.await {
                    Ok(Ok(())) => return None,
                    Ok(Err(f)) => failure(&instance, f),
                    Err(join) => failure(&instance, CallFailure::Panicked(join.to_string())),
                };
                Some((Err(error), (events, None, instance)))
            }
            Err(_) => {
                // Dropping the receiver (with the state) tells the plugin to stop at its next event.
                let error = failure(&instance, CallFailure::TimedOut(idle));
                Some((Err(error), (events, None, instance)))
            }
        }
    })
    .boxed()
}

/// Events of an HTTP stream: each server-sent event parsed by the plugin.
fn http_events(
    events: BoxStream<'static, Result<SseEvent, Error>>,
    instance: Callee,
    name: String,
) -> EventStream {
    let state = (
        events,
        VecDeque::<StreamEvent>::new(),
        instance,
        name,
        false,
    );
    futures_util::stream::unfold(
        state,
        |(mut events, mut ready, instance, name, failed)| async move {
            loop {
                if let Some(event) = ready.pop_front() {
                    return Some((Ok(event), (events, ready, instance, name, failed)));
                }
                if failed {
                    return None;
                }
                match events.next().await? {
                    Ok(sse) => match instance
                        .call::<_, Vec<StreamEvent>>(
                            "chat.parse_stream_event",
                            &JsonBodies {
                                message: &sse,
                                raw_json: instance.raw_json_bodies(),
                            },
                        )
                        .await
                    {
                        Ok(parsed) => ready.extend(parsed),
                        Err(f) => {
                            let error = failure(&name, f);
                            return Some((Err(error), (events, ready, instance, name, true)));
                        }
                    },
                    Err(e) => return Some((Err(e), (events, ready, instance, name, true))),
                }
            }
        },
    )
    .boxed()
}
