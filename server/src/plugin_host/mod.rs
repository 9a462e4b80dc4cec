//! The plugin host: loads every library in the plugins folder, creates the configured instances,
//! and serves them to the services through [`PluginHost`]. A bad library or instance is listed as
//! `FAILED` (or `DISABLED`) with its reason; the server keeps serving.
//!
//! - [`library`]: opening a library and checking symbol, ABI version, table size and panic flag.
//! - [`call`]: calls into a plugin on the blocking pool, under a deadline.
//! - [`upstream`]: HTTP for sans-IO plugins: secrets, timeouts, server-sent events.
//! - [`user_http`]: the client for addresses users gave: no redirects, public addresses only.
//! - [`smtp`]: email delivery.
//! - [`instances`]: turning `[plugins.<instance>]` config into live instances.

pub mod call;
pub mod instances;
pub mod library;
pub mod smtp;
pub mod upstream;
pub mod user_http;

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudbase_plugin_api::{
    ChatRequest, ChatResponse, Delivery, DeliveryReport, ErrorCode, HttpRequest, HttpResponse,
    Manifest, ModelInfo, Notification, SseEvent, StreamEvent, Transport,
};
use cloudbase_schema::Error;
use cloudbase_schema::ports::{
    Destination, EventStream, ModelRow, PluginHost, PluginRow, ProviderReply, StreamStart,
};
use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, StreamExt};

use self::call::{CallFailure, Instance};
use crate::config::{Config, UpstreamTimeouts};

/// A live provider instance.
struct Provider {
    name: String,
    instance: Arc<Instance>,
    manifest: Manifest,
    models: Vec<ModelInfo>,
    client: reqwest::Client,
    secrets: BTreeMap<String, String>,
    timeouts: UpstreamTimeouts,
    retries: u32,
    retry_backoff: Duration,
    cache_ttl: Option<Duration>,
}

/// A live notifier instance.
struct Notifier {
    name: String,
    instance: Arc<Instance>,
    client: reqwest::Client,
    /// For addresses users gave: no redirects, public addresses only ([`user_http::client`]).
    user_client: reqwest::Client,
    secrets: BTreeMap<String, String>,
    timeouts: UpstreamTimeouts,
}

/// Everything the plugins folder and config produced.
#[derive(Default)]
pub struct Registry {
    /// `[alerts] allow_private_targets`: users' webhooks may reach this network.
    allow_private_targets: bool,
    rows: Vec<PluginRow>,
    providers: BTreeMap<String, Provider>,
    notifiers: BTreeMap<String, Notifier>,
}

impl Registry {
    /// No plugins at all (for CLI commands that do not serve).
    pub fn empty() -> Self {
        Self::default()
    }

    /// Scans `config.plugins_dir()` and creates every instance.
    pub async fn load(config: &Config) -> Self {
        let dir = config.plugins_dir();
        let deadline = Duration::from_millis(config.plugin_call_timeout_ms);
        let loaded = instances::load_libraries(&dir, deadline).await;
        instances::create_instances(config, loaded, deadline).await
    }

    fn provider(&self, name: &str) -> Result<&Provider, Error> {
        self.providers.get(name).ok_or_else(|| Error::BadInput {
            field: Some("input.provider"),
            message: format!("unknown provider `{name}`; see `models` for what you can call"),
        })
    }
}

