//! `cloudbase-plugin-runner`: the plugin runner for the integration tests. The server in a test
//! runs inside the test binary, which cannot be a runner (libtest owns its stdout), so `TestApp`
//! points `plugin_runner` here; in production the `cloudbase-ai` binary is its own runner.

fn main() -> std::process::ExitCode {
    cloudbase_plugin_runner::run_if_asked(std::env::args_os().skip(1)).unwrap_or_else(|| {
        eprintln!("usage: cloudbase-plugin-runner plugin-runner <plugin library>");
        std::process::ExitCode::from(2)
    })
}
