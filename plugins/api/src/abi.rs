//! The C ABI: what a plugin library exports, and how buffers cross the boundary.
//!
//! A plugin exports one symbol, [`ENTRY_SYMBOL`], a function returning a pointer to a static
//! [`PluginVTable`]. The host checks `abi_version`, then `struct_size`, then `flags`, before it
//! touches anything else. The table is append-only: later versions add fields at the end and
//! raise `struct_size`, never reorder.
//!
//! Every message is UTF-8 JSON. Inputs are borrowed ([`RStr`], valid only during the call).
//! Outputs are [`RBuf`]s allocated by the plugin and handed back to the plugin's `free_buf`:
//! memory is freed by the side that allocated it. The C header `include/cloudbase_plugin.h`
//! declares the same layout for plugins written in other languages.

use std::ffi::c_void;

/// The ABI version this SDK speaks.
pub const ABI_VERSION: u32 = 1;

/// The exported entry point: `extern "C" fn() -> *const PluginVTable`.
pub const ENTRY_SYMBOL: &str = "cloudbase_plugin_entry_v1";

/// Set in [`PluginVTable::flags`] when the plugin was built with `panic = "unwind"` and catches
/// panics at the boundary. The host refuses plugins without it in its own process; it runs them
/// only with `isolation = "process"`, where an abort takes only the runner.
pub const FLAG_PANIC_UNWIND: u32 = 1;

/// Set in [`PluginVTable::flags`] when the plugin reads a response's body and an event's data
/// either as a JSON string (`body`, `data`) or, when they are JSON, as the JSON itself
/// (`body_json`, `data_json`; see [`crate::messages::JsonBodies`]). A host writes the second
/// form only to plugins with this flag. This SDK sets it.
pub const FLAG_RAW_JSON_BODIES: u32 = 2;

/// Return codes of `manifest`, `create`, `call` and `call_stream`.
pub mod status {
    /// Success; the output buffer holds the result JSON.
    pub const OK: i32 = 0;
    /// A handled failure; the output buffer holds a `PluginError` JSON.
    pub const ERROR: i32 = 1;
    /// The plugin panicked and caught it; the output buffer holds a `PluginError` JSON.
    pub const PANIC: i32 = 2;
}

/// A borrowed UTF-8 string: pointer and length, no terminator.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RStr {
    /// First byte (may be dangling when `len` is 0).
    pub ptr: *const u8,
    /// Length in bytes.
    pub len: usize,
}

impl RStr {
    /// Borrows `bytes` for the duration of a call.
    pub fn of(bytes: &[u8]) -> RStr {
        RStr {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }
}

/// An owned byte buffer allocated by the plugin; release it with the plugin's `free_buf`.
#[repr(C)]
#[derive(Debug)]
pub struct RBuf {
    /// First byte.
    pub ptr: *mut u8,
    /// Bytes in use.
    pub len: usize,
    /// Bytes allocated.
    pub cap: usize,
}

impl RBuf {
    /// An empty buffer (nothing to free).
    pub const EMPTY: RBuf = RBuf {
        ptr: std::ptr::null_mut(),
        len: 0,
        cap: 0,
    };
}

/// Called by a streaming plugin for each event (a JSON `StreamEvent`). Returns 0 to go on, or
/// non-zero when the host no longer wants events (the client went away): the plugin should stop.
pub type EmitFn = unsafe extern "C" fn(ctx: *mut c_void, event: RStr) -> i32;

/// The function table a plugin exports. Fields are only ever appended.
#[repr(C)]
pub struct PluginVTable {
    /// Must equal [`ABI_VERSION`].
    pub abi_version: u32,
    /// `size_of::<PluginVTable>()` as the plugin was compiled.
    pub struct_size: u32,
    /// Bit set of `FLAG_*`.
    pub flags: u32,
    /// The plugin's name (static, ASCII, `[a-z0-9_-]`).
    pub name: unsafe extern "C" fn() -> RStr,
    /// Writes the manifest JSON into `out`.
    pub manifest: unsafe extern "C" fn(out: *mut RBuf) -> i32,
    /// Creates an instance from `{"settings": {...}, "secrets": {...}}`; on success writes the
    /// instance pointer to `out_instance`, on failure a `PluginError` into `out`.
    pub create:
        unsafe extern "C" fn(config: RStr, out_instance: *mut *mut c_void, out: *mut RBuf) -> i32,
    /// Destroys an instance. The host calls it at most once, after the instance's last call
    /// has returned (when a reload replaced it; a stopping server may skip it).
    pub destroy: unsafe extern "C" fn(instance: *mut c_void),
    /// Calls `method` with `input` JSON; writes the output JSON into `out`. Instances must be
    /// safe to call from several threads at once.
    pub call: unsafe extern "C" fn(
        instance: *mut c_void,
        method: RStr,
        input: RStr,
        out: *mut RBuf,
    ) -> i32,
    /// Optional: like `call`, but emits events through `emit` as they are produced.
    pub call_stream: Option<
        unsafe extern "C" fn(
            instance: *mut c_void,
            method: RStr,
            input: RStr,
            emit: EmitFn,
            ctx: *mut c_void,
            out: *mut RBuf,
        ) -> i32,
    >,
    /// Releases a buffer this plugin allocated.
    pub free_buf: unsafe extern "C" fn(buf: RBuf),
}

/// The type of the entry point.
pub type EntryFn = unsafe extern "C" fn() -> *const PluginVTable;
