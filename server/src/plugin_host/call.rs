//! Calling into a plugin: JSON in, JSON out, on the blocking pool, under a deadline. A plugin
//! that panics (caught inside it), returns bytes that are not UTF-8 or not the expected JSON, or
//! does not answer in time, fails that call with a clear reason and leaves the server running.
//!
//! The pure transforms of the ABI ([`PURE_METHODS`]: build a request, parse a response or a
//! streamed event) run inline on the calling task instead: they take microseconds, and a hop to
//! the blocking pool and back (two thread switches) cost more than the call itself. An instance
//! whose pure call uses more than [`INLINE_BUDGET`] of CPU, or takes longer than that by the
//! clock [`SLOW_STREAK`] times in a row (a plugin that sleeps or blocks in it), is moved to the
//! blocking pool for good, with a warning, so a slow plugin cannot hold up the async workers
//! for long. One call slow by the clock alone moves nothing: on a busy core the thread running it
//! may simply have been preempted, and that is no reason to give every later call two thread
//! switches.
#![expect(
    unsafe_code,
    reason = "plugin calls cross the C ABI; each block has a SAFETY comment"
)]

use std::ffi::c_void;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use cloudbase_plugin_api::abi::{FLAG_RAW_JSON_BODIES, PluginVTable, RBuf, RStr, status};
use cloudbase_plugin_api::{ErrorCode, Manifest, PluginError, ffi, host};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

pub use super::failure::CallFailure;

/// Interprets a status and output bytes (also those an isolated plugin's runner relays).
pub(super) fn decode<O: DeserializeOwned>(code: i32, bytes: &[u8]) -> Result<O, CallFailure> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| CallFailure::Garbage("its output is not UTF-8".into()))?;
    let error = || {
        serde_json::from_str::<PluginError>(text).map_err(|_| {
            CallFailure::Garbage(format!("its error is not a PluginError: {}", clip(text)))
        })
    };
    match code {
        status::OK => serde_json::from_str(text).map_err(|e| {
            CallFailure::Garbage(format!(
                "its output is not the expected JSON ({e}): {}",
                clip(text)
            ))
        }),
        status::ERROR => Err(CallFailure::Plugin(error()?)),
        status::PANIC => Err(CallFailure::Panicked(error()?.message)),
        other => Err(CallFailure::Garbage(format!("unknown status code {other}"))),
    }
}

fn clip(text: &str) -> String {
    text.chars().take(200).collect()
}

/// Runs a blocking plugin call on the blocking pool with a deadline.
async fn blocking<T: Send + 'static>(
    deadline: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, CallFailure> {
    match tokio::time::timeout(deadline, tokio::task::spawn_blocking(f)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(join)) => Err(CallFailure::Panicked(format!(
            "the call thread failed: {join}"
        ))),
        Err(_) => Err(CallFailure::TimedOut(deadline)),
    }
}

/// Reads a library's manifest.
pub async fn manifest(
    vtable: &'static PluginVTable,
    deadline: Duration,
) -> Result<Manifest, CallFailure> {
    let (code, bytes) = blocking(deadline, move || {
        let mut out = RBuf::EMPTY;
        // SAFETY: `manifest` is part of the checked v1 table; `out` is a valid slot.
        let code = unsafe { (vtable.manifest)(&mut out) };
        (code, host::take(vtable, out))
    })
    .await?;
    decode(code, &bytes)
}

/// Methods the ABI defines as pure, quick transforms of their input (no I/O, no waiting).
pub const PURE_METHODS: [&str; 5] = [
    "chat.build_request",
    "chat.parse_response",
    "chat.parse_stream_event",
    "notify.build",
    "notify.parse_response",
];

/// The most CPU a pure call may use inline before its instance moves to the blocking pool.
pub const INLINE_BUDGET: Duration = Duration::from_millis(2);

/// Pure calls in a row slower than [`INLINE_BUDGET`] by the clock after which the instance moves
/// too. A thread preempted on a saturated core makes about one call in a hundred look slow; eight
/// in a row is a plugin that waits on something.
pub const SLOW_STREAK: u32 = 8;

/// CPU time the calling thread has used so far: unlike the clock, it does not advance while the
/// thread is preempted.
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec, and CLOCK_THREAD_CPUTIME_ID is a clock every
    // supported system (Linux, macOS) has.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}

/// A live instance of a plugin.
pub struct Instance {
    vtable: &'static PluginVTable,
    handle: Handle,
    deadline: Duration,
    /// Whether pure calls still run inline (see the module docs).
    inline: AtomicBool,
    /// Pure calls in a row slower than [`INLINE_BUDGET`] by the clock.
    slow_streak: AtomicU32,
}

