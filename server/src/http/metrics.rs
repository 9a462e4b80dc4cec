//! `/metrics`: the instance's metrics in the Prometheus text format.
//!
//! Open to loopback clients (unless `[metrics] loopback = false`) and to anyone presenting the
//! `[metrics] token` as a bearer token; everyone else gets 403. A loopback client is a loopback
//! peer whose request carries no forwarding header (`Forwarded`, `X-Forwarded-For`,
//! `X-Real-IP`): a request relayed by a proxy on the same host is not one, whatever the header
//! claims, since a client can write any address there.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cloudbase_schema::metrics::Metrics;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::HttpState;
use super::error::{MediaType, json_error};

/// Latency buckets, in seconds: 1 ms to 60 s.
const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// The gateway's own overhead is small: finer buckets, 100 µs to 1 s.
const OVERHEAD_SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Who may scrape, and what to render.
#[derive(Clone)]
pub struct MetricsEndpoint {
    /// Renders the recorder.
    pub handle: PrometheusHandle,
    /// Loopback clients may scrape.
    pub loopback: bool,
    /// A bearer token that may scrape from anywhere.
    pub token: Option<Arc<str>>,
}

/// A new recorder for one instance, and the handle that renders it.
pub fn recorder() -> (Metrics, PrometheusHandle) {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_duration_seconds".into()), SECONDS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full("cloudbase_ai_overhead_duration_seconds".into()),
                OVERHEAD_SECONDS,
            )
        })
        .unwrap_or_else(|_| PrometheusBuilder::new());
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    (Metrics::new(Arc::new(recorder)), handle)
}

/// `GET /metrics`.
pub async fn handler(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let Some(endpoint) = &state.metrics else {
        return json_error(
            StatusCode::NOT_FOUND,
            MediaType::Json,
            "NOT_FOUND",
            "metrics are turned off",
        );
    };
    let relayed = ["forwarded", "x-forwarded-for", "x-real-ip"]
        .iter()
        .any(|h| headers.contains_key(*h));
    let loopback = peer.ip().is_loopback() && !relayed;
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let token_ok = match (&endpoint.token, bearer) {
        (Some(expected), Some(given)) => constant_time_eq(expected.as_bytes(), given.as_bytes()),
        _ => false,
    };
    if !(token_ok || (endpoint.loopback && loopback)) {
        return json_error(
            StatusCode::FORBIDDEN,
            MediaType::Json,
            "FORBIDDEN",
            "metrics are open to loopback clients and to the configured bearer token",
        );
    }
    let app = &state.app;
    let pool = app.db.usage();
    let writer = app.db.write_gate().map(|gate| gate.stats());
    let (accepted, dropped, written) =
        (app.logs.accepted(), app.logs.dropped(), app.logs.written());
    app.metrics.record(|| {
        for (state, n) in [
            ("in_use", pool.in_use),
            ("idle", pool.idle),
            ("max", pool.max),
            ("waiting", pool.waiting),
        ] {
            metrics::gauge!("cloudbase_db_pool_connections", "state" => state).set(n as f64);
        }
        if let Some(writer) = &writer {
            metrics::counter!("cloudbase_sqlite_writes_total").absolute(writer.writes);
            metrics::counter!("cloudbase_sqlite_commits_total").absolute(writer.commits);
        }
        for (outcome, n) in [
            ("queued", accepted),
            ("dropped", dropped),
            ("written", written),
        ] {
            metrics::counter!("cloudbase_logs_total", "outcome" => outcome).absolute(n);
        }
    });
    endpoint.handle.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        endpoint.handle.render(),
    )
        .into_response()
}

/// Compares without stopping at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
