//! The AI call's path on SQLite: inside [`on_call_path`], the blocking wrapper runs a statement
//! right on the calling task; everywhere else it goes to tokio's blocking pool.

use diesel_async::sync_connection_wrapper::SpawnBlocking;
use futures_util::FutureExt;
use tokio::task::futures::TaskLocalFuture;

tokio::task_local! {
    /// Set while a future runs [`on_call_path`].
    static ON_CALL_PATH: ();
}

/// Runs `work` with its SQLite statements executed right on the calling task instead of a hop
/// to the blocking pool and back (two thread switches each, and a call made about ten: most of
/// its cost, `bench/RESULTS.md`). Only for the point reads and single-row writes of an AI call
/// (the session check, the limits, the price, the record, its rollups, the audit row): each
/// takes microseconds, reads never wait in WAL mode, and this process's writers take turns
/// before they write ([`super::WriteGate`]), so none of them waits in SQLite's busy handler. Reports,
/// exports, sweeps and everything else keep the blocking pool. PostgreSQL is not affected.
///
/// Not an `async fn`: its state would keep `work` beside the scope it is moved into, twice the
/// size of `work` (6 KB more in a call's finish), and every future around it would carry that
/// and copy it (`rustc -Zprint-type-sizes`, `bench/RESULTS.md`).
pub fn on_call_path<F: std::future::Future>(work: F) -> TaskLocalFuture<(), F> {
    ON_CALL_PATH.scope((), work)
}

/// Where the SQLite wrapper runs a statement: inline inside [`on_call_path`] (or when the
/// connection was made outside any runtime), otherwise on tokio's blocking pool (what
/// diesel-async does by default).
pub struct Spawner(Option<tokio::runtime::Handle>);

impl SpawnBlocking for Spawner {
    fn spawn_blocking<'a, R>(
        &mut self,
        task: impl FnOnce() -> R + Send + 'static,
    ) -> futures_util::future::BoxFuture<'a, Result<R, Box<dyn std::error::Error + Send + Sync>>>
    where
        R: Send + 'static,
    {
        match &self.0 {
            Some(handle) if ON_CALL_PATH.try_with(|()| ()).is_err() => handle
                .spawn_blocking(task)
                .map(|joined| joined.map_err(|e| Box::from(e.to_string())))
                .boxed(),
            _ => {
                // A panic stays an error of this statement, as it would on the blocking pool.
                let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(task))
                    .map_err(|_| Box::from("a statement panicked"));
                futures_util::future::ready(done).boxed()
            }
        }
    }

    fn get_runtime() -> Self {
        Spawner(tokio::runtime::Handle::try_current().ok())
    }
}
