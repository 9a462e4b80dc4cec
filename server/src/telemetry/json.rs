//! Printed lines as JSON, one object a line, with the keys and order of tracing's own JSON
//! format (flattened event, the current span only): `timestamp`, `level`, the event's fields in
//! the order they were recorded (`message` first), `target`, and `span` (its fields, then its
//! `name`).
//!
//! tracing's format took a quarter of a call's log line re-parsing the span's stored fields as
//! JSON for every line, and checked every byte it wrote for UTF-8 on the way into a `String`
//! (`bench/instructions.sh`). This one writes straight into the line: the span's fields, stored
//! as a JSON object by [`SpanFields`] when the span opened, are copied in as they are.
//!
//! [`SpanFields`] writes that object as tracing's [`JsonFields`] does (keys in order, a key given
//! twice keeping its last value), without building a map of `serde_json::Value`s and serialising
//! it: that was most of the cost of opening a request's span.

use std::fmt::{self, Write as _};
use std::ops::Range;

use tracing::field::{Field, Visit};
use tracing::span::Record;
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent as _;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The line format; `T` writes the time.
pub struct JsonLine<T>(pub T);

impl<S, T> FormatEvent<S, SpanFields> for JsonLine<T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    T: FormatTime,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, SpanFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        writer.write_str("{\"timestamp\":\"")?;
        let mut escaped = Escaped(&mut writer);
        self.0.format_time(&mut Writer::new(&mut escaped))?;
        writer.write_str("\",\"level\":\"")?;
        writer.write_str(meta.level().as_str())?;
        writer.write_char('"')?;
        let mut fields = Fields {
            out: &mut writer,
            state: Ok(()),
        };
        event.record(&mut fields);
        fields.state?;
        writer.write_str(",\"target\":")?;
        string(&mut writer, meta.target())?;
        let span = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        if let Some(span) = span {
            writer.write_str(",\"span\":{")?;
            let extensions = span.extensions();
            // `{"instance":"…"}` as `SpanFields` wrote it: its inside goes in as it is.
            if let Some(stored) = extensions.get::<FormattedFields<SpanFields>>()
                && let Some(inside) = stored.fields.strip_prefix('{')
                && let Some(inside) = inside.strip_suffix('}')
                && !inside.is_empty()
            {
                writer.write_str(inside)?;
                writer.write_char(',')?;
            }
            writer.write_str("\"name\":")?;
            string(&mut writer, span.metadata().name())?;
            writer.write_char('}')?;
        }
        writer.write_str("}\n")
    }
}

/// Writes each field as `,"name":value`: numbers and booleans bare, everything else as a string
/// (`Debug` for values recorded as such, as tracing's format does).
struct Fields<'a, 'w> {
    out: &'a mut Writer<'w>,
    state: fmt::Result,
}

impl Fields<'_, '_> {
    fn key(&mut self, field: &Field) -> fmt::Result {
        self.out.write_char(',')?;
        string(self.out, field.name())?;
        self.out.write_char(':')
    }

    fn bare(&mut self, field: &Field, value: impl fmt::Display) {
        if self.state.is_ok() {
            self.state = self.key(field).and_then(|()| write!(self.out, "{value}"));
        }
    }
}

