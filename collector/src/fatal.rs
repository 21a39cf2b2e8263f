//! A store that cannot write or flush is not served around: the first such failure is
//! reported here, and `sixmap-collector serve` exits non-zero on it so that its supervisor
//! (systemd's `Restart=on-failure`) starts it anew on a store that works, instead of leaving
//! probes without acks and the API answering from a broken store (issue #19: sled's flusher
//! stuck on "Too many open files", a full disk).

use std::sync::Arc;
use tokio::sync::watch;

/// Shared; cheap to clone.
#[derive(Debug, Clone)]
pub struct Fatal {
    tx: Arc<watch::Sender<Option<String>>>,
}

impl Default for Fatal {
    fn default() -> Self {
        Self {
            tx: Arc::new(watch::channel(None).0),
        }
    }
}

impl Fatal {
    /// Records the failure (the first one counts) and wakes whoever waits in [`Fatal::wait`].
    pub fn trigger(&self, reason: impl Into<String>) {
        let reason = reason.into();
        tracing::error!(%reason, "the store failed: the collector stops so that it is restarted");
        self.tx.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(reason);
            true
        });
    }

    /// The failure, once there is one.
    pub fn reason(&self) -> Option<String> {
        self.tx.borrow().clone()
    }

    /// Returns the failure's reason once one was reported.
    pub async fn wait(&self) -> String {
        let mut rx = self.tx.subscribe();
        loop {
            if let Some(reason) = rx.borrow_and_update().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                // The sender lives in `self`: not reached.
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_failure_wakes_the_waiter() {
        let fatal = Fatal::default();
        let waiter = tokio::spawn({
            let fatal = fatal.clone();
            async move { fatal.wait().await }
        });
        assert!(fatal.reason().is_none());
        fatal.trigger("disk full");
        fatal.trigger("second");
        assert_eq!(waiter.await.unwrap(), "disk full");
        assert_eq!(fatal.wait().await, "disk full");
    }
}
