//! The carrier callbacks being answered right now. Placing waits while more than
//! [`MAX_CALLBACK_BACKLOG`] are: every call placed brings several callbacks, and a process that
//! places faster than it records their results only lets the backlog (open connections, waiting
//! requests, memory) grow until callbacks time out.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

use crate::bounds::MAX_CALLBACK_BACKLOG;

#[derive(Debug, Default)]
pub struct Backlog {
    serving: AtomicUsize,
    /// Woken when the count falls back to the bound.
    eased: Notify,
}

/// One callback being answered; it leaves the backlog when dropped.
#[derive(Debug)]
pub struct Serving(Arc<Backlog>);

impl Backlog {
    pub fn enter(self: &Arc<Self>) -> Serving {
        self.serving.fetch_add(1, Ordering::AcqRel);
        Serving(self.clone())
    }

    /// Callbacks being answered now.
    pub fn len(&self) -> usize {
        self.serving.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns once at most [`MAX_CALLBACK_BACKLOG`] callbacks are being answered.
    pub async fn eased(&self) {
        loop {
            let eased = self.eased.notified();
            tokio::pin!(eased);
            eased.as_mut().enable();
            if self.len() <= MAX_CALLBACK_BACKLOG {
                return;
            }
            eased.await;
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let before = self.0.serving.fetch_sub(1, Ordering::AcqRel);
        if before == MAX_CALLBACK_BACKLOG + 1 {
            self.0.eased.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A waiter above the bound is woken by the callback that brings the count back to it.
    #[tokio::test]
    async fn placing_waits_until_the_backlog_falls_to_the_bound() {
        let backlog = Arc::new(Backlog::default());
        let mut serving: Vec<Serving> = (0..=MAX_CALLBACK_BACKLOG)
            .map(|_| backlog.enter())
            .collect();
        assert_eq!(backlog.len(), MAX_CALLBACK_BACKLOG + 1);
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let waiter = {
            let backlog = backlog.clone();
            tokio::spawn(async move {
                backlog.eased().await;
                tx.send(backlog.len()).expect("send");
            })
        };
        tokio::task::yield_now().await;
        assert!(rx.try_recv().is_err(), "still above the bound");
        serving.pop();
        assert_eq!(rx.await.expect("woken"), MAX_CALLBACK_BACKLOG);
        waiter.await.expect("waiter");
        drop(serving);
        assert!(backlog.is_empty());
    }
}
