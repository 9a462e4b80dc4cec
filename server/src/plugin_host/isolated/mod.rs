//! Plugins with `isolation = "process"`: each instance runs in a runner process of its own
//! (`cloudbase-ai plugin-runner <library>`, see `cloudbase_plugin_runner`), so a crash, an abort
//! or a hang in the plugin takes only the runner. The call in flight fails with a clear error
//! (`PLUGIN_FAILED`, or `TIMEOUT` for a hang, both provider faults, so fallbacks apply); a
//! supervisor task restarts the runner after a backoff of 100 ms, doubled after each death up to
//! 30 s and back to 100 ms once a runner has stayed up for a minute; while it waits, calls fail
//! at once with `UNAVAILABLE`, and `plugins` lists the instance `FAILED` with the reason.
//!
//! - `conn`: one runner process: frames, multiplexed calls, kills and exit reasons.
//!
//! The library of a plugin whose every instance is isolated is never opened in the server:
//! [`describe`] reads its name and manifest in a short-lived runner.

mod conn;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cloudbase_plugin_api::{Manifest, PluginError};
use cloudbase_plugin_runner::protocol::kind;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};

use self::conn::Conn;
use super::call;
use super::failure::CallFailure;
use crate::config::Config;

/// The first wait before restarting a runner that died.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait before a restart.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A runner up this long was healthy: its next death waits [`FIRST_BACKOFF`] again.
pub const HEALTHY: Duration = Duration::from_secs(60);

/// The program that runs isolated plugins: `plugin_runner`, or this server's executable.
#[derive(Debug, Clone)]
pub struct RunnerCommand {
    program: PathBuf,
}

impl RunnerCommand {
    /// From `config.plugin_runner`, else the running executable (`cloudbase-ai`).
    pub fn new(config: &Config) -> Result<Self, String> {
        let program = match &config.plugin_runner {
            Some(program) => program.clone(),
            None => std::env::current_exe()
                .map_err(|e| format!("cannot find this server's executable to run plugins: {e}"))?,
        };
        Ok(RunnerCommand { program })
    }

    /// A runner for `program` (benchmarks, tools).
    pub fn at(program: PathBuf) -> Self {
        RunnerCommand { program }
    }
}

/// What a library says about itself, read in a runner.
pub struct Described {
    /// The name the library reports.
    pub name: String,
    /// Its manifest.
    pub manifest: Manifest,
    /// Whether it was built to catch panics (`false`: it may only run isolated).
    pub panic_unwind: bool,
    /// Whether it reads a body that is JSON as the JSON itself
    /// (`cloudbase_plugin_api::abi::FLAG_RAW_JSON_BODIES`).
    pub raw_json_bodies: bool,
}

/// Opens `library` in a short-lived runner and reads its name and manifest.
pub async fn describe(
    runner: &RunnerCommand,
    library: &Path,
    deadline: Duration,
) -> Result<Described, String> {
    let label = super::file_name(library);
    let conn = Conn::spawn(&runner.program, library, &label)?;
    let result = async {
        let (code, bytes) = conn
            .request(kind::DESCRIBE, "", Vec::new(), deadline)
            .await
            .map_err(|f| format!("in its runner: {}", describe_failure(f)))?;
        #[derive(serde::Deserialize)]
        struct Description {
            name: String,
            panic_unwind: bool,
            /// A runner from before the flag was reported says nothing: the string form.
            #[serde(default)]
            raw_json_bodies: bool,
        }
        let description: Description = match call::decode(code, &bytes) {
            Ok(d) => d,
            Err(CallFailure::Plugin(e)) => return Err(e.message),
            Err(f) => return Err(format!("in its runner: {f}")),
        };
        let (code, bytes) = conn
            .request(kind::MANIFEST, "", Vec::new(), deadline)
            .await
            .map_err(|f| format!("manifest, in its runner: {}", describe_failure(f)))?;
        let manifest =
            call::decode(code, &bytes).map_err(|f| format!("manifest, in its runner: {f}"))?;
        Ok(Described {
            name: description.name,
            manifest,
            panic_unwind: description.panic_unwind,
            raw_json_bodies: description.raw_json_bodies,
        })
    }
    .await;
    conn.kill("its library was described".into());
    result
}