/// Turns a failed plugin call into the service error clients see; misbehaviour is logged here.
fn failure(instance: &str, f: CallFailure) -> Error {
    match f {
        CallFailure::Plugin(e) => match e.code {
            ErrorCode::BadInput => Error::BadInput {
                field: None,
                message: e.message,
            },
            ErrorCode::Upstream => Error::Upstream(e.message),
            ErrorCode::Config => {
                Error::Upstream(format!("`{instance}` is misconfigured: {}", e.message))
            }
            ErrorCode::Unsupported | ErrorCode::Internal => {
                Error::Plugin(format!("plugin `{instance}`: {}", e.message))
            }
        },
        CallFailure::TimedOut(_) => {
            tracing::warn!(plugin.instance = %instance, error = %f, "plugin call timed out");
            Error::Timeout(format!("plugin `{instance}` {f}"))
        }
        other => {
            tracing::warn!(plugin.instance = %instance, error = %other, "plugin call failed");
            Error::Plugin(format!("plugin `{instance}` {other}"))
        }
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Provider {
    fn what(&self) -> String {
        format!("provider `{}`", self.name)
    }

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
    /// first byte, a 429 or a 5xx, at most `retries` more times. Returns the last response.
    async fn send_retrying(&self, http: &HttpRequest) -> Result<(reqwest::Response, u32), Error> {
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let outcome = upstream::send(
                &self.client,
                http,
                &self.secrets,
                &self.timeouts,
                &self.what(),
            )
            .await;
            let (retryable, asked) = match &outcome {
                Ok(response) => upstream::retry_hint(response),
                Err(failure) => (failure.retryable, None),
            };
            if !retryable || attempts > self.retries {
                return outcome.map(|r| (r, attempts)).map_err(Error::from);
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

    async fn complete(&self, request: ChatRequest) -> Result<ProviderReply, Error> {
        let started = Instant::now();
        let (response, http_attempts): (ChatResponse, u32) = match self.manifest.transport {
            Transport::Local => (self.call("chat.complete", &request).await?, 1),
            Transport::Http => {
                let http: HttpRequest = self.call("chat.build_request", &request).await?;
                let (sent, attempts) = self.send_retrying(&http).await?;
                let whole = upstream::read_whole(sent, &self.what()).await?;
                (self.call("chat.parse_response", &whole).await?, attempts)
            }
        };
        Ok(ProviderReply {
            response,
            upstream_ms: elapsed_ms(started),
            http_attempts,
        })
    }

    async fn stream(&self, mut request: ChatRequest) -> Result<StreamStart, Error> {
        request.stream = true;
        match self.manifest.transport {
            Transport::Local => {
                let input = serde_json::to_vec(&request)
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
                    let whole: HttpResponse = upstream::read_whole(sent, &self.what()).await?;
                    let status = whole.status;
                    return Err(
                        match self
                            .call::<_, ChatResponse>("chat.parse_response", &whole)
                            .await
                        {
                            Err(e) => e,
                            Ok(_) => {
                                Error::Upstream(format!("{} answered HTTP {status}", self.what()))
                            }
                        },
                    );
                }
                let events = upstream::sse_events(sent, self.what());
                Ok(StreamStart {
                    events: http_events(events, Arc::clone(&self.instance), self.name.clone()),
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
    instance: Arc<Instance>,
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
                        .call::<_, Vec<StreamEvent>>("chat.parse_stream_event", &sse)
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

impl Notifier {
    async fn deliver(
        &self,
        notification: Notification,
        destination: Destination,
    ) -> Result<DeliveryReport, Error> {
        let what = format!("channel `{}`", self.name);
        let client = match destination {
            Destination::Operator => &self.client,
            Destination::User => &self.user_client,
        };
        let delivery: Delivery = self
            .instance
            .call("notify.build", &notification)
            .await
            .map_err(|f| failure(&self.name, f))?;
        match delivery {
            Delivery::Http { request } => {
                let sent =
                    match upstream::send(client, &request, &self.secrets, &self.timeouts, &what)
                        .await
                    {
                        Ok(sent) => sent,
                        // A plugin bug is an error; an unreachable channel is a failed delivery.
                        Err(upstream::Failure {
                            error: Error::Plugin(m),
                            ..
                        }) => return Err(Error::Plugin(m)),
                        Err(failure) => {
                            return Ok(DeliveryReport {
                                ok: false,
                                detail: failure.error.to_string(),
                            });
                        }
                    };
                if destination == Destination::User && sent.status().is_redirection() {
                    return Ok(DeliveryReport {
                        ok: false,
                        detail: format!(
                            "{what}: the webhook answered HTTP {} (a redirect); redirects are \
                             not followed for users' webhooks",
                            sent.status().as_u16()
                        ),
                    });
                }
                let whole = match upstream::read_whole(sent, &what).await {
                    Ok(whole) => whole,
                    Err(e) => {
                        return Ok(DeliveryReport {
                            ok: false,
                            detail: e.to_string(),
                        });
                    }
                };
                self.instance
                    .call("notify.parse_response", &whole)
                    .await
                    .map_err(|f| failure(&self.name, f))
            }
            Delivery::Email { email } => {
                Ok(smtp::send(&email, Duration::from_millis(self.timeouts.total_ms)).await)
            }
        }
    }
}

impl PluginHost for Registry {
    fn plugins(&self) -> Vec<PluginRow> {
        self.rows.clone()
    }

    fn models(&self) -> Vec<ModelRow> {
        self.providers
            .values()
            .flat_map(|p| {
                p.models.iter().map(|info| ModelRow {
                    provider: p.name.clone(),
                    plugin: p.manifest.name.clone(),
                    info: info.clone(),
                    mock: p.manifest.mock,
                })
            })
            .collect()
    }

    fn chat(
        &self,
        provider: &str,
        request: ChatRequest,
    ) -> BoxFuture<'_, Result<ProviderReply, Error>> {
        let provider = self.provider(provider);
        Box::pin(async move { provider?.complete(request).await })
    }

    fn chat_stream(
        &self,
        provider: &str,
        request: ChatRequest,
    ) -> BoxFuture<'_, Result<StreamStart, Error>> {
        let provider = self.provider(provider);
        Box::pin(async move { provider?.stream(request).await })
    }

    fn cache_ttl(&self, provider: &str) -> Option<Duration> {
        self.providers.get(provider).and_then(|p| p.cache_ttl)
    }

    fn notify(
        &self,
        channel: &str,
        notification: Notification,
        destination: Destination,
    ) -> BoxFuture<'_, Result<DeliveryReport, Error>> {
        let notifier = self.notifiers.get(channel).ok_or_else(|| Error::BadInput {
            field: Some("channel"),
            message: format!("unknown notification channel `{channel}`"),
        });
        Box::pin(async move { notifier?.deliver(notification, destination).await })
    }
}

/// The file name of a library, for listings (never the full path).
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
