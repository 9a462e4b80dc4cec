//! Where printed log lines go: standard output, written by a thread of its own in batches.
//!
//! A line is appended to a buffer in memory, and the writer thread writes what has gathered
//! every [`INTERVAL`], or at once for a warning or an error. So:
//! - an `info` line (every finished AI call has one) costs the runtime's threads no system
//!   call: under load, one `write` carries the lines of many calls (`bench/RESULTS.md`);
//! - a standard output that blocks (a pipe whose reader stalled, a full terminal) never stalls a
//!   request: past [`MAX_PENDING`] bytes waiting, new lines are dropped and counted, and the
//!   count is printed as soon as output moves again.
//!
//! [`Output::finish`] writes what is left (at exit, and from the panic hook), waiting at most
//! [`FINISH_WAIT`] for an output that does not move.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// How long lines gather before they are written (warnings and errors do not wait).
pub const INTERVAL: Duration = Duration::from_millis(50);
/// Bytes waiting to be written past which new lines are dropped (and counted).
pub const MAX_PENDING: usize = 1 << 20;
/// How long [`Output::finish`] waits for the writer thread.
const FINISH_WAIT: Duration = Duration::from_secs(2);

/// The buffer the lines gather in, shared with the writer thread.
#[derive(Clone)]
pub struct Output {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the writer thread: lines to write, a warning, or the end.
    wake: Condvar,
    /// Wakes [`Output::finish`]: the writer thread wrote everything it was given.
    drained: Condvar,
    max_pending: usize,
    interval: Duration,
}

#[derive(Default)]
struct State {
    lines: Vec<u8>,
    /// Lines dropped since the last write, because too many bytes were waiting.
    dropped: u64,
    /// A warning or an error is waiting: write without gathering more.
    urgent: bool,
    /// No more batches: write what is left and stop.
    closing: bool,
    /// The writer thread has written everything and stopped.
    stopped: bool,
}

impl Output {
    /// Standard output, with the default interval and limit.
    pub fn stdout() -> Self {
        Self::start(Box::new(std::io::stdout()), INTERVAL, MAX_PENDING)
    }

