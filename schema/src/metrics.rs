//! Metrics: each instance records into its own recorder (the server gives it a Prometheus one
//! and renders it at `/metrics`), so several servers in one process never mix their numbers.
//!
//! Code records with the `metrics` macros inside [`Metrics::record`]. The names:
//! - `cloudbase_http_requests_total{method,route,status}`, `cloudbase_http_request_duration_seconds{method,route}`
//! - `cloudbase_graphql_operations_total{operation,type,outcome}`, `cloudbase_graphql_operation_duration_seconds{operation,type}`
//! - `cloudbase_ai_calls_total{provider,model,status}`, `cloudbase_ai_call_duration_seconds{provider,model}`,
//!   `cloudbase_ai_upstream_duration_seconds{provider,model}`, `cloudbase_ai_overhead_duration_seconds{provider}`,
//!   `cloudbase_ai_tokens_total{provider,model,kind}`, `cloudbase_ai_cost_micros_total{provider,model,currency}`
//! - `cloudbase_websocket_connections`, `cloudbase_subscriptions_active`
//! - `cloudbase_plugin_call_errors_total{instance,error}`, `cloudbase_event_bus_lagged_events_total`
//! - `cloudbase_provider_breaker_state{instance}` (0 closed, 1 half-open, 2 open; set when it
//!   changes), `cloudbase_provider_breaker_transitions_total{instance,state}`,
//!   `cloudbase_provider_breaker_rejected_total{instance}`: calls failed over without a try
//! - `cloudbase_alerts_total{kind,state}`, `cloudbase_alert_deliveries_total{status}`
//! - `cloudbase_audit_chained_rows_total`: audit rows this instance linked into the chain
//! - read at scrape time: `cloudbase_db_pool_connections{state}`, `cloudbase_logs_total{outcome}`

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

use metrics::{Counter, Histogram};

/// Most distinct GraphQL operation names given their own label; later ones count as `other`,
/// so clients cannot grow the series without bound.
const MAX_OPERATION_NAMES: usize = 200;

/// Most provider and model pairs whose call metrics' handles are kept ([`CallHandles`]); calls
/// of others look theirs up each time, as before.
const MAX_CALL_HANDLES: usize = 1024;

/// The instance's recorder (or none: recording is then a no-op).
#[derive(Default)]
pub struct Metrics {
    recorder: Option<Arc<dyn metrics::Recorder + Send + Sync>>,
    operations: Mutex<HashSet<String>>,
    /// By provider, then model.
    calls: Mutex<HashMap<String, HashMap<String, Arc<CallHandles>>>>,
    /// The per-request metrics' handles ([`Metrics::request`]): by histogram, then its two
    /// labels' values.
    requests: Mutex<RequestHandles>,
}

/// [`Metrics::request`]'s kept handles, by histogram name, then its labels' values.
type RequestHandles = HashMap<&'static str, HashMap<String, HashMap<String, KeptRequest>>>;

/// One series of a per-request histogram, and its counter's series by the last label's value.
struct KeptRequest {
    duration: Histogram,
    counts: Vec<(String, Counter)>,
}

/// Most series of per-request metrics whose handles are kept; requests of others register
/// theirs each time, as before.
const MAX_REQUEST_HANDLES: usize = 1024;

/// Most values of a request counter's last label (statuses, outcomes) kept for one series.
const MAX_REQUEST_OUTCOMES: usize = 64;

/// The handles of one provider and model's call metrics, each registered the first time it is
/// used: by name and labels, a metric is found by building its key (the labels' strings copied)
/// and hashing it in the recorder's registry, seven times a call (`bench/instructions.sh`).
/// Kept handles rely on the recorder never dropping a series it has handed out: the server's
/// sets no idle timeout (`server/src/http/metrics.rs`); with one, a series dropped while idle
/// would go on counting in a handle kept here and no longer be rendered.
#[derive(Default)]
struct CallHandles {
    /// `cloudbase_ai_calls_total`, by status (in [`status_slot`]'s order).
    calls: [OnceLock<Counter>; 4],
    /// `cloudbase_ai_tokens_total`: prompt, cached prompt, completion.
    tokens: [OnceLock<Counter>; 3],
    /// `cloudbase_ai_cost_micros_total`, by currency.
    cost: Mutex<Vec<(String, Counter)>>,
    duration: OnceLock<Histogram>,
    upstream: OnceLock<Histogram>,
    overhead: OnceLock<Histogram>,
}

