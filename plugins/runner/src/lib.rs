//! The plugin runner: one plugin library in a process of its own (`isolation = "process"`), so
//! that a crash, an abort or a hang in it takes only that process. The host starts it as
//! `<program> plugin-runner <library>` (the `cloudbase-ai` binary itself by default) and speaks
//! length-prefixed frames over its stdin and stdout; the JSON inside them is the ABI's own.
//!
//! - [`protocol`]: the frames, shared by the host and the runner.
//! - `serve`: the runner's loop ([`run`]): open the library, create the instance, answer calls.

pub mod protocol;
mod serve;

pub use serve::run;

use std::ffi::OsString;
use std::process::ExitCode;

/// The first argument that makes a program a runner: `<program> plugin-runner <library>`.
pub const SUBCOMMAND: &str = "plugin-runner";

/// Runs as a plugin runner when `args` (without the program name) are `plugin-runner
/// <library>`; `None` otherwise, for the program to do what it normally does.
pub fn run_if_asked(mut args: impl Iterator<Item = OsString>) -> Option<ExitCode> {
    if args.next()? != SUBCOMMAND {
        return None;
    }
    let Some(library) = args.next() else {
        eprintln!("usage: {SUBCOMMAND} <plugin library>");
        return Some(ExitCode::from(2));
    };
    Some(run(std::path::Path::new(&library)))
}
