//! The one dedicated LISTEN connection of an instance (never a pooled one): it receives what the
//! other instances publish with `pg_notify` and re-broadcasts it to local subscribers. When the
//! connection dies it reconnects with backoff; events sent meanwhile are missed (at most once),
//! which is why clients refetch state after they (re)subscribe.

use std::sync::Arc;
use std::time::Duration;

use cloudbase_schema::App;
use cloudbase_schema::events::{CHANNEL, named_connection};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use futures_util::StreamExt;

/// The `application_name` of listener connections (visible in `pg_stat_activity`).
pub const LISTENER_NAME: &str = "cloudbase-listener";

/// Listens until the task is aborted, reconnecting with backoff (0.1 s doubling to 5 s).
pub async fn listen(url: String, app: Arc<App>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match listen_once(&url, &app).await {
            Ok(()) => tracing::warn!("the event LISTEN connection closed; reconnecting"),
            Err(e) => {
                tracing::warn!(error = %e, "the event LISTEN connection failed; reconnecting")
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn listen_once(url: &str, app: &App) -> Result<(), String> {
    let mut conn = AsyncPgConnection::establish(&named_connection(url, LISTENER_NAME))
        .await
        .map_err(|e| e.to_string())?;
    conn.batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!("listening for events from other instances");
    // Whatever was published while no connection listened is lost: what the caches keep may be
    // stale now.
    app.events.resync();
    let mut notifications = std::pin::pin!(conn.notifications_stream());
    while let Some(notification) = notifications.next().await {
        match notification {
            Ok(n) => app.events.receive_remote(&n.payload),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}