fn status_slot(status: crate::domain::CallStatus) -> usize {
    use crate::domain::CallStatus;
    match status {
        CallStatus::Pending => 0,
        CallStatus::Succeeded => 1,
        CallStatus::Failed => 2,
        CallStatus::Cancelled => 3,
    }
}

impl Metrics {
    /// Records into `recorder`.
    pub fn new(recorder: Arc<dyn metrics::Recorder + Send + Sync>) -> Self {
        Self {
            recorder: Some(recorder),
            operations: Mutex::default(),
            calls: Mutex::default(),
            requests: Mutex::default(),
        }
    }

    /// The kept handles of `provider` and `model`'s call metrics (fresh ones, registered anew,
    /// past [`MAX_CALL_HANDLES`] pairs).
    fn call_handles(&self, provider: &str, model: &str) -> Arc<CallHandles> {
        let Ok(mut calls) = self.calls.lock() else {
            return Arc::default();
        };
        if let Some(handles) = calls.get(provider).and_then(|models| models.get(model)) {
            return Arc::clone(handles);
        }
        let kept: usize = calls.values().map(HashMap::len).sum();
        if kept >= MAX_CALL_HANDLES {
            return Arc::default();
        }
        let handles = Arc::new(CallHandles::default());
        calls
            .entry(provider.to_owned())
            .or_default()
            .insert(model.to_owned(), Arc::clone(&handles));
        handles
    }

