//! The runner's side: open one plugin library, then answer the host's frames until its stdin
//! closes. Calls run on a thread each (pure transforms inline on the reading thread, as they are
//! microseconds), so one slow call does not hold up the others; replies go out in the order they
//! finish. Whatever the plugin prints goes to stderr, which the host copies into its log: fd 1 is
//! pointed at stderr once the frames have a descriptor of their own.
#![expect(
    unsafe_code,
    reason = "the runner opens a plugin library and calls through its C ABI, as the host's \
              loader does; each unsafe block has a SAFETY comment"
)]

use std::collections::HashSet;
use std::ffi::c_void;
use std::fs::File;
use std::io;
use std::os::fd::FromRawFd;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, OnceLock};

use cloudbase_plugin_api::abi::{
    FLAG_PANIC_UNWIND, FLAG_RAW_JSON_BODIES, PluginVTable, RBuf, RStr, status,
};
use cloudbase_plugin_api::host::{self, Panics};
use cloudbase_plugin_api::{ErrorCode, PluginError};

use crate::protocol::{Frame, kind, read_frame, write_frame};

/// Methods the ABI defines as pure, quick transforms: answered inline on the reading thread.
const INLINE_METHODS: [&str; 5] = [
    "chat.build_request",
    "chat.parse_response",
    "chat.parse_stream_event",
    "notify.build",
    "notify.parse_response",
];

/// Serves `library` over stdin/stdout until stdin closes. Exits 0 then, 2 when it cannot serve.
pub fn run(library: &Path) -> ExitCode {
    let output = match protocol_output() {
        Ok(output) => output,
        Err(e) => {
            eprintln!("plugin runner: cannot set up its output: {e}");
            return ExitCode::from(2);
        }
    };
    let runner = Arc::new(Runner {
        vtable: host::open(library, Panics::MayAbort),
        instance: OnceLock::new(),
        output: Mutex::new(output),
        cancelled: Mutex::new(HashSet::new()),
    });
    let mut input = io::stdin().lock();
    loop {
        match read_frame(&mut input) {
            Ok(Some(frame)) => Arc::clone(&runner).handle(frame),
            Ok(None) => return ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("plugin runner: reading a request: {e}");
                return ExitCode::from(2);
            }
        }
    }
}

