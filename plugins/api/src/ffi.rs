//! The plugin side of the C ABI, behind [`crate::export_plugin!`]: generic `extern "C"` shims
//! that decode JSON, call the safe traits, encode the result, and catch every panic so that none
//! crosses the boundary (a panic unwinding into the host would abort it).
#![expect(
    unsafe_code,
    reason = "the shims are the plugin half of the C ABI: they read host pointers and hand out \
              buffers the host frees through `free_buf`; each unsafe block has a SAFETY comment"
)]

use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::abi::{
    ABI_VERSION, EmitFn, FLAG_PANIC_UNWIND, FLAG_RAW_JSON_BODIES, PluginVTable, RBuf, RStr, status,
};
use crate::messages::{
    ChatRequest, ErrorCode, HostOffers, HttpResponse, JsonBodies, Manifest, Notification,
    PluginConfig, PluginError, SseEvent, StreamEvent,
};
use crate::traits::{Notifier, Provider};

/// What the shims need from a plugin type: implemented for [`ProviderPlugin`] and
/// [`NotifierPlugin`].
pub trait Dispatch: Send + Sync + Sized + 'static {
    /// The plugin's name.
    const NAME: &'static str;
    /// The manifest.
    fn manifest() -> Manifest;
    /// A new instance, for a host that offers `offers`.
    fn create(config: PluginConfig, offers: HostOffers) -> Result<Self, PluginError>;
    /// One request, one answer.
    fn call(&self, method: &str, input: &[u8]) -> Result<Vec<u8>, PluginError>;
    /// One request, many events, then a final answer.
    fn call_stream(
        &self,
        method: &str,
        input: &[u8],
        emit: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<Vec<u8>, PluginError>;
}

fn decode<T: DeserializeOwned>(method: &str, input: &[u8]) -> Result<T, PluginError> {
    serde_json::from_slice(input).map_err(|e| {
        PluginError::new(
            ErrorCode::BadInput,
            format!("`{method}`: invalid input: {e}"),
        )
    })
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, PluginError> {
    to_json(value)
        .map_err(|e| PluginError::new(ErrorCode::Internal, format!("encoding output: {e}")))
}

/// `value` as JSON, in a buffer with room for a usual message at once (`serde_json::to_vec`
/// starts at 128 bytes and doubles): what both sides of a call encode with.
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(ENCODED);
    serde_json::to_writer(&mut out, value)?;
    Ok(out)
}

/// The room an encoded message starts with: a chat request or response of a few messages fits.
const ENCODED: usize = 1024;

/// Adapts a [`Provider`] to [`Dispatch`].
pub struct ProviderPlugin<T> {
    provider: T,
    /// Whether the host reads a request's JSON body as JSON itself ([`HostOffers`]).
    raw_json: bool,
}

impl<T: Provider> Dispatch for ProviderPlugin<T> {
    const NAME: &'static str = T::NAME;

    fn manifest() -> Manifest {
        T::manifest()
    }

    fn create(config: PluginConfig, offers: HostOffers) -> Result<Self, PluginError> {
        T::create(config).map(|provider| ProviderPlugin {
            provider,
            raw_json: offers.raw_json_bodies,
        })
    }

    fn call(&self, method: &str, input: &[u8]) -> Result<Vec<u8>, PluginError> {
        let provider = &self.provider;
        match method {
            "models" => encode(&provider.models()),
            "chat.build_request" => encode(&JsonBodies {
                message: &provider.build_request(&decode::<ChatRequest>(method, input)?)?,
                raw_json: self.raw_json,
            }),
            "chat.parse_response" => {
                encode(&provider.parse_response(&decode::<HttpResponse>(method, input)?)?)
            }
            "chat.parse_stream_event" => {
                encode(&provider.parse_stream_event(&decode::<SseEvent>(method, input)?)?)
            }
            "chat.complete" => encode(&provider.complete(&decode::<ChatRequest>(method, input)?)?),
            other => Err(PluginError::unsupported(other)),
        }
    }