    /// The handle in `slot`, registered by `make` (under this instance's recorder) the first
    /// time.
    fn handle<'h, T>(
        &self,
        slot: &'h OnceLock<T>,
        noop: fn() -> T,
        make: impl FnOnce() -> T,
    ) -> &'h T {
        slot.get_or_init(|| self.register(noop, make))
    }

    /// A handle made by `make` under this instance's recorder (`noop()` without one).
    fn register<T>(&self, noop: fn() -> T, make: impl FnOnce() -> T) -> T {
        match self.recorder.as_deref() {
            Some(recorder) => metrics::with_local_recorder(recorder, make),
            None => noop(),
        }
    }

    /// Runs `f`, whose `metrics` macros record into this instance's recorder (not at all when
    /// there is none).
    pub fn record(&self, f: impl FnOnce()) {
        if let Some(recorder) = self.recorder.as_deref() {
            metrics::with_local_recorder(recorder, f);
        }
    }

    /// Counts a request in `counter` (labelled `labels`, then `last`) and records its `seconds`
    /// in `histogram` (labelled `labels`), through handles kept by the labels' values: by name
    /// and labels a metric is found by copying its labels into a key and hashing it in the
    /// recorder's registry, twice a request (`bench/RESULTS.md`, "2026-12-05, afternoon").
    /// Callers bound the labels' values (routes, methods, statuses, [`Metrics::operation_label`]).
    pub fn request(
        &self,
        (counter, histogram): (&'static str, &'static str),
        labels: [(&'static str, &str); 2],
        last: (&'static str, &str),
        seconds: f64,
    ) {
        if self.recorder.is_none() {
            return;
        }
        let owned = || labels.map(|(k, v)| (k, v.to_owned()));
        let register_count = || {
            self.register(Counter::noop, || {
                let [a, b] = owned();
                metrics::counter!(counter, &[a, b, (last.0, last.1.to_owned())])
            })
        };
        let register_duration =
            || self.register(Histogram::noop, || metrics::histogram!(histogram, &owned()));
        let Ok(mut kept) = self.requests.lock() else {
            return;
        };
        let [(_, a), (_, b)] = labels;
        if let Some(series) = kept
            .get_mut(histogram)
            .and_then(|by_a| by_a.get_mut(a))
            .and_then(|by_b| by_b.get_mut(b))
        {
            series.duration.record(seconds);
            match series.counts.iter().find(|(v, _)| v == last.1) {
                Some((_, count)) => count.increment(1),
                None if series.counts.len() < MAX_REQUEST_OUTCOMES => {
                    let count = register_count();
                    count.increment(1);
                    series.counts.push((last.1.to_owned(), count));
                }
                None => register_count().increment(1),
            }
            return;
        }
        let (duration, count) = (register_duration(), register_count());
        duration.record(seconds);
        count.increment(1);
        let series: usize = kept
            .values()
            .flat_map(HashMap::values)
            .map(HashMap::len)
            .sum();
        if series < MAX_REQUEST_HANDLES {
            kept.entry(histogram)
                .or_default()
                .entry(a.to_owned())
                .or_default()
                .insert(
                    b.to_owned(),
                    KeptRequest {
                        duration,
                        counts: vec![(last.1.to_owned(), count)],
                    },
                );
        }
    }

    /// The label for an operation name: the name if it is short and plain and among the first
    /// [`MAX_OPERATION_NAMES`] seen, `anonymous` without one, `other` otherwise.
    pub fn operation_label(&self, name: Option<&str>) -> String {
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            return "anonymous".into();
        };
        let plain =
            name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !plain {
            return "other".into();
        }
        let Ok(mut seen) = self.operations.lock() else {
            return "other".into();
        };
        if seen.contains(name) || seen.len() < MAX_OPERATION_NAMES {
            seen.insert(name.to_owned());
            name.to_owned()
        } else {
            "other".into()
        }
    }
}

/// Decrements a gauge when dropped (a connection or subscription ended).
pub struct GaugeGuard {
    app: Arc<crate::App>,
    name: &'static str,
}

impl GaugeGuard {
    /// Increments gauge `name` now, and decrements it on drop.
    pub fn new(app: Arc<crate::App>, name: &'static str) -> Self {
        app.metrics.record(|| metrics::gauge!(name).increment(1.0));
        Self { app, name }
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        let name = self.name;
        self.app
            .metrics
            .record(|| metrics::gauge!(name).decrement(1.0));
    }
}

/// Counts a finished AI call: by status, its tokens and cost, and its timings.
pub fn record_call(m: &Metrics, r: &crate::db::models::AiCall) {
    if m.recorder.is_none() {
        return;
    }
    let h = m.call_handles(&r.provider, &r.model);
    // The labels are built only when a handle is registered.
    let labels = || [("provider", r.provider.clone()), ("model", r.model.clone())];
    let with = |name: &'static str, value: String| {
        let [provider, model] = labels();
        [provider, model, (name, value)]
    };
    let secs = |ms: i64| ms.max(0) as f64 / 1000.0;
    m.handle(&h.calls[status_slot(r.status)], Counter::noop, || {
        metrics::counter!(
            "cloudbase_ai_calls_total",
            &with("status", r.status.to_string())
        )
    })
    .increment(1);
    for (slot, (kind, n)) in h.tokens.iter().zip([
        ("prompt", r.prompt_tokens),
        ("cached_prompt", r.cached_prompt_tokens),
        ("completion", r.completion_tokens),
    ]) {
        if n > 0 {
            m.handle(slot, Counter::noop, || {
                metrics::counter!("cloudbase_ai_tokens_total", &with("kind", kind.to_owned()))
            })
            .increment(n.unsigned_abs());
        }
    }
    if r.cost_micros > 0 {
        let currency = r.currency.as_deref().unwrap_or_default();
        let counter = h.cost.lock().ok().map(|mut kept| {
            if let Some((_, counter)) = kept.iter().find(|(c, _)| c == currency) {
                return counter.clone();
            }
            let counter = m.register(Counter::noop, || {
                metrics::counter!(
                    "cloudbase_ai_cost_micros_total",
                    &with("currency", currency.to_owned())
                )
            });
            kept.push((currency.to_owned(), counter.clone()));
            counter
        });
        if let Some(counter) = counter {
            counter.increment(r.cost_micros.unsigned_abs());
        }
    }
    if let Some(latency) = r.latency_ms {
        m.handle(&h.duration, Histogram::noop, || {
            metrics::histogram!("cloudbase_ai_call_duration_seconds", &labels())
        })
        .record(secs(latency));
        if let Some(upstream) = r.upstream_ms {
            m.handle(&h.upstream, Histogram::noop, || {
                metrics::histogram!("cloudbase_ai_upstream_duration_seconds", &labels())
            })
            .record(secs(upstream));
            m.handle(&h.overhead, Histogram::noop, || {
                metrics::histogram!("cloudbase_ai_overhead_duration_seconds", "provider" => r.provider.clone())
            })
            .record(secs(latency - upstream));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_labels_are_bounded() {
        let m = Metrics::default();
        assert_eq!(m.operation_label(None), "anonymous");
        assert_eq!(m.operation_label(Some("Me")), "Me");
        assert_eq!(m.operation_label(Some("bad name")), "other");
        for i in 0..MAX_OPERATION_NAMES {
            m.operation_label(Some(&format!("Op{i}")));
        }
        assert_eq!(m.operation_label(Some("Me")), "Me");
        assert_eq!(m.operation_label(Some("OneTooMany")), "other");
    }
}