/// Gives the frames a descriptor of their own and points fd 1 at stderr, so that a plugin that
/// prints (a C `printf`, a Rust `println!`) cannot corrupt them.
fn protocol_output() -> io::Result<File> {
    // SAFETY: `dup` of this process's own fd 1 has no preconditions; the result is checked.
    let fd = unsafe { libc::dup(1) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `dup2` on two descriptors this process owns; the result is checked.
    if unsafe { libc::dup2(2, 1) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor from `dup` that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// The runner's state: the library, its one instance, and the frames' output.
struct Runner {
    vtable: Result<&'static PluginVTable, String>,
    /// The instance pointer from `create`, as an address (it is only ever passed back).
    instance: OnceLock<usize>,
    output: Mutex<File>,
    /// Streams whose listener went away.
    cancelled: Mutex<HashSet<u64>>,
}

/// A `PluginError` JSON with `message`.
fn error_json(message: String) -> Vec<u8> {
    serde_json::to_vec(&PluginError::new(ErrorCode::Internal, message)).unwrap_or_default()
}

impl Runner {
    fn reply(&self, id: u64, status: i32, payload: Vec<u8>) {
        self.send(&Frame {
            id,
            kind: kind::REPLY,
            status,
            method: String::new(),
            payload,
        });
    }

    /// Writes a frame; a host that stopped reading ends the runner.
    fn send(&self, frame: &Frame) -> bool {
        let mut output = self.output.lock().unwrap_or_else(|p| p.into_inner());
        match write_frame(&mut *output, frame) {
            Ok(()) => true,
            Err(e) => {
                eprintln!("plugin runner: the host stopped reading ({e}); exiting");
                std::process::exit(0);
            }
        }
    }

    fn handle(self: Arc<Self>, frame: Frame) {
        let vtable = match (&self.vtable, frame.kind) {
            (_, kind::CANCEL) => {
                let mut cancelled = self.cancelled.lock().unwrap_or_else(|p| p.into_inner());
                cancelled.insert(frame.id);
                return;
            }
            (Err(reason), _) => {
                return self.reply(frame.id, status::ERROR, error_json(reason.clone()));
            }
            (Ok(vtable), _) => *vtable,
        };
        match frame.kind {
            kind::DESCRIBE => {
                let answer = serde_json::json!({
                    "name": host::name(vtable).unwrap_or_default(),
                    "panic_unwind": vtable.flags & FLAG_PANIC_UNWIND != 0,
                    "raw_json_bodies": vtable.flags & FLAG_RAW_JSON_BODIES != 0,
                });
                self.reply(frame.id, status::OK, answer.to_string().into_bytes());
            }
            kind::MANIFEST => {
                let mut out = RBuf::EMPTY;
                // SAFETY: `manifest` is part of the checked v1 table; `out` is a valid slot.
                let code = unsafe { (vtable.manifest)(&mut out) };
                self.reply(frame.id, code, host::take(vtable, out));
            }
            kind::CREATE => self.create(vtable, frame),
            kind::CALL if INLINE_METHODS.contains(&frame.method.as_str()) => {
                self.call(vtable, frame);
            }
            kind::CALL => {
                std::thread::spawn(move || self.call(vtable, frame));
            }
            kind::STREAM => {
                std::thread::spawn(move || self.stream(vtable, frame));
            }
            other => self.reply(
                frame.id,
                status::ERROR,
                error_json(format!("unknown request kind {other}")),
            ),
        }
    }

    fn create(&self, vtable: &'static PluginVTable, frame: Frame) {
        if self.instance.get().is_some() {
            return self.reply(
                frame.id,
                status::ERROR,
                error_json("already created".into()),
            );
        }
        let mut out = RBuf::EMPTY;
        let mut instance: *mut c_void = std::ptr::null_mut();
        // SAFETY: `create` is part of the checked v1 table; the config outlives the call and both
        // out-pointers are valid slots.
        let code = unsafe { (vtable.create)(RStr::of(&frame.payload), &mut instance, &mut out) };
        let bytes = host::take(vtable, out);
        if code == status::OK && !instance.is_null() {
            let _ = self.instance.set(instance.expose_provenance());
        }
        self.reply(frame.id, code, bytes);
    }

    /// The instance pointer, or the reply saying there is none yet.
    fn instance(&self, id: u64) -> Option<*mut c_void> {
        let instance = self
            .instance
            .get()
            .map(|&address| std::ptr::with_exposed_provenance_mut::<c_void>(address));
        if instance.is_none() {
            self.reply(
                id,
                status::ERROR,
                error_json("no instance: create it first".into()),
            );
        }
        instance
    }

    fn call(&self, vtable: &'static PluginVTable, frame: Frame) {
        let Some(instance) = self.instance(frame.id) else {
            return;
        };
        let mut out = RBuf::EMPTY;
        // SAFETY: `call` is part of the checked v1 table; the instance came from `create`;
        // method and input outlive the call; `out` is a valid slot.
        let code = unsafe {
            (vtable.call)(
                instance,
                RStr::of(frame.method.as_bytes()),
                RStr::of(&frame.payload),
                &mut out,
            )
        };
        self.reply(frame.id, code, host::take(vtable, out));
    }

    fn stream(&self, vtable: &'static PluginVTable, frame: Frame) {
        let Some(instance) = self.instance(frame.id) else {
            return;
        };
        let Some(call_stream) = vtable.call_stream else {
            let e = PluginError::new(ErrorCode::Unsupported, "the plugin does not stream");
            return self.reply(
                frame.id,
                status::ERROR,
                serde_json::to_vec(&e).unwrap_or_default(),
            );
        };
        let target = EmitTarget {
            runner: self,
            id: frame.id,
        };
        let ctx = std::ptr::from_ref(&target).cast_mut().cast::<c_void>();
        let mut out = RBuf::EMPTY;
        // SAFETY: `call_stream` is part of the checked v1 table; `ctx` points at `target`, which
        // outlives the call; `emit_frame` matches `EmitFn`; inputs outlive the call.
        let code = unsafe {
            call_stream(
                instance,
                RStr::of(frame.method.as_bytes()),
                RStr::of(&frame.payload),
                emit_frame,
                ctx,
                &mut out,
            )
        };
        let bytes = host::take(vtable, out);
        self.cancelled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&frame.id);
        self.reply(frame.id, code, bytes);
    }
}

/// Where a stream's events go: the runner's output, as frames of stream `id`.
struct EmitTarget<'a> {
    runner: &'a Runner,
    id: u64,
}

/// The runner's `EmitFn`: one event becomes one frame; 1 (stop) once the host cancelled.
unsafe extern "C" fn emit_frame(ctx: *mut c_void, event: RStr) -> i32 {
    // SAFETY: `ctx` is the `EmitTarget` that `Runner::stream` passed for the duration of the
    // streaming call, which is still running while it calls us.
    let target = unsafe { &*ctx.cast_const().cast::<EmitTarget<'_>>() };
    let cancelled = target
        .runner
        .cancelled
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(&target.id);
    if cancelled {
        return 1;
    }
    let payload = if event.ptr.is_null() || event.len == 0 {
        Vec::new()
    } else {
        // SAFETY: the plugin passes `len` readable bytes, valid until we return.
        unsafe { std::slice::from_raw_parts(event.ptr, event.len) }.to_vec()
    };
    let frame = Frame {
        id: target.id,
        kind: kind::EVENT,
        status: 0,
        method: String::new(),
        payload,
    };
    if target.runner.send(&frame) { 0 } else { 1 }
}