struct Handle(*mut c_void);

// SAFETY: the ABI requires instances to be callable from any thread, several at once
// (documented in `cloudbase_plugin_api::abi::PluginVTable::call` and docs/plugins.md). The
// handle is given back to `destroy` once, when the last `Arc<Instance>` goes (see `Drop`).
unsafe impl Send for Handle {}
// SAFETY: as above.
unsafe impl Sync for Handle {}

impl Instance {
    /// Creates an instance from `config` (`{"settings": …, "secrets": …}`).
    pub async fn create(
        vtable: &'static PluginVTable,
        config: Vec<u8>,
        deadline: Duration,
    ) -> Result<Arc<Instance>, CallFailure> {
        let (code, ptr, bytes) = blocking(deadline, move || {
            let mut out = RBuf::EMPTY;
            let mut instance: *mut c_void = std::ptr::null_mut();
            // SAFETY: `create` is part of the checked v1 table; the config bytes outlive the call
            // and both out-pointers are valid slots.
            let code = unsafe { (vtable.create)(RStr::of(&config), &mut instance, &mut out) };
            (code, Handle(instance), host::take(vtable, out))
        })
        .await?;
        decode::<serde_json::Value>(code, &bytes)?;
        if ptr.0.is_null() {
            return Err(CallFailure::Garbage(
                "create succeeded but returned no instance".into(),
            ));
        }
        Ok(Arc::new(Instance {
            vtable,
            handle: ptr,
            deadline,
            inline: AtomicBool::new(true),
            slow_streak: AtomicU32::new(0),
        }))
    }

    /// Calls `method` with `input`; decodes the answer as `O`.
    pub async fn call<I: Serialize + ?Sized, O: DeserializeOwned>(
        self: &Arc<Self>,
        method: &'static str,
        input: &I,
    ) -> Result<O, CallFailure> {
        let input = ffi::to_json(input)
            .map_err(|e| CallFailure::Garbage(format!("encoding the input: {e}")))?;
        if PURE_METHODS.contains(&method) && self.inline.load(Ordering::Relaxed) {
            let (started, cpu) = (Instant::now(), thread_cpu_time());
            let (code, bytes) = self.raw_call(method, &input);
            let took = started.elapsed();
            // A thread's CPU time never runs ahead of the clock, so a call within the budget by
            // the clock is within it by CPU too: only a slow one reads the CPU clock again (a
            // system call, not served by the vDSO as the wall clock is).
            let used = if took > INLINE_BUDGET {
                thread_cpu_time().saturating_sub(cpu)
            } else {
                took
            };
            if self.too_slow_inline(took, used) && self.inline.swap(false, Ordering::Relaxed) {
                tracing::warn!(
                    method,
                    took_ms = took.as_secs_f64() * 1000.0,
                    cpu_ms = used.as_secs_f64() * 1000.0,
                    "a pure plugin call was slow; this instance's calls now run on the blocking pool"
                );
            }
            return decode(code, &bytes);
        }
        let this = Arc::clone(self);
        let (code, bytes) = blocking(self.deadline, move || this.raw_call(method, &input)).await?;
        decode(code, &bytes)
    }

    /// Whether a pure call that took `took` by the clock and `used` of CPU moves its instance
    /// to the blocking pool (see the module docs).
    fn too_slow_inline(&self, took: Duration, used: Duration) -> bool {
        if used > INLINE_BUDGET {
            return true;
        }
        if took > INLINE_BUDGET {
            self.slow_streak.fetch_add(1, Ordering::Relaxed) + 1 >= SLOW_STREAK
        } else {
            self.slow_streak.store(0, Ordering::Relaxed);
            false
        }
    }

    /// Whether pure calls still run inline.
    pub fn runs_inline(&self) -> bool {
        self.inline.load(Ordering::Relaxed)
    }

    /// One call through the ABI on the current thread: the status and the output bytes.
    fn raw_call(&self, method: &str, input: &[u8]) -> (i32, Vec<u8>) {
        let mut out = RBuf::EMPTY;
        // SAFETY: `call` is part of the checked v1 table; the handle came from `create`; method
        // and input outlive the call; `out` is a valid slot.
        let code = unsafe {
            (self.vtable.call)(
                self.handle.0,
                RStr::of(method.as_bytes()),
                RStr::of(input),
                &mut out,
            )
        };
        (code, host::take(self.vtable, out))
    }

