//! The CloudBase AI plugin SDK: the only crate a plugin author depends on.
//!
//! A plugin is a shared library (`crate-type = ["cdylib"]`) dropped into the server's plugins
//! folder. It is either an **AI provider** (chat completions) or a **notifier** (alert delivery).
//! Plugins are *sans-IO*: they build HTTP requests and parse responses; the host sends them with
//! its own timeouts, retries, secrets and cancellation.
//!
//! A plugin may run in the server or, when the operator sets `isolation = "process"` for an
//! instance, in a runner process of its own that relays the same calls and JSON messages over
//! pipes (`cloudbase-plugin-runner`). Write it the same way for both: keep no state between
//! instances, print nothing that matters (stdout and stderr go to the server's log), and do not
//! count on the host's process: a crash, an abort or a hang then takes only the runner, which the
//! host restarts. In-process, a panic must be caught at the boundary (`panic = "unwind"`, below);
//! isolated, a plugin built with `panic = "abort"` is accepted too.
//!
//! - [`abi`]: the versioned C ABI (vtable, buffers, status codes, flags). Any language with a C
//!   ABI can implement it; see `include/cloudbase_plugin.h`.
//! - [`channel`]: helpers for notifiers (URL checks, truncation, judging `{"code": 0}` replies).
//! - [`messages`]: the JSON messages (`ChatRequest`, `HttpRequest`, `StreamEvent`, `Usage`,
//!   `Notification`, `Delivery`, ...).
//! - [`traits`]: the safe [`Provider`] and [`Notifier`] traits.
//! - [`ffi`]: the generic shims behind [`export_plugin!`]; they catch every panic inside the plugin.
//! - [`openai`]: helpers for the OpenAI chat-completions wire format (requests, responses, SSE).
//! - `host` (feature `host`): for hosts of plugin libraries, not plugin authors: opening and
//!   checking a library, and taking the buffers it returns.
//!
//! # A complete plugin
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [package]
//! name = "echo-provider"
//! version = "0.1.0"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! cloudbase-plugin-api = { path = "../cloudbase/plugins/api" }
//! serde_json = "1"
//!
//! [profile.release]
//! panic = "unwind"   # required: the host refuses plugins built with panic = "abort"
//! ```
//!
//! `src/lib.rs`:
//!
//! ```
//! use cloudbase_plugin_api::export_plugin;
//! use cloudbase_plugin_api::messages::*;
//! use cloudbase_plugin_api::traits::Provider;
//!
//! /// Answers every chat with the last user message, reversed.
//! pub struct Echo {
//!     prefix: String,
//! }
//!
//! impl Provider for Echo {
//!     const NAME: &'static str = "echo";
//!
//!     fn manifest() -> Manifest {
//!         Manifest {
//!             name: Self::NAME.into(),
//!             kind: PluginKind::AiProvider,
//!             version: "0.1.0".into(),
//!             description: "Reverses the last user message (an example)".into(),
//!             mock: true,
//!             config_schema: serde_json::json!({
//!                 "type": "object",
//!                 "properties": { "prefix": { "type": "string", "default": "" } },
//!                 "additionalProperties": false
//!             }),
//!             secrets: vec![],
//!             default_instance: true,
//!             transport: Transport::Local,
//!         }
//!     }
//!
//!     fn create(config: PluginConfig) -> Result<Self, PluginError> {
//!         let prefix = config.settings["prefix"].as_str().unwrap_or_default().to_owned();
//!         Ok(Echo { prefix })
//!     }
//!
//!     fn models(&self) -> Vec<ModelInfo> {
//!         vec![ModelInfo::new("echo-1")]
//!     }
//!
//!     fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, PluginError> {
//!         let last = request.messages.iter().rev().find(|m| m.role == ChatRole::User);
//!         let text: String = last.map(|m| m.content.chars().rev().collect()).unwrap_or_default();
//!         let usage = Usage {
//!             prompt_tokens: request.messages.len() as u64,
//!             cached_prompt_tokens: 0,
//!             completion_tokens: text.split_whitespace().count() as u64,
//!         };
//!         Ok(ChatResponse { content: format!("{}{text}", self.prefix), usage: Some(usage), ..Default::default() })
//!     }
//! }
//!
//! export_plugin!(provider: Echo);
//! ```
//!
//! Build it with `cargo build --release`, copy `target/release/libecho_provider.so` into the
//! server's plugins folder (`CLOUDBASE_PLUGINS_DIR`), restart, and it appears in
//! `plugins { name kind status }`. `docs/plugins.md` covers configuration, secrets and what the
//! host guarantees.

pub mod abi;
pub mod channel;
pub mod ffi;
#[cfg(feature = "host")]
pub mod host;
pub mod messages;
pub mod openai;
pub mod traits;

pub use messages::*;
pub use traits::{Notifier, Provider};

/// Exports a [`Provider`] or [`Notifier`] implementation as a plugin: generates the
/// `cloudbase_plugin_entry_v1` symbol returning a static vtable whose shims catch panics.
///
/// ```ignore
/// export_plugin!(provider: MyProvider);
/// export_plugin!(notifier: MyChannel);
/// ```
#[macro_export]
macro_rules! export_plugin {
    (provider: $ty:ty) => {
        $crate::export_plugin!(@entry $crate::ffi::ProviderPlugin<$ty>, true);
    };
    (notifier: $ty:ty) => {
        $crate::export_plugin!(@entry $crate::ffi::NotifierPlugin<$ty>, false);
    };
    (@entry $dispatch:ty, $streaming:expr) => {
        /// The plugin entry point, generated by `export_plugin!`.
        // `allow`, not `expect`: rustc does not report `unsafe_code` in expansions of another
        // crate's macro, so in a plugin crate an expectation would go unfulfilled; the `allow`
        // still covers an expansion where the lint is reported.
        #[allow(
            unsafe_code,
            reason = "the host finds the plugin by this exact symbol name, so it is not mangled"
        )]
        // SAFETY: `cloudbase_plugin_entry_v1` is this SDK's own name, so it clashes with no other
        // library's symbol, and its signature is `abi::EntryFn`, the type the host calls it as.
        #[unsafe(no_mangle)]
        pub extern "C" fn cloudbase_plugin_entry_v1() -> *const $crate::abi::PluginVTable {
            // `cfg!` is evaluated here, in the plugin crate, so the flag tells the truth about
            // how the plugin was built.
            static VTABLE: $crate::abi::PluginVTable =
                $crate::ffi::vtable::<$dispatch>(cfg!(panic = "unwind"), $streaming);
            &VTABLE
        }
    };
}
