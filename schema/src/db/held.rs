//! One pooled connection per request at a time, checked.
//!
//! A request that holds a connection while it waits for a second one can deadlock the pool: with
//! N connections, N such requests each hold one and wait forever (until the acquire timeout) for
//! another. That is how the first release collapsed at 32 concurrent calls (DESIGN §9). So every
//! request runs in a [`scope`] that counts the connections it holds; asking for a second one while
//! one is held is an error in debug builds (so the test suite fails loudly on any such path) and a
//! logged warning in release builds. Work outside a scope (background jobs) is not counted.

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use futures_util::Stream;

use crate::Error;

tokio::task_local! {
    static HELD: Arc<AtomicUsize>;
}

/// Runs `work` as one request: the connections it holds at once are counted.
pub async fn scope<F: Future>(work: F) -> F::Output {
    HELD.scope(Arc::new(AtomicUsize::new(0)), work).await
}

/// A stream polled as one request (a subscription): see [`scope`].
pub fn scope_stream<S: Stream>(stream: S) -> ScopedStream<S> {
    ScopedStream {
        stream: Box::pin(stream),
        held: Arc::new(AtomicUsize::new(0)),
    }
}

/// A stream whose polls run in one request's scope.
pub struct ScopedStream<S> {
    stream: Pin<Box<S>>,
    held: Arc<AtomicUsize>,
}

impl<S: Stream> Stream for ScopedStream<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let held = Arc::clone(&self.held);
        HELD.sync_scope(held, || self.stream.as_mut().poll_next(cx))
    }
}

/// A checked-out connection that counts itself in the scope it was taken in.
pub struct Held<T> {
    inner: T,
    count: Option<Arc<AtomicUsize>>,
}

impl<T> Held<T> {
    /// Counts `inner` in the current scope, if any. `Err` when the scope already holds one (in
    /// debug builds; release builds log it and go on).
    pub(crate) fn take(inner: T) -> Result<Self, Error> {
        let count = HELD.try_with(Arc::clone).ok();
        if let Some(count) = &count {
            if count.load(Ordering::Relaxed) > 0 {
                let message =
                    "a second pooled connection was asked for while this request holds one";
                if cfg!(debug_assertions) {
                    return Err(Error::Internal(message.into()));
                }
                tracing::warn!("{message}");
            }
            count.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Self { inner, count })
    }

    /// Moves the count onto `inner` (taken before waiting for the pool, so that a second request
    /// for a connection is refused before it waits).
    pub(crate) fn with<U>(mut self, inner: U) -> Held<U> {
        Held {
            inner,
            count: self.count.take(),
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
    use super::*;

    #[tokio::test]
    async fn a_second_connection_in_one_scope_is_refused_in_debug_builds() {
        scope(async {
            let first = Held::take(Box::new(1)).expect("the first is fine");
            let second = Held::take(Box::new(2));
            assert_eq!(second.is_err(), cfg!(debug_assertions));
            drop(second);
            drop(first);
            let again = Held::take(Box::new(3));
            assert!(
                again.is_ok(),
                "after the first is returned, one may be taken again"
            );
        })
        .await;
    }

    #[tokio::test]
    async fn outside_a_scope_nothing_is_counted() {
        let first = Held::take(Box::new(1));
        let second = Held::take(Box::new(2));
        assert!(first.is_ok() && second.is_ok());
    }

    #[tokio::test]
    async fn scopes_are_separate() {
        let a = scope(async { Held::take(Box::new(1)).map(|_| ()) });
        let b = scope(async { Held::take(Box::new(2)).map(|_| ()) });
        let (a, b) = tokio::join!(a, b);
        assert!(a.is_ok() && b.is_ok());
    }
}
