//! Plugin libraries are opened from private copies, never from the plugins folder itself.
//! `dlopen` knows a library by its path, so a changed file at the same path would give back the
//! library already loaded; and writing over a file that is mapped into the process can crash it.
//!
//! So each library's bytes are read once and hashed (SHA-256), written into a new private folder
//! (mode 0700, under the data folder, else the system's temporary folder) under a name carrying
//! the hash, opened from there, and the copy deleted at once: the mapping keeps its pages alive,
//! and nothing is left behind, even after a crash. The folder's files can then be replaced in
//! place, safely. The same bytes seen again (an unchanged library on a reload) give back the
//! library already open, and a library that opened but failed its checks gives back the same
//! reason, without opening anything again. Libraries are never unloaded ([`library::open`] leaks
//! them).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cloudbase_plugin_api::abi::PluginVTable;
use sha2::{Digest as _, Sha256};

use super::library;

/// How [`library::open`] starts its reason when the system loader refused the file.
const NOT_LOADABLE: &str = "not a loadable library";

/// What opening a library's bytes gave.
type Opened = Result<&'static PluginVTable, String>;

/// Opens libraries from private copies, and remembers what each content gave.
pub struct Copies {
    /// Where the private folders are made.
    base: PathBuf,
    /// By SHA-256 of the file's bytes.
    opened: Mutex<HashMap<[u8; 32], Opened>>,
}

impl Copies {
    /// Copies made in a new folder under `base` (created if needed), or under the system's
    /// temporary folder if `base` cannot hold one.
    pub fn new(base: PathBuf) -> Self {
        Self {
            base,
            opened: Mutex::new(HashMap::new()),
        }
    }

    /// Opens the library in `path` from a private copy of its bytes, or returns the library
    /// those same bytes opened before.
    pub async fn open(&self, path: &Path) -> Opened {
        let owned = path.to_path_buf();
        // Read and hashed off the async threads: libraries run to tens of megabytes.
        let (bytes, digest) = tokio::task::spawn_blocking(move || {
            let bytes = std::fs::read(&owned)?;
            let digest: [u8; 32] = Sha256::digest(&bytes).into();
            Ok::<_, std::io::Error>((bytes, digest))
        })
        .await
        .map_err(|e| format!("loading failed: {e}"))?
        .map_err(|e| format!("cannot read the file: {e}"))?;
        if let Some(known) = self.known(&digest) {
            return known;
        }
        let (base, name) = (self.base.clone(), copy_name(path, &digest));
        let opened = tokio::task::spawn_blocking(move || open_copy(&base, &name, &bytes))
            .await
            .map_err(|e| format!("loading failed: {e}"))??;
        // A library the loader could not open at all may open later (a library it needs gets
        // installed): only what depends on the bytes alone is remembered. Nothing stays mapped
        // of a library `dlopen` refused, so trying again costs no memory.
        let refused = opened.as_ref().is_err_and(|e| e.starts_with(NOT_LOADABLE));
        if !refused {
            self.opened
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(digest, opened.clone());
        }
        opened
    }

    /// What these bytes gave when they were opened before, if they were.
    fn known(&self, digest: &[u8; 32]) -> Option<Opened> {
        self.opened
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
            .cloned()
    }
}

/// `libkimi.so` with content hash `ab12…` → `libkimi-ab12….so` (16 hex digits).
fn copy_name(path: &Path, digest: &[u8; 32]) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let hash = hex::encode(&digest[..8]);
    match path.extension() {
        Some(ext) => format!("{stem}-{hash}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{hash}"),
    }
}

/// Writes `bytes` as `name` in a new private folder, opens it, and deletes the folder. The
/// outer error is a copy that could not be made (not remembered: the next reload tries again);
/// the inner result is what opening gave (remembered for these bytes).
fn open_copy(base: &Path, name: &str, bytes: &[u8]) -> Result<Opened, String> {
    let folder = private_folder(base)?;
    let copy = folder.path().join(name);
    std::fs::write(&copy, bytes).map_err(|e| {
        format!(
            "cannot write a private copy to load in {}: {e}",
            folder.path().display()
        )
    })?;
    let opened = library::open(&copy);
    // The copy goes now; a library that opened keeps its mapping.
    if let Err(e) = folder.close() {
        tracing::warn!(error = %e, "removing a plugin library's private copy failed");
    }
    Ok(opened)
}

/// A new folder only this process may use (mode 0700), under `base`, else under the system's
/// temporary folder.
fn private_folder(base: &Path) -> Result<tempfile::TempDir, String> {
    let make = |dir: &Path| {
        std::fs::create_dir_all(dir)?;
        tempfile::Builder::new()
            .prefix(".plugin-copy-")
            .tempdir_in(dir)
    };
    make(base).or_else(|first| {
        make(&std::env::temp_dir()).map_err(|e| {
            format!(
                "cannot make a private folder to load from in {} ({first}) or the temporary folder ({e})",
                base.display()
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Why opening failed (a function table has no `Debug` for `unwrap_err`).
    fn reason(opened: Opened) -> String {
        match opened {
            Ok(_) => panic!("expected a failure"),
            Err(reason) => reason,
        }
    }

    #[test]
    fn copies_are_named_after_the_file_and_its_content() {
        let digest = [0xab; 32];
        assert_eq!(
            copy_name(Path::new("/p/libkimi.so"), &digest),
            "libkimi-abababababababab.so"
        );
        assert_eq!(
            copy_name(Path::new("plugin"), &digest),
            "plugin-abababababababab"
        );
    }

    #[tokio::test]
    async fn a_file_that_is_no_library_fails_and_leaves_no_copy() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("libjunk.so");
        std::fs::write(&file, b"not a library").unwrap();
        let base = dir.path().join("copies");
        let copies = Copies::new(base.clone());
        let first = reason(copies.open(&file).await);
        assert!(first.contains("not a loadable library"), "{first}");
        assert_eq!(
            reason(copies.open(&file).await),
            first,
            "tried again, same reason"
        );
        assert_eq!(
            std::fs::read_dir(&base).unwrap().count(),
            0,
            "the private folder and its copy are gone"
        );
        let missing = reason(copies.open(&dir.path().join("gone.so")).await);
        assert!(missing.contains("cannot read"), "{missing}");
    }
}