    /// Starts a streaming call: events arrive on the receiver (raw JSON), and the join handle
    /// yields the final status. Dropping the receiver tells the plugin to stop.
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
        let handle = tokio::task::spawn_blocking(move || {
            let Some(call_stream) = this.vtable.call_stream else {
                return Err(CallFailure::Plugin(PluginError::new(
                    ErrorCode::Unsupported,
                    "the plugin does not stream",
                )));
            };
            let mut out = RBuf::EMPTY;
            let ctx = std::ptr::from_ref(&tx).cast_mut().cast::<c_void>();
            // SAFETY: `call_stream` is part of the checked v1 table; `ctx` points at `tx`, which
            // outlives the call; `emit_to_channel` matches `EmitFn`; inputs outlive the call.
            let code = unsafe {
                call_stream(
                    this.handle.0,
                    RStr::of(method.as_bytes()),
                    RStr::of(&input),
                    emit_to_channel,
                    ctx,
                    &mut out,
                )
            };
            decode::<serde_json::Value>(code, &host::take(this.vtable, out)).map(|_| ())
        });
        (rx, handle)
    }

    /// The per-call deadline.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Whether the plugin reads a body that is JSON as the JSON itself ([`FLAG_RAW_JSON_BODIES`]).
    pub fn raw_json_bodies(&self) -> bool {
        self.vtable.flags & FLAG_RAW_JSON_BODIES != 0
    }
}

/// An instance is destroyed when nothing holds it any more: a hot reload replaced it and the
/// last call on it ended (every call holds its `Arc`, also one still running on a blocking thread
/// past its deadline), or its registry was dropped. The plugin's `destroy` runs on the blocking pool,
/// where a slow one holds up no request.
impl Drop for Instance {
    fn drop(&mut self) {
        let (vtable, handle) = (self.vtable, Handle(self.handle.0));
        let destroy = move || {
            let handle = handle;
            // SAFETY: `destroy` is part of the checked v1 table; the handle came from `create`,
            // and this is its last use: no call holds the instance any more.
            unsafe { (vtable.destroy)(handle.0) };
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(destroy)),
            Err(_) => destroy(),
        }
    }
}

/// The host's `EmitFn`: forwards one event into the channel; asks the plugin to stop (returns
/// 1) once nobody listens.
unsafe extern "C" fn emit_to_channel(ctx: *mut c_void, event: RStr) -> i32 {
    let forwarded = std::panic::catch_unwind(|| {
        // SAFETY: `ctx` is the `&Sender` that `start_stream` passed for the duration of the
        // streaming call, which is still running while it calls us.
        let sender = unsafe { &*ctx.cast_const().cast::<mpsc::Sender<Vec<u8>>>() };
        let bytes = if event.ptr.is_null() || event.len == 0 {
            Vec::new()
        } else {
            // SAFETY: the plugin passes `len` readable bytes, valid until we return.
            unsafe { std::slice::from_raw_parts(event.ptr, event.len) }.to_vec()
        };
        sender.blocking_send(bytes).is_ok()
    });
    match forwarded {
        Ok(true) => 0,
        _ => 1,
    }
}

