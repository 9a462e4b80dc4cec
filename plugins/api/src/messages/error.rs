//! Why a plugin call failed: [`PluginError`] and its [`ErrorCode`].

use serde::{Deserialize, Serialize};

/// Why a plugin call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is wrong (bad parameter, context too long): the caller must change it.
    BadInput,
    /// The upstream service failed or refused (auth, rate limit, outage).
    Upstream,
    /// The upstream refused because of the provider account's billing (balance exhausted,
    /// account suspended). Waiting does not help, so the host never retries it; an operator
    /// must act. Hosts older than this code report it as a broken plugin contract.
    Billing,
    /// The instance configuration is wrong.
    Config,
    /// The method is not implemented by this plugin.
    Unsupported,
    /// A bug in the plugin.
    Internal,
}

/// A failure reported by a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginError {
    /// The kind of failure.
    pub code: ErrorCode,
    /// A message for the caller (the provider's own words where there are some).
    pub message: String,
}

impl PluginError {
    /// A failure of `code` with `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// A `config` error.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Config, message)
    }

    /// An `upstream` error.
    pub fn upstream(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Upstream, message)
    }

    /// An `unsupported` error for `method`.
    pub fn unsupported(method: &str) -> Self {
        Self::new(
            ErrorCode::Unsupported,
            format!("this plugin does not implement `{method}`"),
        )
    }
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for PluginError {}
