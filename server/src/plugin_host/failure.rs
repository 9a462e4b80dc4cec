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
    /// An isolated plugin's runner process died during the call (a crash, an abort, a kill):
    /// why, as in "runner crashed (signal 11, SIGSEGV)".
    Crashed(String),
    /// An isolated plugin gave no answer within the deadline: its runner was killed (and is
    /// restarted), so a hung plugin holds no thread.
    Hung(Duration),
    /// An isolated plugin's runner is down and waits out its restart backoff: why, and when.
    Down(String),
}

impl std::fmt::Display for CallFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallFailure::Plugin(e) => write!(f, "{}", e.message),
            CallFailure::Panicked(m) => write!(f, "panicked: {m}"),
            CallFailure::Garbage(m) => write!(f, "broke the plugin contract: {m}"),
            CallFailure::TimedOut(d) => write!(f, "did not answer within {} ms", d.as_millis()),
            CallFailure::Crashed(why) => write!(f, "failed: its {why}; it is being restarted"),
            CallFailure::Hung(d) => write!(
                f,
                "did not answer within {} ms; its runner was killed and is being restarted",
                d.as_millis()
            ),
            CallFailure::Down(why) => write!(f, "is unavailable: {why}"),
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
        CallFailure::TimedOut(_) | CallFailure::Hung(_) => {
            tracing::warn!(plugin.instance = %instance, error = %f, "plugin call timed out");
            Error::Timeout(format!("plugin `{instance}` {f}"))
        }
        // Logged once by the runner's supervisor, which saw the runner go down.
        CallFailure::Down(_) => Error::Unavailable(format!("plugin `{instance}` {f}")),
        other => {
            tracing::warn!(plugin.instance = %instance, error = %other, "plugin call failed");
            Error::Plugin(format!("plugin `{instance}` {other}"))
        }
    }
}
