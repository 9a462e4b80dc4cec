//! Opening a plugin library in the server's process (the checks are `cloudbase_plugin_api::host`'s,
//! shared with the process runner) and checking the name it reports.
use std::path::Path;

use cloudbase_plugin_api::abi::PluginVTable;
use cloudbase_plugin_api::host::{self, Panics};

/// Opens `path` for this process and returns its vtable, or why it is not a usable plugin: a
/// library that would abort on a panic is refused here (it may still run isolated).
pub fn open(path: &Path) -> Result<&'static PluginVTable, String> {
    host::open(path, Panics::MustUnwind)
}

/// The name the library reports through its `name` function, checked.
pub fn name(vtable: &'static PluginVTable) -> Result<String, String> {
    let name = host::name(vtable)?;
    check_name(&name)?;
    Ok(name)
}

/// Whether `name` is a valid plugin name: `[a-z0-9_-]`, 1-64 characters.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "invalid plugin name {name:?}: expected [a-z0-9_-], 1-64 characters"
        ));
    }
    Ok(())
}
