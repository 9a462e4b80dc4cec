//! One runner process: started, spoken to in frames, killed when a call hangs, and its end
//! noticed and explained ("runner crashed (signal 11, SIGSEGV)"). Calls are multiplexed: each
//! request carries an id, and one reader task hands every reply to whoever waits for it.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use cloudbase_plugin_runner::SUBCOMMAND;
use cloudbase_plugin_runner::protocol::{Frame, kind};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::{mpsc, oneshot, watch};

use crate::plugin_host::failure::CallFailure;

/// Environment variables a runner keeps; everything else of the server's (database URL,
/// master key, provider keys) stays out of the plugin's process.
const KEPT_ENV: [&str; 5] = ["PATH", "LD_LIBRARY_PATH", "LANG", "LC_ALL", "TZ"];

/// Who waits for frames of a request id.
enum Waiter {
    /// A call: its one reply.
    Call(oneshot::Sender<Frame>),
    /// A stream: its events, then its reply.
    Stream(mpsc::UnboundedSender<Frame>),
}

/// A live (or just dead) runner process.
pub(super) struct Conn {
    /// The instance (or, while probing, the library file), for the log.
    label: String,
    stdin: tokio::sync::Mutex<ChildStdin>,
    pending: Mutex<HashMap<u64, Waiter>>,
    next_id: AtomicU64,
    child: Mutex<Child>,
    /// Why the host killed it, when it did.
    killed_for: Mutex<Option<String>>,
    /// `Some(why)` once the runner is gone.
    dead: watch::Sender<Option<String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A dead runner's exit, in words.
fn describe_exit(status: ExitStatus) -> String {
    if let Some(signal) = status.signal() {
        let name = match signal {
            libc::SIGSEGV => ", SIGSEGV",
            libc::SIGABRT => ", SIGABRT: an abort, such as a panic under panic = \"abort\"",
            libc::SIGBUS => ", SIGBUS",
            libc::SIGILL => ", SIGILL",
            libc::SIGFPE => ", SIGFPE",
            libc::SIGKILL => ", SIGKILL",
            libc::SIGTERM => ", SIGTERM",
            _ => "",
        };
        return format!("runner crashed (signal {signal}{name})");
    }
    match status.code() {
        Some(0) => "runner exited".to_owned(),
        Some(code) => format!("runner exited with status {code}"),
        None => "runner ended".to_owned(),
    }
}

impl Conn {
    /// Starts `<program> plugin-runner <library>` with a clean environment; its stderr goes to
    /// the log line by line.
    pub(super) fn spawn(program: &Path, library: &Path, label: &str) -> Result<Arc<Conn>, String> {
        let mut command = tokio::process::Command::new(program);
        command
            .arg(SUBCOMMAND)
            .arg(library)
            .env_clear()
            .envs(
                KEPT_ENV
                    .iter()
                    .filter_map(|k| Some((k, std::env::var_os(k)?))),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|e| {
            format!(
                "cannot start the plugin runner `{}`: {e} (set plugin_runner)",
                program.display()
            )
        })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err("the plugin runner has no pipes".into());
        };
        let (dead, _) = watch::channel(None);
        let conn = Arc::new(Conn {
            label: label.to_owned(),
            stdin: tokio::sync::Mutex::new(stdin),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            child: Mutex::new(child),
            killed_for: Mutex::new(None),
            dead,
        });
        let label = label.to_owned();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::warn!(plugin.instance = %label, output = %line, "plugin runner stderr");
            }
        });
        tokio::spawn(Arc::clone(&conn).read_loop(stdout));
        Ok(conn)
    }

    /// Hands each frame to its waiter until the runner's stdout ends, then says why it died.
    async fn read_loop(self: Arc<Self>, stdout: ChildStdout) {
        let mut stdout = BufReader::new(stdout);
        let broken = loop {
            let mut prefix = [0u8; 4];
            match stdout.read_exact(&mut prefix).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break None,
                Err(e) => break Some(e.to_string()),
            }
            let body = match Frame::body_len(prefix) {
                Ok(len) => vec![0u8; len],
                Err(e) => break Some(e.to_string()),
            };
            let mut body = body;
            if let Err(e) = stdout.read_exact(&mut body).await {
                break Some(e.to_string());
            }
            match Frame::decode(body) {
                Ok(frame) => self.dispatch(frame),
                Err(e) => break Some(e.to_string()),
            }
        };
        if let Some(error) = &broken {
            self.kill(format!("it broke the protocol ({error})"));
        }
        let why = self.reap().await;
        // Under the pending lock, so no request registers after the drain and waits forever.
        let mut pending = lock(&self.pending);
        self.dead.send_replace(Some(why));
        pending.clear();
    }

    fn dispatch(&self, frame: Frame) {
        let mut pending = lock(&self.pending);
        match frame.kind {
            kind::REPLY => match pending.remove(&frame.id) {
                Some(Waiter::Call(tx)) => {
                    let _ = tx.send(frame);
                }
                Some(Waiter::Stream(tx)) => {
                    let _ = tx.send(frame);
                }
                None => {}
            },
            kind::EVENT => {
                if let Some(Waiter::Stream(tx)) = pending.get(&frame.id) {
                    let _ = tx.send(frame);
                }
            }
            other => {
                tracing::warn!(plugin.instance = %self.label, kind = other, "plugin runner sent an unknown frame");
            }
        }
    }

    /// Waits (briefly) for the process to end, killing it if it lingers, and says why it died.
    async fn reap(&self) -> String {
        let mut status = None;
        for round in 0..400 {
            match lock(&self.child).try_wait() {
                Ok(Some(s)) => {
                    status = Some(s);
                    break;
                }
                Ok(None) if round == 200 => {
                    let _ = lock(&self.child).start_kill();
                }
                Ok(None) => {}
                Err(_) => break,
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        match (lock(&self.killed_for).take(), status) {
            (Some(why), _) => format!("runner was killed: {why}"),
            (None, Some(status)) => describe_exit(status),
            (None, None) => "runner stopped answering".to_owned(),
        }
    }

    /// Kills the runner (a hang, a broken protocol, the instance going away); the reader then
    /// fails every call in flight with `why`.
    pub(super) fn kill(&self, why: String) {
        let mut killed_for = lock(&self.killed_for);
        if killed_for.is_none() {
            *killed_for = Some(why);
        }
        let _ = lock(&self.child).start_kill();
    }

    /// Why the runner died (or a generic reason if it has not been noticed yet).
    pub(super) fn why_dead(&self) -> String {
        self.dead
            .borrow()
            .clone()
            .unwrap_or_else(|| "runner stopped answering".to_owned())
    }

    /// Whether the runner is gone.
    pub(super) fn is_dead(&self) -> bool {
        self.dead.borrow().is_some()
    }

    /// Resolves with the reason once the runner is gone.
    pub(super) async fn died(&self) -> String {
        let mut dead = self.dead.subscribe();
        match dead.wait_for(Option::is_some).await {
            Ok(why) => why.clone().unwrap_or_default(),
            Err(_) => self.why_dead(),
        }
    }

    fn register(&self, waiter: Waiter) -> Result<u64, CallFailure> {
        let mut pending = lock(&self.pending);
        if let Some(why) = self.dead.borrow().clone() {
            return Err(CallFailure::Crashed(why));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        pending.insert(id, waiter);
        Ok(id)
    }

    async fn write(&self, frame: &Frame) -> Result<(), CallFailure> {
        let bytes = frame
            .encode()
            .map_err(|e| CallFailure::Garbage(format!("encoding the request: {e}")))?;
        let mut stdin = self.stdin.lock().await;
        let written = async {
            stdin.write_all(&bytes).await?;
            stdin.flush().await
        };
        written
            .await
            .map_err(|_| CallFailure::Crashed(self.why_dead()))
    }

    /// One request and its reply (status and output bytes), under `deadline`; past it the
    /// runner is killed as hung.
    pub(super) async fn request(
        &self,
        kind: u8,
        method: &str,
        payload: Vec<u8>,
        deadline: Duration,
    ) -> Result<(i32, Vec<u8>), CallFailure> {
        let (tx, rx) = oneshot::channel();
        let id = self.register(Waiter::Call(tx))?;
        let frame = Frame::request(id, kind, method, payload);
        let answer = tokio::time::timeout(deadline, async {
            self.write(&frame).await?;
            rx.await.map_err(|_| CallFailure::Crashed(self.why_dead()))
        })
        .await;
        match answer {
            Ok(Ok(reply)) => Ok((reply.status, reply.payload)),
            Ok(Err(failure)) => Err(failure),
            Err(_) => {
                let what = if method.is_empty() {
                    "a request"
                } else {
                    method
                };
                self.kill(format!(
                    "`{what}` did not answer within {} ms",
                    deadline.as_millis()
                ));
                Err(CallFailure::Hung(deadline))
            }
        }
    }

    /// Starts a stream: its events and then its reply arrive on the receiver.
    pub(super) async fn open_stream(
        &self,
        method: &str,
        payload: Vec<u8>,
    ) -> Result<(u64, mpsc::UnboundedReceiver<Frame>), CallFailure> {
        let (tx, rx) = mpsc::unbounded_channel();
        let id = self.register(Waiter::Stream(tx))?;
        self.write(&Frame::request(id, kind::STREAM, method, payload))
            .await?;
        Ok((id, rx))
    }

    /// Tells the runner nobody listens to stream `id` any more.
    pub(super) async fn cancel(&self, id: u64) {
        let _ = self
            .write(&Frame::request(id, kind::CANCEL, "", Vec::new()))
            .await;
    }
}
