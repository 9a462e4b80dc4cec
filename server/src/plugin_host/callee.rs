//! What provider and notifier instances call: a plugin instance in this process
//! ([`call::Instance`]) or in a runner process of its own ([`Isolated`]), behind one interface,
//! so that `provider.rs` and `notifier.rs` do not care where the plugin runs.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::call::Instance;
use super::failure::CallFailure;
use super::isolated::Isolated;

/// A live plugin instance, wherever it runs.
#[derive(Clone)]
pub enum Callee {
    /// Loaded into the server (`isolation = "none"`).
    InProcess(Arc<Instance>),
    /// In a runner process (`isolation = "process"`).
    Isolated(Arc<Isolated>),
}

impl Callee {
    /// Calls `method` with `input`; decodes the answer as `O`.
    pub async fn call<I: Serialize + ?Sized, O: DeserializeOwned>(
        &self,
        method: &'static str,
        input: &I,
    ) -> Result<O, CallFailure> {
        match self {
            Callee::InProcess(instance) => instance.call(method, input).await,
            Callee::Isolated(isolated) => isolated.call(method, input).await,
        }
    }

    /// Starts a streaming call: raw JSON events on the receiver, the final status from the
    /// task. Dropping the receiver tells the plugin to stop.
    pub fn start_stream(
        &self,
        method: &'static str,
        input: Vec<u8>,
    ) -> (
        mpsc::Receiver<Vec<u8>>,
        tokio::task::JoinHandle<Result<(), CallFailure>>,
    ) {
        match self {
            Callee::InProcess(instance) => instance.start_stream(method, input),
            Callee::Isolated(isolated) => isolated.start_stream(method, input),
        }
    }

    /// Whether the plugin reads a body that is JSON as the JSON itself
    /// (`cloudbase_plugin_api::abi::FLAG_RAW_JSON_BODIES`), in the server or in its runner
    /// (which reports the flag when it describes the library).
    pub fn raw_json_bodies(&self) -> bool {
        match self {
            Callee::InProcess(instance) => instance.raw_json_bodies(),
            Callee::Isolated(isolated) => isolated.raw_json_bodies(),
        }
    }

    /// The per-call deadline.
    pub fn deadline(&self) -> Duration {
        match self {
            Callee::InProcess(instance) => instance.deadline(),
            Callee::Isolated(isolated) => isolated.deadline(),
        }
    }

    /// Why the instance cannot be called right now (an isolated runner waiting to restart).
    pub fn down(&self) -> Option<String> {
        match self {
            Callee::InProcess(_) => None,
            Callee::Isolated(isolated) => isolated.down(),
        }
    }
}
