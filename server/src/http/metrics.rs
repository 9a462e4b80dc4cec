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

/// How often the recorder's histogram samples are folded into their buckets when nobody
/// scrapes (the exporter's own default for its upkeep task).
pub const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// A new recorder for one instance, and the handle that renders it. The recorder keeps every
/// histogram sample (a few per request) until it is drained: [`upkeep`] must run beside it. It
/// drops no idle series (no `idle_timeout`): `cloudbase_schema::metrics` keeps the handles of the
/// call metrics, which must go on being rendered.
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

/// Drains the recorder every `every`, until dropped. Without it every histogram sample (16 bytes
/// each, four or five a call) stays in memory until the next scrape, or for ever when nothing
/// scrapes (`bench/RESULTS.md`, "2026-12-03: the metrics recorder's upkeep").
pub async fn upkeep(handle: PrometheusHandle, every: std::time::Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        handle.run_upkeep();
    }
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
    let batches = app.finishes.batched().then(|| {
        (
            app.pendings.stats(),
            app.finishes.stats(),
            app.admissions.stats(),
        )
    });
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
            metrics::counter!("cloudbase_sqlite_rollup_rows_total").absolute(writer.rollup_rows);
        }
        if let Some((pendings, finishes, admissions)) = &batches {
            metrics::counter!("cloudbase_pg_pending_batches_total").absolute(pendings.batches);
            metrics::counter!("cloudbase_pg_pendings_batched_total").absolute(pendings.written);
            metrics::counter!("cloudbase_pg_finish_batches_total").absolute(finishes.batches);
            metrics::counter!("cloudbase_pg_finishes_batched_total").absolute(finishes.written);
            metrics::counter!("cloudbase_pg_admission_batches_total").absolute(admissions.batches);
            metrics::counter!("cloudbase_pg_admissions_batched_total").absolute(admissions.written);
        }
        for (outcome, n) in [
            ("queued", accepted),
            ("dropped", dropped),
            ("written", written),
        ] {
            metrics::counter!("cloudbase_logs_total", "outcome" => outcome).absolute(n);
        }
    });
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

#[cfg(test)]
#[cfg(all(target_os = "linux", target_env = "gnu"))] // measured with glibc's `mallinfo2`
mod tests {
    use std::time::Duration;

    use super::*;

    /// Set in the process [`unscraped_histograms_stay_bounded_while_the_upkeep_runs`] starts to
    /// measure in.
    const MEASURING: &str = "CLOUDBASE_TEST_MEASURE_UPKEEP";

    /// Bytes allocated through glibc's `malloc`, in all its arenas.
    #[expect(unsafe_code, reason = "mallinfo2 is a C interface")]
    fn allocated() -> usize {
        // SAFETY: mallinfo2 takes no arguments and returns a plain struct.
        unsafe { libc::mallinfo2() }.uordblks
    }

    /// Records `n` samples into one histogram of `metrics`, pausing now and then as requests do.
    fn record_samples(metrics: &Metrics, n: usize) {
        let mut histogram = None;
        metrics.record(|| {
            histogram = Some(metrics::histogram!(
                "cloudbase_http_request_duration_seconds"
            ));
        });
        let histogram = histogram.expect("the recorder gives a histogram");
        for i in 0..n {
            histogram.record(0.001);
            if i % 20_000 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }

    /// The recorder keeps every histogram sample until it is drained. With nothing scraping,
    /// memory grows with every request unless [`upkeep`] runs: two million samples take more
    /// than 8 MB without it (which shows that the measurement sees them) and less than 2 MB
    /// with it. Measured in a process of its own, where no other test allocates.
    #[test]
    fn unscraped_histograms_stay_bounded_while_the_upkeep_runs() {
        if std::env::var_os(MEASURING).is_none() {
            let name =
                "http::metrics::tests::unscraped_histograms_stay_bounded_while_the_upkeep_runs";
            let out = std::process::Command::new(std::env::current_exe().expect("own path"))
                .args(["--exact", name, "--nocapture", "--test-threads=1"])
                .env(MEASURING, "1")
                .output()
                .expect("the measuring process runs");
            let printed = String::from_utf8_lossy(&out.stdout);
            println!("{printed}");
            assert!(
                out.status.success() && printed.contains("1 passed"),
                "{printed}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_time()
            .build()
            .expect("a runtime");
        const SAMPLES: usize = 2_000_000;

        let (unkept, _handle) = recorder();
        let before = allocated();
        record_samples(&unkept, SAMPLES);
        let without = allocated().saturating_sub(before);

        let (kept, handle) = recorder();
        let task = runtime.spawn(upkeep(handle, Duration::from_millis(5)));
        let before = allocated();
        record_samples(&kept, SAMPLES);
        let with = allocated().saturating_sub(before);
        task.abort();

        println!("two million samples: {without} bytes held without the upkeep, {with} with it");
        assert!(without > 8 << 20, "{without} bytes without the upkeep");
        assert!(with < 2 << 20, "{with} bytes with the upkeep");
    }
}