impl Visit for Fields<'_, '_> {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.bare(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.bare(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.bare(field, value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // As serde_json writes it: `null` for what JSON has no number for.
        self.bare(field, serde_json::Value::from(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if self.state.is_ok() {
            self.state = self.key(field).and_then(|()| string(self.out, value));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.state.is_ok() {
            self.state = self.key(field).and_then(|()| {
                self.out.write_char('"')?;
                write!(Escaped(self.out), "{value:?}")?;
                self.out.write_char('"')
            });
        }
    }
}

/// A span's fields as one JSON object, as tracing's [`JsonFields`] writes them: keys in their
/// order (a key recorded twice keeps its last value), numbers and booleans bare, `NaN` and the
/// infinities as `null`, bytes as an array of numbers, everything else as a string (`Debug` for
/// values recorded as such, with a leading `r#` cut from the key and `log.` fields left out).
pub struct SpanFields;

impl<'w> FormatFields<'w> for SpanFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut values = Values::default();
        fields.record(&mut values);
        values.state?;
        // Stable: of the entries of one key, the last recorded stays last, and is kept.
        values.entries.sort_by_key(|(key, _)| *key);
        writer.write_char('{')?;
        let mut first = true;
        for (at, (key, range)) in values.entries.iter().enumerate() {
            if values
                .entries
                .get(at + 1)
                .is_some_and(|(next, _)| next == key)
            {
                continue;
            }
            if !first {
                writer.write_char(',')?;
            }
            first = false;
            string(&mut writer, key)?;
            writer.write_char(':')?;
            writer.write_str(&values.text[range.clone()])?;
        }
        writer.write_char('}')
    }

    /// Fields recorded after the span opened: merged as [`JsonFields`] merges them (a rare path:
    /// no span of this server records fields late).
    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &Record<'_>,
    ) -> fmt::Result {
        let mut merged = FormattedFields::<JsonFields>::new(std::mem::take(&mut current.fields));
        let result = JsonFields::new().add_fields(&mut merged, fields);
        current.fields = merged.fields;
        result
    }
}

/// A span's fields, each value written as JSON into one text.
struct Values {
    entries: Vec<(&'static str, Range<usize>)>,
    text: String,
    state: fmt::Result,
}

impl Default for Values {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
            text: String::new(),
            state: Ok(()),
        }
    }
}

impl Values {
    fn push(&mut self, key: &'static str, write: impl FnOnce(&mut String) -> fmt::Result) {
        if self.state.is_ok() {
            let start = self.text.len();
            self.state = write(&mut self.text);
            self.entries.push((key, start..self.text.len()));
        }
    }
}

impl Visit for Values {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field.name(), |out| write!(out, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field.name(), |out| write!(out, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field.name(), |out| write!(out, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field.name(), |out| {
            write!(out, "{}", serde_json::Value::from(value))
        });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field.name(), |out| string(out, value));
    }

    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        self.push(field.name(), |out| {
            write!(out, "{}", serde_json::Value::from(value))
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        if name.starts_with("log.") {
            return;
        }
        let key = name.strip_prefix("r#").unwrap_or(name);
        self.push(key, |out| {
            out.write_char('"')?;
            write!(Escaped(out), "{value:?}")?;
            out.write_char('"')
        });
    }
}

/// `text` as a JSON string.
fn string(out: &mut impl fmt::Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaped(out).write_str(text)?;
    out.write_char('"')
}

/// Writes what it is given escaped for the inside of a JSON string.
struct Escaped<'a, W: ?Sized>(&'a mut W);

impl<W: fmt::Write + ?Sized> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut plain = 0;
        for (at, byte) in text.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&text[plain..at])?;
            if escape.is_empty() {
                write!(self.0, "\\u{byte:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            plain = at + 1;
        }
        self.0.write_str(&text[plain..])
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use serde_json::{Value, json};
    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::{JsonLine, SpanFields};

    /// Lines collected in memory.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;

        fn make_writer(&'a self) -> Lines {
            self.clone()
        }
    }

    /// The time as a fixed text, so that two formats' lines compare.
    struct Fixed;

    impl tracing_subscriber::fmt::time::FormatTime for Fixed {
        fn format_time(
            &self,
            w: &mut tracing_subscriber::fmt::format::Writer<'_>,
        ) -> std::fmt::Result {
            w.write_str("2026-12-05T00:00:00.000001Z")
        }
    }

    /// What a set of events printed, through tracing's JSON format or this one.
    fn printed(ours: bool) -> String {
        let lines = Lines::default();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(lines.clone())
            .with_timer(Fixed)
            .json()
            .flatten_event(true)
            .with_span_list(false);
        if ours {
            let layer = layer.fmt_fields(SpanFields).event_format(JsonLine(Fixed));
            tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), events);
        } else {
            tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), events);
        }
        String::from_utf8(lines.0.lock().unwrap().clone()).unwrap()
    }

    /// A text with everything JSON must escape, and more.
    const QUOTE: &str = "a \"quoted\" word,\na back\\slash, a tab\t, a bell \u{7} and 雲";

    fn events() {
        {
            tracing::info!("outside every span");
            let quote = QUOTE;
            // Keys out of order, every kind of value, a raw identifier.
            let span = tracing::info_span!(
                "request", request.id = %"r-1", odd = quote, count = -7_i64, big = u64::MAX,
                ok = false, ratio = f64::INFINITY, half = 0.5, shown = ?Some(quote),
                r#type = ?"kind", answer = 42_u64
            );
            let _in = span.enter();
            tracing::warn!(
                ai_call.id = %"c-1", count = 3_i64, big = u64::MAX, ok = true, ratio = 0.5,
                nan = f64::NAN, text = quote, shown = ?Some(quote), "the {} message", "formatted"
            );
            let empty = tracing::debug_span!("empty");
            let _in = empty.enter();
            tracing::error!(target: "custom::target", "in a span without fields: {quote}");
            // Fields recorded after the span opened, to a span with and without fields.
            let late = tracing::info_span!("late", filled = tracing::field::Empty, first = 1_i64);
            late.record("filled", quote);
            let _in = late.enter();
            tracing::info!("in a span filled late");
            let bare = tracing::info_span!("bare", filled = tracing::field::Empty);
            bare.record("filled", true);
            let _in = bare.enter();
            tracing::info!("in a span with nothing but a late field");
        }
    }

    /// Every line is the line tracing's own JSON format printed, byte for byte: the same keys in
    /// the same order, the same escaping.
    #[test]
    fn a_line_is_what_tracings_json_format_printed() {
        let ours = printed(true);
        assert_eq!(ours.lines().count(), 5, "{ours}");
        assert_eq!(ours, printed(false));
        let second: Value = serde_json::from_str(ours.lines().nth(1).unwrap()).unwrap();
        assert_eq!(second["message"], json!("the formatted message"));
        assert_eq!(second["big"], json!(u64::MAX));
        assert_eq!(second["nan"], Value::Null);
        assert_eq!(second["span"]["name"], json!("request"));
        assert_eq!(second["span"]["request.id"], json!("r-1"));
        let third: Value = serde_json::from_str(ours.lines().nth(2).unwrap()).unwrap();
        assert_eq!(third["span"], json!({"name": "empty"}));
        assert_eq!(third["target"], json!("custom::target"));
        let span = &second["span"];
        assert_eq!(
            (&span["count"], &span["big"], &span["ratio"], &span["type"]),
            (
                &json!(-7),
                &json!(u64::MAX),
                &Value::Null,
                &json!("\"kind\"")
            )
        );
        // In the order of the keys, as tracing's map writes them.
        assert!(ours.lines().nth(1).unwrap().contains(
            r#""span":{"answer":42,"big":18446744073709551615,"count":-7,"half":0.5,"odd":"#
        ));
        let fourth: Value = serde_json::from_str(ours.lines().nth(3).unwrap()).unwrap();
        assert_eq!(fourth["span"]["filled"], json!(QUOTE));
        assert_eq!(fourth["span"]["first"], json!(1));
        let fifth: Value = serde_json::from_str(ours.lines().nth(4).unwrap()).unwrap();
        assert_eq!(fifth["span"], json!({"filled": true, "name": "bare"}));
    }
}
