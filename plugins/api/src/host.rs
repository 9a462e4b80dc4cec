//! For hosts of plugin libraries, not for plugin authors (feature `host`): opening a library and
//! checking its function table before anything in it is trusted, reading its name, and taking a
//! buffer it returned. The server's loader and the process runner (`cloudbase-plugin-runner`)
//! share these, so both judge a library the same way. Libraries are never unloaded: their code
//! may still be running on another thread.
#![expect(
    unsafe_code,
    reason = "loading a library and calling its entry symbol cannot be checked by the compiler; \
              each unsafe block has a SAFETY comment"
)]

use std::path::Path;

use crate::abi::{ABI_VERSION, ENTRY_SYMBOL, EntryFn, FLAG_PANIC_UNWIND, PluginVTable, RBuf};

/// What a host accepts of a plugin's panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Panics {
    /// Panics must be caught at the boundary (`panic = "unwind"`): the library runs in the
    /// host's own process, where an abort would take the host down.
    MustUnwind,
    /// A `panic = "abort"` library is accepted: it runs in a process of its own.
    MayAbort,
}

/// Opens `path` and returns its table, or why it is not a usable plugin. The checks run in this
/// order: the entry symbol, the ABI version, the table's size, then (with
/// [`Panics::MustUnwind`]) the panic flag.
pub fn open(path: &Path, panics: Panics) -> Result<&'static PluginVTable, String> {
    // SAFETY: opening a library runs its initialisers. The operator put this file in the plugins
    // folder to have it loaded; that trust is the premise of a plugin system. `RTLD_NOW` resolves
    // every symbol up front, so a broken library fails here rather than mid-call.
    #[cfg(unix)]
    let library = unsafe {
        libloading::os::unix::Library::open(
            Some(path),
            libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL,
        )
    }
    .map(libloading::Library::from)
    .map_err(|e| format!("not a loadable library: {e}"))?;
    // SAFETY: as above.
    #[cfg(not(unix))]
    let library = unsafe { libloading::Library::new(path) }
        .map_err(|e| format!("not a loadable library: {e}"))?;

    // Never unloaded: leaking keeps every function pointer valid for the life of the process.
    let library: &'static libloading::Library = Box::leak(Box::new(library));
    // SAFETY: the symbol, if present, is declared by the ABI as `EntryFn`; a library exporting
    // this name with another signature is violating the contract it names.
    let entry: EntryFn = unsafe { library.get::<EntryFn>(ENTRY_SYMBOL.as_bytes()) }
        .map(|symbol| *symbol)
        .map_err(|_| format!("no `{ENTRY_SYMBOL}` symbol: not a CloudBase AI plugin"))?;
    // SAFETY: calling the entry point per the ABI; it takes nothing and returns a pointer.
    let table = unsafe { entry() };
    if table.is_null() {
        return Err("the entry point returned a null table".into());
    }
    // Only the first two fields are common to every ABI version: read them alone first.
    let words = table.cast::<u32>();
    // SAFETY: every version of the table starts with `abi_version: u32, struct_size: u32`.
    let (abi_version, struct_size) = unsafe { (words.read(), words.add(1).read()) };
    if abi_version != ABI_VERSION {
        return Err(format!(
            "ABI version {abi_version}; this server speaks version {ABI_VERSION}"
        ));
    }
    let expected = std::mem::size_of::<PluginVTable>();
    if (struct_size as usize) < expected {
        return Err(format!(
            "function table of {struct_size} bytes; ABI version {ABI_VERSION} needs {expected}"
        ));
    }
    // SAFETY: the version and size checks above guarantee the full v1 layout is present.
    let vtable: &'static PluginVTable = unsafe { &*table };
    if panics == Panics::MustUnwind && vtable.flags & FLAG_PANIC_UNWIND == 0 {
        return Err(
            "built with panic = \"abort\" (or without catching panics at the boundary); rebuild with panic = \"unwind\", or run it with isolation = \"process\""
                .into(),
        );
    }
    Ok(vtable)
}

/// The name the library reports through its `name` function (not yet checked as a name).
pub fn name(vtable: &'static PluginVTable) -> Result<String, String> {
    // SAFETY: `name` is part of the checked v1 table and returns a static string.
    let raw = unsafe { (vtable.name)() };
    let bytes = if raw.ptr.is_null() || raw.len == 0 {
        &[][..]
    } else {
        // SAFETY: the ABI says `name` points at `len` static bytes.
        unsafe { std::slice::from_raw_parts(raw.ptr, raw.len) }
    };
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| "the plugin name is not UTF-8".to_owned())
}

/// Copies a buffer the plugin returned out of it and hands it back to the plugin's `free_buf`.
pub fn take(vtable: &PluginVTable, buf: RBuf) -> Vec<u8> {
    if buf.ptr.is_null() {
        return Vec::new();
    }
    // SAFETY: the plugin filled `buf` during the call that just returned; it stays valid until
    // given back to `free_buf`, which happens right after the copy, exactly once.
    let bytes = unsafe { std::slice::from_raw_parts(buf.ptr, buf.len) }.to_vec();
    // SAFETY: see above.
    unsafe { (vtable.free_buf)(buf) };
    bytes
}
