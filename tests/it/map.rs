//! The map stays true: every file that declares child modules (`mod x;`) names each of them in
//! its `//!` header, and the README's Layout names every source folder, so a newcomer finds their
//! room from the headers alone.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds tests/")
        .to_path_buf()
}

/// Every `.rs` file under `dir`, skipping build output and installed packages.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if path.is_dir() {
            if !matches!(name.as_ref(), "target" | "node_modules" | ".git") {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

/// The names of the child modules a file declares with `mod x;` (any visibility, any
/// attributes before it), not inline `mod x { .. }` blocks.
fn declared_modules(source: &str) -> Vec<String> {
    source
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line
                .strip_prefix("pub(crate) ")
                .or_else(|| line.strip_prefix("pub(super) "))
                .or_else(|| line.strip_prefix("pub "))
                .unwrap_or(line);
            let name = rest.strip_prefix("mod ")?.strip_suffix(';')?;
            Some(name.trim().to_owned())
        })
        .collect()
}

/// The leading `//!` block of a file.
fn header(source: &str) -> String {
    source
        .lines()
        .take_while(|l| l.starts_with("//!") || l.trim().is_empty())
        .filter_map(|l| l.strip_prefix("//!"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_module_is_named_in_its_parents_header() {
    let root = workspace();
    let mut files = Vec::new();
    for top in ["server", "schema", "plugins", "tests", "bench"] {
        rust_files(&root.join(top), &mut files);
    }
    assert!(files.len() > 100, "found only {} source files", files.len());
    let mut missing = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file).expect("readable source");
        let header = header(&source);
        for module in declared_modules(&source) {
            if !header.contains(&format!("`{module}`")) {
                let at = file.strip_prefix(&root).unwrap_or(file);
                missing.push(format!("{}: `{module}`", at.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "modules missing from their parent's //! header:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_readme_layout_names_every_source_folder() {
    let root = workspace();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let layout = readme
        .split("## Layout")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a Layout section in README.md");
    let mut folders = Vec::new();
    for crate_dir in ["server/src", "schema/src"] {
        for entry in std::fs::read_dir(root.join(crate_dir))
            .expect("crate sources")
            .flatten()
        {
            if entry.path().is_dir() {
                folders.push(format!(
                    "{crate_dir}/{}/",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
    }
    for entry in std::fs::read_dir(&root).expect("workspace").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        // `target/` and `data/` are what building and running leave behind, not sources.
        if entry.path().is_dir()
            && !name.starts_with('.')
            && !matches!(name.as_str(), "target" | "data")
        {
            folders.push(format!("{name}/"));
        }
    }
    let missing: Vec<_> = folders
        .iter()
        .filter(|f| {
            // `server/src/http/` may be written `  src/http/` under `server/`.
            let short = f
                .split_once('/')
                .map(|(_, rest)| rest)
                .filter(|r| !r.is_empty());
            let nested = short.is_some_and(|s| layout.contains(&format!(" {s}")));
            !layout.contains(f.as_str()) && !nested
        })
        .collect();
    assert!(missing.is_empty(), "README Layout misses: {missing:?}");
}
