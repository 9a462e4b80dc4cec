//! The writer: the one task that owns a socket's sending half.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message};
use futures_util::{SinkExt, StreamExt};

use super::reader::Incoming;
use crate::http::sockets::LiveSocket;

/// How long the writer waits for the client's side of the closing handshake.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// At most this many queued messages go out in one write.
const MAX_BATCH: usize = 64;

/// The writer: sends what async-graphql and the reader produce, in order, then the close frame
/// the socket was asked for (if async-graphql did not close it itself), and waits briefly for the
/// client's close so that nothing it sent meanwhile turns the close into a reset.
pub(super) async fn write(
    mut sink: futures_util::stream::SplitSink<axum::extract::ws::WebSocket, Message>,
    mut queued: futures_channel::mpsc::Receiver<Message>,
    live: Arc<LiveSocket>,
    handoff: tokio::sync::oneshot::Receiver<Incoming>,
) {
    let mut closed = false;
    while let Some(first) = queued.next().await {
        // What is already queued behind the first message goes out with it in one write: an
        // event with ten subscriptions on a socket is one `write` to the kernel, not ten.
        let mut next = Some(first);
        let mut batched = 0;
        while let Some(message) = next.take() {
            closed = matches!(message, Message::Close(_));
            if sink.feed(message).await.is_err() {
                return;
            }
            batched += 1;
            if closed || batched == MAX_BATCH {
                break;
            }
            next = queued.try_recv().ok();
        }
        if sink.flush().await.is_err() {
            return;
        }
        if closed {
            break;
        }
    }
    if !closed && let Some((code, reason)) = live.closing() {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        closed = sink.send(Message::Close(Some(frame))).await.is_ok();
    }
    if closed && let Ok(Ok(mut incoming)) = tokio::time::timeout(CLOSE_GRACE, handoff).await {
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while let Some(Ok(message)) = incoming.next().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
    let _ = sink.close().await;
}
