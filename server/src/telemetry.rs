//! Tracing set-up: `CLOUDBASE_LOG` (or `RUST_LOG`) picks what is printed, `log_format` how; and
//! the layer that stores warn-and-above events and business events in `system_logs`.
//!
//! The subscriber is process-wide, but the store belongs to a server instance (tests run
//! several in one process). Each instance [`register`]s its [`LogSink`] under its instance id,
//! and its requests and background tasks run inside a span carrying that id (see
//! [`instance_span`]); an event is offered to the sink of the instance whose span it is in, or,
//! outside every instance span (a thread the span did not follow), to every registered sink.
//! With one instance per process, as in production, that is the one sink.
//!
//! - [`json`]: the JSON line format (`log_format = "json"`).
//! - [`out`]: printed lines, written to standard output in batches by a thread of their own.

mod json;
mod out;

use std::io::IsTerminal as _;
use std::sync::{Arc, OnceLock, RwLock, Weak};

use cloudbase_schema::db::models::LogRow;
use cloudbase_schema::services::logs::{EVENT_TARGET, LogSink, WRITER_TARGET};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::filter::{EnvFilter, filter_fn};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::LogFormat;

/// The registered sinks, by instance id.
static SINKS: RwLock<Vec<(String, Weak<LogSink>)>> = RwLock::new(Vec::new());

/// Printed lines, on their way to standard output (`out`); set by [`init`].
static OUTPUT: OnceLock<out::Output> = OnceLock::new();

/// Installs the global subscriber once; later calls (tests starting several servers) are no-ops.
pub fn init(format: LogFormat) {
    install(format, false);
}

/// Writes the printed lines still waiting (at exit). Lines after this are dropped.
pub fn finish() {
    if let Some(output) = OUTPUT.get() {
        output.finish();
    }
}

/// Standard output for printed lines, written in batches by a thread of its own; a panic has
/// what is waiting written at once.
fn output() -> out::Output {
    OUTPUT
        .get_or_init(|| {
            let output = out::Output::stdout();
            let urged = output.clone();
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                urged.urge();
                previous(info);
            }));
            output
        })
        .clone()
}

/// [`init`] for tests: printed lines go through the test harness's capture, and only warnings
/// and errors are printed unless `CLOUDBASE_LOG` says otherwise.
pub fn init_for_tests() {
    install(LogFormat::Pretty, true);
}

fn install(format: LogFormat, test: bool) {
    let default = if test { "warn" } else { "info,tower_http=warn" };
    let filter = std::env::var("CLOUDBASE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default.to_owned());
    let filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let records = log_records_wanted(&filter);
    let ansi = !test && std::io::stdout().is_terminal();
    let store = StoreLayer.with_filter(filter_fn(stored));
    let registry = tracing_subscriber::registry().with(store);
    let _ = match (format, test) {
        (_, true) => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_test_writer()
                    .with_filter(filter),
            )
            .try_init(),
        (LogFormat::Pretty, false) => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(ansi)
                    .with_timer(Rfc3339Micros)
                    .with_writer(output())
                    .with_filter(filter),
            )
            .try_init(),
        (LogFormat::Json, false) => registry
            .with(
                // tracing's JSON format, flattened, with the current span (`span`) only:
                // requests run in one span that names the instance and the request, and the
                // list repeated it on every line.
                tracing_subscriber::fmt::layer()
                    .fmt_fields(json::SpanFields)
                    .event_format(json::JsonLine(Rfc3339Micros))
                    .with_writer(output())
                    .with_filter(filter),
            )
            .try_init(),
    };
    // `try_init` bridges the `log` records of dependencies (tokio-postgres, reqwest, mio) into
    // tracing and lets every level through. Each record then went through the filters: on
    // PostgreSQL some forty `trace!` records a call, 5% of its instructions, to print none
    // (`bench/instructions.sh`). Records below what any layer wants now stop at the `log` macro.
    log::set_max_level(records);
}

/// A line's time as tracing's default prints it (`2026-12-04T22:30:00.123456Z`), written by
/// chrono's RFC 3339 writer: the default formats its seven fields through `write!`, which was
/// 0.5% of a call's instructions at one line a call (`bench/instructions.sh`).
struct Rfc3339Micros;

impl tracing_subscriber::fmt::time::FormatTime for Rfc3339Micros {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        w.write_str(&chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
    }
}

/// The least severe `log` record a layer could want: what `filter` prints, and warnings (kept by
/// the store layer whatever the filter). All of them when the filter cannot say.
fn log_records_wanted(filter: &EnvFilter) -> log::LevelFilter {
    use tracing::level_filters::LevelFilter;
    let printed = match filter.max_level_hint() {
        Some(LevelFilter::OFF) => log::LevelFilter::Off,
        Some(LevelFilter::ERROR) => log::LevelFilter::Error,
        Some(LevelFilter::WARN) => log::LevelFilter::Warn,
        Some(LevelFilter::INFO) => log::LevelFilter::Info,
        Some(LevelFilter::DEBUG) => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    printed.max(log::LevelFilter::Warn)
}

/// Offers this instance's log entries to `sink` until the returned guard is dropped.
pub fn register(instance: &str, sink: &Arc<LogSink>) -> Registration {
    if let Ok(mut sinks) = SINKS.write() {
        sinks.retain(|(_, s)| s.strong_count() > 0);
        sinks.push((instance.to_owned(), Arc::downgrade(sink)));
    }
    Registration(instance.to_owned())
}

/// Unregisters a sink when dropped.
pub struct Registration(String);

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut sinks) = SINKS.write() {
            sinks.retain(|(id, s)| *id != self.0 && s.strong_count() > 0);
        }
    }
}