    fn call_stream(
        &self,
        method: &str,
        input: &[u8],
        emit: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<Vec<u8>, PluginError> {
        if method != "chat.stream" {
            return Err(PluginError::unsupported(method));
        }
        let request = decode::<ChatRequest>(method, input)?;
        let mut failed = None;
        self.provider
            .stream(&request, &mut |event: StreamEvent| match encode(&event) {
                Ok(bytes) => emit(&bytes),
                Err(e) => {
                    failed = Some(e);
                    false
                }
            })?;
        match failed {
            Some(e) => Err(e),
            None => Ok(b"null".to_vec()),
        }
    }
}

/// Adapts a [`Notifier`] to [`Dispatch`].
pub struct NotifierPlugin<T>(T);

impl<T: Notifier> Dispatch for NotifierPlugin<T> {
    const NAME: &'static str = T::NAME;

    fn manifest() -> Manifest {
        T::manifest()
    }

    fn create(config: PluginConfig, _: HostOffers) -> Result<Self, PluginError> {
        T::create(config).map(NotifierPlugin)
    }

    fn call(&self, method: &str, input: &[u8]) -> Result<Vec<u8>, PluginError> {
        match method {
            "notify.build" => encode(&self.0.build(&decode::<Notification>(method, input)?)?),
            "notify.parse_response" => encode(
                &self
                    .0
                    .parse_response(&decode::<HttpResponse>(method, input)?),
            ),
            other => Err(PluginError::unsupported(other)),
        }
    }

