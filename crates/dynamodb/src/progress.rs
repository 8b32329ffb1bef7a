//! [`RelayProgress`]: what a relay running in this process has indexed,
//! shared with the store (read your own writes in listings, feed waits
//! that wake when the relay publishes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventstore_core::{StreamKey, StreamType};
use tokio::sync::Notify;

use crate::items::FeedEntry;

#[derive(Default)]
struct ProgressState {
    committed: HashMap<StreamKey, u64>,
    relayed: HashMap<StreamKey, u64>,
    position: u64,
    type_positions: HashMap<StreamType, u64>,
}

/// What a relay running in this process has indexed, shared with the
/// store so that listings can wait for this process's own appends.
#[derive(Default)]
pub struct RelayProgress {
    state: Mutex<ProgressState>,
    notify: Notify,
}

impl RelayProgress {
    /// Fresh progress.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Records an append this process committed.
    pub fn committed(&self, stream: &StreamKey, revision: u64) {
        let mut st = self.state.lock().expect("poisoned");
        let r = st.committed.entry(stream.clone()).or_default();
        *r = (*r).max(revision);
    }

    pub(crate) fn relayed(&self, entries: &[FeedEntry]) {
        let mut st = self.state.lock().expect("poisoned");
        for e in entries {
            let r = st.relayed.entry(e.stream.clone()).or_default();
            *r = (*r).max(e.first_revision + e.count - 1);
            st.position = st.position.max(e.position + e.count - 1);
            let t = st
                .type_positions
                .entry(e.stream.stream_type.clone())
                .or_default();
            *t = (*t).max(e.position + e.count - 1);
        }
        drop(st);
        self.notify.notify_waiters();
    }

    fn indexed(&self, stream_type: Option<&StreamType>) -> bool {
        let st = self.state.lock().expect("poisoned");
        st.committed.iter().all(|(k, r)| {
            stream_type.is_some_and(|t| &k.stream_type != t)
                || st.relayed.get(k).is_some_and(|x| x >= r)
        })
    }

    /// Waits (at most `timeout`) until every append this process committed
    /// (of `stream_type`, or of every type) is indexed.
    pub async fn wait_indexed(&self, stream_type: Option<&StreamType>, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.indexed(stream_type) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }

    /// Waits (at most `timeout`) until a position of `stream_type` past
    /// `after` is relayed.
    pub async fn wait_type_position(
        &self,
        stream_type: &StreamType,
        after: u64,
        timeout: Duration,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let reached = self
                .state
                .lock()
                .expect("poisoned")
                .type_positions
                .get(stream_type)
                .is_some_and(|p| *p > after);
            if reached || tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }

    /// Waits (at most `timeout`) until a position past `after` is relayed.
    pub async fn wait_position(&self, after: u64, timeout: Duration) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.state.lock().expect("poisoned").position > after {
            return;
        }
        let _ = tokio::time::timeout(timeout, notified).await;
    }
}
