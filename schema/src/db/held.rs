//! One pooled connection per request at a time: sibling fields queue for it, and holding one
//! while asking for another is caught.
//!
//! A request that holds a connection while it waits for a second one can deadlock the pool: with
//! N connections, N such requests each hold one and wait forever (until the acquire timeout) for
//! another. That is how the first release collapsed at 32 concurrent calls (DESIGN §9). So every
//! request runs in a [`scope`] with one connection slot:
//! - the root fields of a query resolve side by side, each in its own [`field_scope`]; when two
//!   of them need the database, the second waits for the first to give the slot back, so a
//!   request never holds two connections and `{ me { id } budgets { id } }` just works;
//! - asking for a second connection while the same field (or a job's scope) holds one is the
//!   deadlock above: an error in debug builds (so the test suite fails loudly on any such path)
//!   and a logged warning in release builds, which then go on without waiting for the slot.
//!
//! Work outside a scope (background jobs) is not counted.

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use futures_util::Stream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::Error;

tokio::task_local! {
    /// The request's one connection slot.
    static SLOT: Arc<Semaphore>;
    /// Connections held by the current field (or by the request, outside any field).
    static HELD: Arc<AtomicUsize>;
}

/// Runs `work` as one request: it holds at most one connection at a time.
pub async fn scope<F: Future>(work: F) -> F::Output {
    SLOT.scope(
        Arc::new(Semaphore::new(1)),
        HELD.scope(Arc::new(AtomicUsize::new(0)), work),
    )
    .await
}

/// Runs `work` as one field of the current request: it takes its turn at the request's
/// connection, and a second connection asked for inside it is caught.
pub async fn field_scope<F: Future>(work: F) -> F::Output {
    HELD.scope(Arc::new(AtomicUsize::new(0)), work).await
}

/// A stream polled as one request (a subscription): see [`scope`].
pub fn scope_stream<S: Stream>(stream: S) -> ScopedStream<S> {
    ScopedStream {
        stream: Box::pin(stream),
        slot: Arc::new(Semaphore::new(1)),
        held: Arc::new(AtomicUsize::new(0)),
    }
}

/// A stream whose polls run in one request's scope.
pub struct ScopedStream<S> {
    stream: Pin<Box<S>>,
    slot: Arc<Semaphore>,
    held: Arc<AtomicUsize>,
}

impl<S: Stream> Stream for ScopedStream<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let (slot, held) = (Arc::clone(&self.slot), Arc::clone(&self.held));
        SLOT.sync_scope(slot, || {
            HELD.sync_scope(held, || self.stream.as_mut().poll_next(cx))
        })
    }
}

/// A checked-out connection that holds its request's slot and counts itself in its field.
pub struct Held<T> {
    inner: T,
    count: Option<Arc<AtomicUsize>>,
    _slot: Option<OwnedSemaphorePermit>,
}

impl<T> Held<T> {
    /// Takes the current request's slot for `inner`, waiting while a sibling field holds it.
    /// `Err` when the current field already holds a connection (in debug builds; release builds
    /// log it and go on without the slot, which that field holds already).
    pub(crate) async fn take(inner: T) -> Result<Self, Error> {
        let count = HELD.try_with(Arc::clone).ok();
        let nested = count
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed) > 0);
        if nested {
            let message = "a second pooled connection was asked for while this request holds one";
            if cfg!(debug_assertions) {
                return Err(Error::Internal(message.into()));
            }
            tracing::warn!("{message}");
        }
        let slot = match SLOT.try_with(Arc::clone).ok() {
            Some(slot) if !nested => Some(
                slot.acquire_owned()
                    .await
                    .map_err(|_| Error::Internal("the request's connection slot closed".into()))?,
            ),
            _ => None,
        };
        if let Some(count) = &count {
            count.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Self {
            inner,
            count,
            _slot: slot,
        })
    }

    /// Moves the count and the slot onto `inner` (taken before waiting for the pool, so that a
    /// nested request for a connection is refused before it waits).
    pub(crate) fn with<U>(mut self, inner: U) -> Held<U> {
        Held {
            inner,
            count: self.count.take(),
            _slot: self._slot.take(),
        }
    }
}

impl<T> Drop for Held<T> {
    fn drop(&mut self) {
        if let Some(count) = &self.count {
            count.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl<T: Deref> Deref for Held<T> {
    type Target = T::Target;

    fn deref(&self) -> &T::Target {
        &self.inner
    }
}

impl<T: DerefMut> DerefMut for Held<T> {
    fn deref_mut(&mut self) -> &mut T::Target {
        &mut self.inner
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_second_connection_in_one_field_is_refused_in_debug_builds() {
        scope(async {
            let first = Held::take(Box::new(1)).await.expect("the first is fine");
            let second = Held::take(Box::new(2)).await;
            assert_eq!(second.is_err(), cfg!(debug_assertions));
            drop(second);
            drop(first);
            let again = Held::take(Box::new(3)).await;
            assert!(
                again.is_ok(),
                "after the first is returned, one may be taken again"
            );
        })
        .await;
    }

    #[tokio::test]
    async fn sibling_fields_take_turns_at_the_one_connection() {
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let field = |name: u32| {
            let (inside, most) = (Arc::clone(&inside), Arc::clone(&most));
            field_scope(async move {
                let held = Held::take(Box::new(name))
                    .await
                    .expect("a field takes its turn");
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                *held
            })
        };
        let all = scope(async { tokio::join!(field(1), field(2), field(3)) }).await;
        assert_eq!(all, (1, 2, 3), "every field got its connection");
        assert_eq!(most.load(Ordering::SeqCst), 1, "never two at once");
    }

    #[tokio::test]
    async fn outside_a_scope_nothing_is_counted() {
        let first = Held::take(Box::new(1)).await;
        let second = Held::take(Box::new(2)).await;
        assert!(first.is_ok() && second.is_ok());
    }

    #[tokio::test]
    async fn scopes_are_separate() {
        let a = scope(async { Held::take(Box::new(1)).await.map(|_| ()) });
        let b = scope(async { Held::take(Box::new(2)).await.map(|_| ()) });
        let (a, b) = tokio::join!(a, b);
        assert!(a.is_ok() && b.is_ok());
    }
}