    /// Starts the writer thread on `sink`.
    pub fn start(mut sink: Box<dyn Write + Send>, interval: Duration, max_pending: usize) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            drained: Condvar::new(),
            max_pending,
            interval,
        });
        let writer = Arc::clone(&shared);
        let started = std::thread::Builder::new()
            .name("cloudbase-log".into())
            .spawn(move || writer.run(&mut *sink));
        if let Err(e) = started {
            // No thread: lines gather until the limit, then are dropped; say so once.
            eprintln!("warning: cannot start the log writer thread: {e}");
        }
        Self { shared }
    }

    /// Writes what is waiting and stops the writer thread: lines after this are dropped. Waits
    /// at most [`FINISH_WAIT`].
    pub fn finish(&self) {
        let mut state = self.shared.lock();
        state.closing = true;
        self.shared.wake.notify_one();
        let deadline = std::time::Instant::now() + FINISH_WAIT;
        while !state.stopped {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            state = match self.shared.drained.wait_timeout(state, left) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Has what is waiting written now, without waiting for the interval (a panic's lines).
    pub fn urge(&self) {
        let mut state = self.shared.lock();
        state.urgent = true;
        self.shared.wake.notify_one();
    }

    fn push(&self, bytes: &[u8], urgent: bool) {
        let mut state = self.shared.lock();
        if state.closing || state.lines.len() + bytes.len() > self.shared.max_pending {
            state.dropped += 1;
            return;
        }
        let first = state.lines.is_empty();
        state.lines.extend_from_slice(bytes);
        if urgent && !state.urgent {
            state.urgent = true;
            self.shared.wake.notify_one();
        } else if first {
            self.shared.wake.notify_one();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The writer thread: waits for lines, lets more gather for an interval (unless a warning
    /// is waiting), then writes them in one go.
    fn run(&self, sink: &mut dyn Write) {
        let mut batch = Vec::new();
        loop {
            let mut state = self.lock();
            while state.lines.is_empty() && state.dropped == 0 && !state.closing {
                state = self.wake.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            if !state.urgent && !state.closing {
                state = match self
                    .wake
                    .wait_timeout_while(state, self.interval, |s| !s.urgent && !s.closing)
                {
                    Ok((state, _)) => state,
                    Err(poisoned) => poisoned.into_inner().0,
                };
            }
            std::mem::swap(&mut batch, &mut state.lines);
            let dropped = std::mem::take(&mut state.dropped);
            let closing = state.closing;
            state.urgent = false;
            drop(state);
            if dropped > 0 {
                let _ = writeln!(
                    sink,
                    "{{\"level\":\"WARN\",\"message\":\"{dropped} log lines dropped: standard output did not keep up\"}}"
                );
            }
            // A failed write loses this batch, as a failed `println!` would lose its line.
            let _ = sink.write_all(&batch).and_then(|()| sink.flush());
            batch.clear();
            if closing {
                let mut state = self.lock();
                if state.lines.is_empty() {
                    state.stopped = true;
                    self.drained.notify_all();
                    return;
                }
            }
        }
    }
}

/// One event's line: appended to the buffer whole when the event is written (kept or dropped
/// whole, however many writes the formatter made of it).
pub struct Line<'a> {
    output: &'a Output,
    urgent: bool,
    line: Vec<u8>,
}

impl Write for Line<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.output.push(&self.line, self.urgent);
        }
    }
}

impl<'a> MakeWriter<'a> for Output {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        Line {
            output: self,
            urgent: false,
            line: Vec::new(),
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        Line {
            output: self,
            urgent: *meta.level() <= Level::WARN,
            line: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    /// A sink that hands each write to the test, and can be held shut.
    struct Sink {
        writes: mpsc::Sender<Vec<u8>>,
        gate: Arc<Mutex<()>>,
    }

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let _open = self.gate.lock().unwrap();
            let _ = self.writes.send(bytes.to_vec());
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn output(
        interval: Duration,
        max_pending: usize,
    ) -> (Output, mpsc::Receiver<Vec<u8>>, Arc<Mutex<()>>) {
        let (tx, rx) = mpsc::channel();
        let gate = Arc::new(Mutex::new(()));
        let sink = Sink {
            writes: tx,
            gate: Arc::clone(&gate),
        };
        (
            Output::start(Box::new(sink), interval, max_pending),
            rx,
            gate,
        )
    }

    fn text(rx: &mpsc::Receiver<Vec<u8>>) -> String {
        rx.try_iter()
            .map(|w| String::from_utf8(w).unwrap())
            .collect()
    }

    #[test]
    fn lines_gathered_in_an_interval_go_out_in_one_write_in_order() {
        // An interval longer than the test may take: `finish` writes the batch.
        let (out, rx, _gate) = output(Duration::from_secs(3600), MAX_PENDING);
        for i in 0..100 {
            writeln!(out.make_writer(), "line {i}").unwrap();
        }
        out.finish();
        let writes: Vec<Vec<u8>> = rx.try_iter().collect();
        let expected: String = (0..100).map(|i| format!("line {i}\n")).collect();
        assert_eq!(writes.len(), 1, "one write");
        assert_eq!(String::from_utf8(writes[0].clone()).unwrap(), expected);
        writeln!(out.make_writer(), "after").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(text(&rx), "", "nothing is written after finish");
    }

    #[test]
    fn a_warning_is_written_without_waiting_for_the_interval() {
        // An interval far longer than the test may take: only the warning can end the wait.
        let (out, rx, _gate) = output(Duration::from_secs(3600), MAX_PENDING);
        let subscriber = tracing_subscriber::fmt()
            .with_writer(out.clone())
            .with_ansi(false)
            .without_time()
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("an info line");
            tracing::warn!("a warning");
        });
        let written = String::from_utf8(rx.recv_timeout(Duration::from_secs(30)).unwrap()).unwrap();
        let lines: Vec<&str> = written.lines().collect();
        assert_eq!(lines.len(), 2, "{written}");
        assert!(
            lines[0].contains("INFO") && lines[0].contains("an info line"),
            "{written}"
        );
        assert!(
            lines[1].contains("WARN") && lines[1].contains("a warning"),
            "{written}"
        );
    }

    #[test]
    fn an_output_that_blocks_never_blocks_a_writer_and_drops_are_counted() {
        let (out, rx, gate) = output(Duration::from_millis(1), 64);
        let shut = gate.lock().unwrap();
        // The first line reaches the writer thread, which blocks writing it.
        writeln!(out.make_writer(), "first").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !out.shared.lock().lines.is_empty() {
            assert!(std::time::Instant::now() < deadline, "never taken");
            std::thread::yield_now();
        }
        // Writers go on: 7 lines of 9 bytes fit in the limit of 64, the other 3 are dropped, and
        // none of it waits for the output.
        for i in 0..10 {
            writeln!(out.make_writer(), "line {i:03}").unwrap();
        }
        drop(shut);
        out.finish();
        let all = text(&rx);
        assert!(all.starts_with("first\n"), "{all}");
        assert!(
            all.contains("\"3 log lines dropped: standard output did not keep up\""),
            "{all}"
        );
        let kept: Vec<&str> = all.lines().filter(|l| l.starts_with("line")).collect();
        assert_eq!(
            kept,
            [
                "line 000", "line 001", "line 002", "line 003", "line 004", "line 005", "line 006"
            ]
        );
    }
}
