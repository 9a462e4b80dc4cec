//! The accept loop: HTTP/1.1 connections (with upgrades, for WebSockets) served by the router,
//! under a header-read timeout, until shutdown.
//!
//! `axum::serve` sets no timer, so hyper's header-read timeout never ran: a client that trickles
//! its headers, or opens a connection and stays silent, or keeps an idle keep-alive connection,
//! held it for as long as it liked. Here hyper gets a timer and `http.header_read_timeout_secs`,
//! which covers the wait for a request's headers, the first request's as well as the next one on
//! a kept-alive connection. Bodies are read under their own deadline by the handlers that read
//! them (see `graphql::post_handler`). An idle task per connection costs memory, not a worker.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::ServiceExt as _;

/// Connections still open when the shutdown grace period ended. Dropping it drops them, and
/// the requests they were serving.
pub struct Unfinished {
    connections: JoinSet<()>,
    /// When the grace period ends (or ended).
    pub deadline: tokio::time::Instant,
}

impl Unfinished {
    /// How many are still open.
    pub fn len(&self) -> usize {
        self.connections.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.connections.is_empty()
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and asks open
/// connections to finish their request in flight and close, waiting at most `grace`. Returns
/// those still open then, for the caller to drop once it has noted what they were doing.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> Unfinished {
    // hyper's own HTTP/1 builder: hyper-util's auto-detecting one first waits, with no timeout,
    // for enough bytes to tell HTTP/1 from HTTP/2, so a silent client was never cut off.
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Small WebSocket frames (stream deltas) must not wait on delayed ACKs.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(peer));
            router.clone().oneshot(request.map(axum::body::Body::new))
        });
        let connection = builder
            .serve_connection(TokioIo::new(tcp), service)
            .with_upgrades();
        let mut stopping = stopping.clone();
        connections.spawn(async move {
            tokio::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                () = async {
                    // The guard `wait_for` returns is not `Send`: drop it here.
                    let _ = stopping.wait_for(|stop| *stop).await.map(|_| ());
                } => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    let deadline = tokio::time::Instant::now() + grace;
    drop(listener);
    let _ = stop.send(true);
    let _ = tokio::time::timeout_at(deadline, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    Unfinished {
        connections,
        deadline,
    }
}