/// Decodes one streamed event.
pub fn decode_event<O: DeserializeOwned>(bytes: &[u8]) -> Result<O, CallFailure> {
    decode(status::OK, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudbase_plugin_api::abi::ABI_VERSION;
    use std::sync::atomic::AtomicUsize;

    /// Calls seen by the table below, and on which thread the last one ran.
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    /// How long the next calls sleep (as a plugin waiting on something would).
    static SLOW_MS: AtomicUsize = AtomicUsize::new(0);
    /// How much CPU the next calls burn.
    static SPIN_MS: AtomicUsize = AtomicUsize::new(0);
    static THREAD: std::sync::Mutex<Option<std::thread::ThreadId>> = std::sync::Mutex::new(None);

    fn last_thread() -> Option<std::thread::ThreadId> {
        *THREAD.lock().unwrap()
    }

    fn owned(bytes: &[u8]) -> RBuf {
        let mut bytes = std::mem::ManuallyDrop::new(bytes.to_vec());
        RBuf {
            ptr: bytes.as_mut_ptr(),
            len: bytes.len(),
            cap: bytes.capacity(),
        }
    }

    unsafe extern "C" fn name() -> RStr {
        RStr::of(b"slow")
    }
    unsafe extern "C" fn manifest(out: *mut RBuf) -> i32 {
        // SAFETY: the host passes a valid slot.
        unsafe { *out = owned(b"null") };
        status::OK
    }
    unsafe extern "C" fn create(_: RStr, instance: *mut *mut c_void, out: *mut RBuf) -> i32 {
        // SAFETY: the host passes valid slots; the handle is never dereferenced.
        unsafe {
            *instance = std::ptr::NonNull::<u8>::dangling().as_ptr().cast();
            *out = owned(b"null");
        }
        status::OK
    }
    unsafe extern "C" fn destroy(_: *mut c_void) {}
    unsafe extern "C" fn call(_: *mut c_void, _: RStr, _: RStr, out: *mut RBuf) -> i32 {
        CALLS.fetch_add(1, Ordering::SeqCst);
        *THREAD.lock().unwrap() = Some(std::thread::current().id());
        std::thread::sleep(Duration::from_millis(SLOW_MS.load(Ordering::SeqCst) as u64));
        let (spin, from) = (SPIN_MS.load(Ordering::SeqCst) as u64, thread_cpu_time());
        while thread_cpu_time().saturating_sub(from) < Duration::from_millis(spin) {
            std::hint::spin_loop();
        }
        // SAFETY: the host passes a valid slot.
        unsafe { *out = owned(b"{\"ok\":true}") };
        status::OK
    }
    unsafe extern "C" fn free_buf(buf: RBuf) {
        // SAFETY: `buf` came from `owned`, once.
        drop(unsafe { Vec::from_raw_parts(buf.ptr, buf.len, buf.cap) });
    }

    static TABLE: PluginVTable = PluginVTable {
        abi_version: ABI_VERSION,
        struct_size: std::mem::size_of::<PluginVTable>() as u32,
        flags: 0,
        name,
        manifest,
        create,
        destroy,
        call,
        call_stream: None,
        free_buf,
    };

    #[tokio::test]
    async fn a_slow_pure_call_moves_its_instance_to_the_blocking_pool() {
        let instance = Instance::create(&TABLE, b"{}".to_vec(), Duration::from_secs(5))
            .await
            .unwrap();
        let answer: serde_json::Value = instance.call("chat.build_request", &()).await.unwrap();
        assert_eq!(answer["ok"], true);
        assert!(instance.runs_inline(), "a quick pure call stays inline");
        let here = Some(std::thread::current().id());
        assert_eq!(last_thread(), here, "it ran on the calling task's thread");
        let _: serde_json::Value = instance.call("models", &()).await.unwrap();
        assert_ne!(
            last_thread(),
            here,
            "other methods run on the blocking pool"
        );

        // Slow by the clock once (as a thread preempted on a busy core): it stays inline; a fast
        // call after it starts the count again.
        SLOW_MS.store(5, Ordering::SeqCst);
        for _ in 0..SLOW_STREAK - 1 {
            let _: serde_json::Value = instance.call("chat.parse_response", &()).await.unwrap();
        }
        assert!(instance.runs_inline(), "fewer than SLOW_STREAK in a row");
        SLOW_MS.store(0, Ordering::SeqCst);
        let _: serde_json::Value = instance.call("chat.parse_response", &()).await.unwrap();
        SLOW_MS.store(5, Ordering::SeqCst);
        for _ in 0..SLOW_STREAK - 1 {
            let _: serde_json::Value = instance.call("chat.parse_response", &()).await.unwrap();
        }
        assert!(instance.runs_inline(), "the streak started again");
        // Slow every time: a plugin that waits in a pure call leaves the async workers.
        let answer: serde_json::Value = instance.call("chat.parse_response", &()).await.unwrap();
        assert_eq!(answer["ok"], true, "the slow call still answers");
        assert!(
            !instance.runs_inline(),
            "and its instance leaves the async workers"
        );
        SLOW_MS.store(0, Ordering::SeqCst);

        // A call that burns more CPU than the budget moves its instance at once.
        let busy = Instance::create(&TABLE, b"{}".to_vec(), Duration::from_secs(5))
            .await
            .unwrap();
        let _: serde_json::Value = busy.call("chat.build_request", &()).await.unwrap();
        assert!(busy.runs_inline());
        SPIN_MS.store(5, Ordering::SeqCst);
        let _: serde_json::Value = busy.call("chat.build_request", &()).await.unwrap();
        SPIN_MS.store(0, Ordering::SeqCst);
        assert!(
            !busy.runs_inline(),
            "one call over the CPU budget is enough"
        );

        // From now on even a pure call is bounded by the deadline, on the blocking pool.
        SLOW_MS.store(0, Ordering::SeqCst);
        let before = CALLS.load(Ordering::SeqCst);
        let answer: serde_json::Value = instance.call("chat.build_request", &()).await.unwrap();
        assert_eq!(answer["ok"], true);
        assert_eq!(CALLS.load(Ordering::SeqCst), before + 1);
        assert_ne!(last_thread(), here, "now on the blocking pool");
        assert!(!instance.runs_inline(), "for good");
    }
}