/// A failure while describing, without the restart promise of a live instance's.
fn describe_failure(f: CallFailure) -> String {
    match f {
        CallFailure::Crashed(why) => why,
        CallFailure::Hung(d) => format!("no answer within {} ms", d.as_millis()),
        other => other.to_string(),
    }
}

/// Everything it takes to (re)start an instance's runner.
pub struct Spec {
    /// The runner program.
    pub runner: RunnerCommand,
    /// The plugin library.
    pub library: PathBuf,
    /// The instance's name.
    pub instance: String,
    /// `{"settings", "secrets"}` for `create`.
    pub config: Vec<u8>,
    /// The per-call deadline.
    pub deadline: Duration,
    /// Whether the library reads a body that is JSON as the JSON itself ([`Described`]).
    pub raw_json_bodies: bool,
}

/// Whether the runner is up, or why not and until when it waits.
enum State {
    Up(Arc<Conn>),
    Down { why: String, until: Instant },
}

/// A live isolated instance: its runner, restarted by a supervisor task while this lives.
pub struct Isolated {
    deadline: Duration,
    raw_json_bodies: bool,
    state: Arc<Mutex<State>>,
    /// Dropped with the instance: tells the supervisor to stop and kill the runner.
    _stop: watch::Sender<()>,
}

/// Starts a runner for `spec` and creates the instance in it.
async fn start_runner(spec: &Spec) -> Result<Arc<Conn>, CallFailure> {
    let conn = Conn::spawn(&spec.runner.program, &spec.library, &spec.instance)
        .map_err(CallFailure::Down)?;
    let created = async {
        let (code, bytes) = conn
            .request(kind::CREATE, "", spec.config.clone(), spec.deadline)
            .await?;
        call::decode::<serde_json::Value>(code, &bytes).map(|_| ())
    }
    .await;
    match created {
        Ok(()) => Ok(conn),
        Err(f) => {
            conn.kill("creating the instance failed".into());
            Err(f)
        }
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Isolated {
    /// Starts the runner and creates the instance; a failure here fails the instance, as an
    /// in-process `create` failure does. From then on a supervisor restarts the runner.
    pub async fn start(spec: Spec) -> Result<Arc<Isolated>, CallFailure> {
        let conn = start_runner(&spec).await?;
        let state = Arc::new(Mutex::new(State::Up(conn)));
        let (stop, stopped) = watch::channel(());
        let (deadline, raw_json_bodies) = (spec.deadline, spec.raw_json_bodies);
        tokio::spawn(supervise(spec, Arc::clone(&state), stopped));
        Ok(Arc::new(Isolated {
            deadline,
            raw_json_bodies,
            state,
            _stop: stop,
        }))
    }

    /// The runner, or why calls fail fast.
    fn conn(&self) -> Result<Arc<Conn>, CallFailure> {
        match &*lock(&self.state) {
            // Dead, and the supervisor has not yet noticed: as good as down.
            State::Up(conn) if conn.is_dead() => Err(CallFailure::Down(format!(
                "its {}; it restarts shortly",
                conn.why_dead()
            ))),
            State::Up(conn) => Ok(Arc::clone(conn)),
            State::Down { why, until } => {
                let wait = until.saturating_duration_since(Instant::now());
                Err(CallFailure::Down(format!(
                    "its {why}; it restarts in {} ms",
                    wait.as_millis()
                )))
            }
        }
    }

    /// Whether the plugin reads a body that is JSON as the JSON itself: its runner passes the
    /// host's messages to it as they are.
    pub fn raw_json_bodies(&self) -> bool {
        self.raw_json_bodies
    }

    /// Why the runner is down, while it is.
    pub fn down(&self) -> Option<String> {
        match &*lock(&self.state) {
            State::Up(_) => None,
            State::Down { why, .. } => Some(format!("{why}; restarting (isolation = \"process\")")),
        }
    }

    /// Calls `method` with `input` in the runner; decodes the answer as `O`.
    pub async fn call<I: Serialize + ?Sized, O: DeserializeOwned>(
        &self,
        method: &'static str,
        input: &I,
    ) -> Result<O, CallFailure> {
        let input = cloudbase_plugin_api::ffi::to_json(input)
            .map_err(|e| CallFailure::Garbage(format!("encoding the input: {e}")))?;
        let (code, bytes) = self
            .conn()?
            .request(kind::CALL, method, input, self.deadline)
            .await?;
        call::decode(code, &bytes)
    }

    /// Starts a streaming call, in the shape of `call::Instance::start_stream`: events on the
    /// receiver, the final status from the task. Dropping the receiver cancels the stream in
    /// the runner; an event gap past the deadline kills the runner as hung.
    pub fn start_stream(
        self: &Arc<Self>,
        method: &'static str,
        input: Vec<u8>,
    ) -> (
        mpsc::Receiver<Vec<u8>>,
        tokio::task::JoinHandle<Result<(), CallFailure>>,
    ) {
        let (tx, rx) = mpsc::channel::<Vec<u8>>(64);
        let this = Arc::clone(self);
        let handle = tokio::spawn(async move {
            let conn = this.conn()?;
            let (id, mut frames) = conn.open_stream(method, input).await?;
            loop {
                let frame = match tokio::time::timeout(this.deadline, frames.recv()).await {
                    Ok(Some(frame)) => frame,
                    Ok(None) => return Err(CallFailure::Crashed(conn.why_dead())),
                    Err(_) => {
                        conn.kill(format!(
                            "stream `{method}` sent nothing for {} ms",
                            this.deadline.as_millis()
                        ));
                        return Err(CallFailure::Hung(this.deadline));
                    }
                };
                if frame.kind == kind::EVENT {
                    if tx.send(frame.payload).await.is_err() {
                        conn.cancel(id).await;
                        return Ok(());
                    }
                    continue;
                }
                return call::decode::<serde_json::Value>(frame.status, &frame.payload).map(|_| ());
            }
        });
        (rx, handle)
    }

    /// The per-call deadline.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }
}

/// Restarts the runner each time it dies, after a backoff, until the instance is dropped.
async fn supervise(spec: Spec, state: Arc<Mutex<State>>, mut stop: watch::Receiver<()>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let conn = match &*lock(&state) {
            State::Up(conn) => Arc::clone(conn),
            State::Down { .. } => return,
        };
        let up_since = Instant::now();
        let mut why = tokio::select! {
            why = conn.died() => why,
            _ = stop.changed() => {
                conn.kill("the instance was shut down".into());
                return;
            }
        };
        drop(conn);
        if up_since.elapsed() >= HEALTHY {
            backoff = FIRST_BACKOFF;
        }
        loop {
            let wait_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX);
            tracing::warn!(plugin.instance = %spec.instance, reason = %why, wait_ms, "isolated plugin's runner is down; restarting it");
            *lock(&state) = State::Down {
                why: why.clone(),
                until: Instant::now() + backoff,
            };
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => return,
            }
            backoff = backoff.saturating_mul(2).min(MAX_BACKOFF);
            match start_runner(&spec).await {
                Ok(conn) => {
                    if stop.has_changed().is_err() {
                        conn.kill("the instance was shut down".into());
                        return;
                    }
                    tracing::info!(plugin.instance = %spec.instance, "isolated plugin's runner restarted");
                    *lock(&state) = State::Up(conn);
                    break;
                }
                Err(f) => why = format!("runner could not be restarted: {}", restart_failure(f)),
            }
        }
    }
}

fn restart_failure(f: CallFailure) -> String {
    match f {
        CallFailure::Crashed(why) | CallFailure::Down(why) => why,
        CallFailure::Plugin(PluginError { message, .. }) => message,
        other => other.to_string(),
    }
}
