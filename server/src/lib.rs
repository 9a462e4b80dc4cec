//! The `cloudbase-ai` server: configuration, start-up, and the HTTP surface.
//!
//! `main.rs` is the CLI; everything it runs lives here so tests start the server the same way
//! (`run(config, listener, shutdown)`).
//!
//! - [`backup`]: `backup create | verify | restore`, and SQLite's scheduled backups.
//! - [`config`]: typed config: defaults < `cloudbase.toml` < `CLOUDBASE_*` / `DATABASE_URL`.
//! - [`events`]: the LISTEN connection that brings other instances' events in.
//! - [`startup`]: connects and migrates the database, resolves secrets, builds the services.
//! - [`http`]: the axum router: `/graphql`, `/playground`, `/healthz`, `/readyz`,
//!   `/.well-known/jwks.json`.
//! - [`keys`]: where the master keys come from, and the `cloudbase-ai keys` commands.
//! - [`plugin_host`]: the plugin host: loading libraries, instances, calls, and their I/O.
//! - [`telemetry`]: tracing subscriber set-up.
//! - [`wechat`]: WeChat's `code2Session`, for mini-program sign-in.

// The schema's merged roots nest one type per domain, and the layout of the future that resolves
// a mutation's fields goes deeper than the default limit of 128 (async-graphql's own advice).
#![recursion_limit = "256"]

pub mod backup;
pub mod config;
pub mod events;
pub mod http;
pub mod keys;
pub mod plugin_host;
pub mod startup;
pub mod telemetry;
pub mod wechat;

pub use config::Config;
pub use startup::{run, run_with_clock, shutdown_signal};