/// The span an instance's requests and tasks run in; its `instance` routes their log entries.
pub fn instance_span(instance: &str) -> tracing::Span {
    tracing::info_span!("instance", instance = %instance)
}

/// What the store layer sees: our spans (for the instance and request id), warn-and-above events
/// and business events, never the writer's own.
fn stored(meta: &Metadata<'_>) -> bool {
    let target = meta.target();
    if meta.is_span() {
        return target.starts_with("cloudbase");
    }
    if target.starts_with(WRITER_TARGET) {
        return false;
    }
    *meta.level() <= Level::WARN || target.starts_with(EVENT_TARGET)
}

/// What the store layer keeps on a span: the instance and request id, from it or a parent.
#[derive(Default, Clone)]
struct Tags {
    instance: Option<String>,
    request_id: Option<String>,
}

impl Visit for Tags {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.set(field, format!("{value:?}"));
    }
}

impl Tags {
    fn set(&mut self, field: &Field, value: String) {
        match field.name() {
            "instance" => self.instance = Some(value),
            "request.id" => self.request_id = Some(value),
            _ => {}
        }
    }
}

/// An event's message and fields as JSON.
#[derive(Default)]
struct Fields {
    message: String,
    fields: Map<String, Value>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_owned()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::String(format!("{value:?}")));
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = match value {
                Value::String(s) => s,
                other => other.to_string(),
            };
        } else {
            self.fields.insert(field.name().to_owned(), value);
        }
    }
}

/// Turns stored events into [`LogRow`]s for the sinks.
struct StoreLayer;

impl<S> Layer<S> for StoreLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut tags = span
            .parent()
            .and_then(|p| p.extensions().get::<Tags>().cloned())
            .unwrap_or_default();
        attrs.record(&mut tags);
        span.extensions_mut().insert(tags);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let tags = ctx
            .event_span(event)
            .and_then(|span| span.extensions().get::<Tags>().cloned())
            .unwrap_or_default();
        let sinks: Vec<Arc<LogSink>> = match SINKS.read() {
            Ok(sinks) => sinks
                .iter()
                .filter(|(id, _)| tags.instance.as_ref().is_none_or(|i| i == id))
                .filter_map(|(_, s)| s.upgrade())
                .collect(),
            Err(_) => return,
        };
        let Some(first) = sinks.first() else {
            return;
        };
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        let level = match *meta.level() {
            Level::ERROR => "ERROR",
            Level::WARN => "WARN",
            _ => "INFO",
        };
        let request_id = tags.request_id.or_else(|| {
            fields
                .fields
                .get("request.id")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        let row = LogRow {
            id: uuid::Uuid::now_v7().to_string(),
            at: first.now().naive_utc(),
            level: level.to_owned(),
            source: meta.target().to_owned(),
            message: fields.message,
            fields: Value::Object(fields.fields).to_string(),
            request_id,
            batch_id: String::new(),
        };
        for sink in &sinks {
            sink.offer(row.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{EnvFilter, Rfc3339Micros, log_records_wanted};
    use tracing_subscriber::fmt::{format::Writer, time::FormatTime, time::SystemTime};

    /// The lines' time keeps the shape tracing's own timer printed: UTC, microseconds, `Z`.
    #[test]
    fn a_lines_time_is_printed_as_tracing_printed_it() {
        let time = |timer: &dyn FormatTime| {
            let mut out = String::new();
            timer.format_time(&mut Writer::new(&mut out)).unwrap();
            out
        };
        let before = time(&SystemTime);
        let ours = time(&Rfc3339Micros);
        let after = time(&SystemTime);
        assert_eq!(ours.len(), "2026-12-04T22:30:00.123456Z".len(), "{ours}");
        assert_eq!(ours.len(), before.len());
        assert!(ours.ends_with('Z'), "{ours}");
        // Fixed-width and in the same zone: the texts order as the instants do.
        assert!(before <= ours && ours <= after, "{before} {ours} {after}");
        let parsed = chrono::DateTime::parse_from_rfc3339(&ours).unwrap();
        assert_eq!(parsed.offset().local_minus_utc(), 0);
    }

    #[test]
    fn log_records_stop_below_what_is_printed_or_stored() {
        let wanted = |f: &str| log_records_wanted(&EnvFilter::new(f));
        assert_eq!(wanted("info,tower_http=warn"), log::LevelFilter::Info);
        assert_eq!(wanted("debug"), log::LevelFilter::Debug);
        // A directive for one crate is enough to let its records through.
        assert_eq!(wanted("info,tokio_postgres=trace"), log::LevelFilter::Trace);
        // Warnings are stored (and shown in `logs`) whatever is printed.
        assert_eq!(wanted("error"), log::LevelFilter::Warn);
        assert_eq!(wanted("off"), log::LevelFilter::Warn);
    }
}
