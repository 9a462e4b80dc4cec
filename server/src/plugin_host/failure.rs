//! Why a call into a plugin failed ([`CallFailure`]), and the service error clients see for it
//! ([`failure`]); a plugin's misbehaviour is logged here, once.

use std::time::Duration;

use cloudbase_plugin_api::{ErrorCode, PluginError};
use cloudbase_schema::Error;

/// Why a call into a plugin failed.
#[derive(Debug, Clone)]
pub enum CallFailure {
    /// The plugin reported an error.
    Plugin(PluginError),
    /// The plugin panicked (and caught it at the boundary).
    Panicked(String),
    /// The plugin answered something that breaks the contract.
    Garbage(String),
    /// No answer within the deadline. The blocking thread is abandoned to the plugin.
    TimedOut(Duration),
}

impl std::fmt::Display for CallFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallFailure::Plugin(e) => write!(f, "{}", e.message),
            CallFailure::Panicked(m) => write!(f, "panicked: {m}"),
            CallFailure::Garbage(m) => write!(f, "broke the plugin contract: {m}"),
            CallFailure::TimedOut(d) => write!(f, "did not answer within {} ms", d.as_millis()),
        }
    }
}

/// Turns a failed plugin call into the service error clients see; misbehaviour is logged here.
pub fn failure(instance: &str, f: CallFailure) -> Error {
    match f {
        CallFailure::Plugin(e) => match e.code {
            ErrorCode::BadInput => Error::BadInput {
                field: None,
                message: e.message,
            },
            ErrorCode::Upstream => Error::Upstream(e.message),
            ErrorCode::Billing => Error::UpstreamBilling(e.message),
            ErrorCode::Config => {
                Error::Upstream(format!("`{instance}` is misconfigured: {}", e.message))
            }
            ErrorCode::Unsupported | ErrorCode::Internal => {
                Error::Plugin(format!("plugin `{instance}`: {}", e.message))
            }
        },
        CallFailure::TimedOut(_) => {
            tracing::warn!(plugin.instance = %instance, error = %f, "plugin call timed out");
            Error::Timeout(format!("plugin `{instance}` {f}"))
        }
        other => {
            tracing::warn!(plugin.instance = %instance, error = %other, "plugin call failed");
            Error::Plugin(format!("plugin `{instance}` {other}"))
        }
    }
}