    fn call_stream(
        &self,
        method: &str,
        _input: &[u8],
        _emit: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<Vec<u8>, PluginError> {
        Err(PluginError::unsupported(method))
    }
}

fn into_rbuf(bytes: Vec<u8>) -> RBuf {
    let mut bytes = std::mem::ManuallyDrop::new(bytes);
    RBuf {
        ptr: bytes.as_mut_ptr(),
        len: bytes.len(),
        cap: bytes.capacity(),
    }
}

/// Writes `bytes` to `out` if `out` is not null.
fn write_out(out: *mut RBuf, bytes: Vec<u8>) {
    if out.is_null() {
        return;
    }
    // SAFETY: the host passes a valid, writable `RBuf` slot for the duration of the call.
    unsafe { out.write(into_rbuf(bytes)) };
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// Runs `f`, catching panics, and writes its output or error JSON to `out`.
fn guard(out: *mut RBuf, f: impl FnOnce() -> Result<Vec<u8>, PluginError>) -> i32 {
    let (code, bytes) = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(bytes)) => (status::OK, bytes),
        Ok(Err(e)) => (status::ERROR, serde_json::to_vec(&e).unwrap_or_default()),
        Err(payload) => {
            let e = PluginError::new(
                ErrorCode::Internal,
                format!("plugin panicked: {}", panic_message(payload.as_ref())),
            );
            (status::PANIC, serde_json::to_vec(&e).unwrap_or_default())
        }
    };
    write_out(out, bytes);
    code
}

/// # Safety
/// `s` must point to `len` readable bytes for the duration of the call.
unsafe fn bytes<'a>(s: RStr) -> &'a [u8] {
    if s.len == 0 || s.ptr.is_null() {
        return &[];
    }
    // SAFETY: guaranteed by the caller (the host keeps the input alive during the call).
    unsafe { std::slice::from_raw_parts(s.ptr, s.len) }
}

fn method_name(raw: &[u8]) -> Result<&str, PluginError> {
    std::str::from_utf8(raw)
        .map_err(|_| PluginError::new(ErrorCode::BadInput, "method name is not UTF-8"))
}

unsafe extern "C" fn name_shim<D: Dispatch>() -> RStr {
    RStr {
        ptr: D::NAME.as_ptr(),
        len: D::NAME.len(),
    }
}

unsafe extern "C" fn manifest_shim<D: Dispatch>(out: *mut RBuf) -> i32 {
    guard(out, || encode(&D::manifest()))
}

unsafe extern "C" fn create_shim<D: Dispatch>(
    config: RStr,
    out_instance: *mut *mut c_void,
    out: *mut RBuf,
) -> i32 {
    guard(out, || {
        // SAFETY: the host keeps `config` alive during the call.
        let input = unsafe { bytes(config) };
        let config: PluginConfig = decode("create", input)?;
        let offers: HostOffers = decode("create", input)?;
        let instance = Box::into_raw(Box::new(D::create(config, offers)?));
        if !out_instance.is_null() {
            // SAFETY: the host passes a valid, writable pointer slot.
            unsafe { out_instance.write(instance.cast()) };
        }
        Ok(b"null".to_vec())
    })
}

unsafe extern "C" fn destroy_shim<D: Dispatch>(instance: *mut c_void) {
    if instance.is_null() {
        return;
    }
    let _ = catch_unwind(|| {
        // SAFETY: `instance` came from `create_shim::<D>` and the host destroys it once.
        drop(unsafe { Box::from_raw(instance.cast::<D>()) });
    });
}

unsafe extern "C" fn call_shim<D: Dispatch>(
    instance: *mut c_void,
    method: RStr,
    input: RStr,
    out: *mut RBuf,
) -> i32 {
    guard(out, || {
        // SAFETY: `instance` came from `create_shim::<D>` and is alive; inputs live for the call.
        let (plugin, method, input) =
            unsafe { (&*instance.cast::<D>(), bytes(method), bytes(input)) };
        plugin.call(method_name(method)?, input)
    })
}

unsafe extern "C" fn call_stream_shim<D: Dispatch>(
    instance: *mut c_void,
    method: RStr,
    input: RStr,
    emit: EmitFn,
    ctx: *mut c_void,
    out: *mut RBuf,
) -> i32 {
    guard(out, || {
        // SAFETY: as in `call_shim`.
        let (plugin, method, input) =
            unsafe { (&*instance.cast::<D>(), bytes(method), bytes(input)) };
        let mut forward = |event: &[u8]| {
            let s = RStr {
                ptr: event.as_ptr(),
                len: event.len(),
            };
            // SAFETY: `emit` and `ctx` come from the host for the duration of this call, and
            // `s` points into `event`, alive until `emit` returns.
            unsafe { emit(ctx, s) == 0 }
        };
        plugin.call_stream(method_name(method)?, input, &mut forward)
    })
}

unsafe extern "C" fn free_buf_shim(buf: RBuf) {
    if buf.ptr.is_null() {
        return;
    }
    // SAFETY: every `RBuf` this plugin hands out comes from `into_rbuf`, i.e. a `Vec<u8>` with
    // exactly this pointer, length and capacity, and the host frees each once.
    drop(unsafe { Vec::from_raw_parts(buf.ptr, buf.len, buf.cap) });
}

/// The vtable for `D`. `panic_unwind` must be `cfg!(panic = "unwind")` as seen by the plugin crate.
pub const fn vtable<D: Dispatch>(panic_unwind: bool, streaming: bool) -> PluginVTable {
    PluginVTable {
        abi_version: ABI_VERSION,
        struct_size: std::mem::size_of::<PluginVTable>() as u32,
        flags: FLAG_RAW_JSON_BODIES | if panic_unwind { FLAG_PANIC_UNWIND } else { 0 },
        name: name_shim::<D>,
        manifest: manifest_shim::<D>,
        create: create_shim::<D>,
        destroy: destroy_shim::<D>,
        call: call_shim::<D>,
        call_stream: if streaming {
            Some(call_stream_shim::<D>)
        } else {
            None
        },
        free_buf: free_buf_shim,
    }
}
