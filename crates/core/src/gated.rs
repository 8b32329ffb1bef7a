//! [`GatedStore`]: a store a server can answer with before the real one
//! exists, and whose readiness an outside probe can also withhold.
//!
//! A server binds its port first and opens its store afterwards, which can
//! take a while (a log to replay, a table to find). Until the store is
//! [installed](GatedStore::install), every call answers
//! [`StoreError::Unavailable`] (503) and [`readiness`](EventStore::readiness)
//! says the store is opening. Once installed, every call is handed to the
//! store unchanged. A probe (for instance one that watches a DynamoDB table)
//! can add its own verdict with [`GatedStore::set_not_ready`].

use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;

use crate::store::{
    AppendOutcome, AppendRequest, DeleteOutcome, EventStore, FeedFilter, FeedPage, StoreError,
    StreamCursor, StreamListPage, StreamRead, StreamSlice, StreamTypeCount,
};
use crate::{Position, Revision, StreamInfo, StreamKey, StreamType, Timestamp};

/// A store that answers 503 until the real one is installed.
///
/// ```
/// use std::sync::Arc;
/// use eventstore_core::{EventStore, GatedStore, MemoryStore};
///
/// let gated = GatedStore::new("opening the data directory");
/// assert_eq!(
///     gated.readiness(),
///     Err("opening the data directory".to_owned())
/// );
/// gated.install(Arc::new(MemoryStore::new()));
/// assert_eq!(gated.readiness(), Ok(()));
/// gated.set_not_ready(Some("table t does not exist".to_owned()));
/// assert!(gated.readiness().is_err());
/// ```
pub struct GatedStore {
    /// What readiness and every call say until the store is installed.
    opening: String,
    inner: OnceLock<Arc<dyn EventStore>>,
    /// An outside verdict: why the store cannot take writes, or `None`.
    not_ready: Mutex<Option<String>>,
}

impl GatedStore {
    /// A gate with no store behind it yet; `opening` says why (it is what
    /// readiness and the 503 answers report).
    pub fn new(opening: impl Into<String>) -> Self {
        Self {
            opening: opening.into(),
            inner: OnceLock::new(),
            not_ready: Mutex::new(None),
        }
    }

    /// Puts the store behind the gate; from now on every call reaches it.
    /// A second call is ignored (the first store stays).
    pub fn install(&self, store: Arc<dyn EventStore>) {
        let _ = self.inner.set(store);
    }

    /// Whether a store has been installed.
    pub fn is_open(&self) -> bool {
        self.inner.get().is_some()
    }

    /// Records an outside verdict: `Some(reason)` makes readiness fail with
    /// that reason (calls still reach the store), `None` clears it. Returns
    /// the previous verdict.
    pub fn set_not_ready(&self, reason: Option<String>) -> Option<String> {
        let mut v = self.not_ready.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut *v, reason)
    }

    fn store(&self) -> Result<&Arc<dyn EventStore>, StoreError> {
        self.inner
            .get()
            .ok_or_else(|| StoreError::Unavailable(self.opening.clone()))
    }
}

#[async_trait]
impl EventStore for GatedStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        self.store()?.append(request).await
    }

    async fn stream_info(&self, stream: &StreamKey) -> Result<Option<StreamInfo>, StoreError> {
        self.store()?.stream_info(stream).await
    }

    async fn read_stream(
        &self,
        stream: &StreamKey,
        read: StreamRead,
    ) -> Result<StreamSlice, StoreError> {
        self.store()?.read_stream(stream, read).await
    }

    async fn list_streams(
        &self,
        stream_type: &StreamType,
        updated_after: Option<Timestamp>,
        cursor: Option<StreamCursor>,
        limit: usize,
    ) -> Result<StreamListPage, StoreError> {
        self.store()?
            .list_streams(stream_type, updated_after, cursor, limit)
            .await
    }

    async fn stream_types(&self) -> Result<Vec<StreamTypeCount>, StoreError> {
        self.store()?.stream_types().await
    }

    async fn read_feed(
        &self,
        filter: &FeedFilter,
        after: Position,
        limit: usize,
    ) -> Result<FeedPage, StoreError> {
        self.store()?.read_feed(filter, after, limit).await
    }

    async fn wait_for_feed(&self, after: Position) -> Result<(), StoreError> {
        self.store()?.wait_for_feed(after).await
    }

    async fn wait_for_type_feed(
        &self,
        stream_type: &StreamType,
        after: Position,
    ) -> Result<(), StoreError> {
        self.store()?.wait_for_type_feed(stream_type, after).await
    }

    async fn delete_stream(
        &self,
        stream: &StreamKey,
        expected: Option<Revision>,
    ) -> Result<DeleteOutcome, StoreError> {
        self.store()?.delete_stream(stream, expected).await
    }

    async fn truncate_stream(
        &self,
        stream: &StreamKey,
        before: Revision,
        expected: Option<Revision>,
    ) -> Result<StreamInfo, StoreError> {
        self.store()?
            .truncate_stream(stream, before, expected)
            .await
    }

    fn readiness(&self) -> Result<(), String> {
        let store = self.inner.get().ok_or_else(|| self.opening.clone())?;
        if let Some(reason) = self
            .not_ready
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Err(reason);
        }
        store.readiness()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventType, Expectation, MemoryStore, NewEvent, StreamId};

    fn request() -> AppendRequest {
        let stream = StreamKey::new(
            StreamType::parse("order").unwrap(),
            StreamId::parse("o-1").unwrap(),
        );
        let event = NewEvent::new(
            EventType::parse("Placed").unwrap(),
            crate::JsonValue::from_text("{}").unwrap(),
        );
        AppendRequest::new(stream, Expectation::Any, vec![event]).unwrap()
    }

    #[tokio::test]
    async fn unavailable_until_installed_then_every_call_reaches_the_store() {
        let gated = GatedStore::new("opening /data");
        let err = gated.append(request()).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Unavailable(m) if m == "opening /data"),
            "{err:?}"
        );
        assert!(matches!(
            gated.wait_for_feed(Position::ZERO).await,
            Err(StoreError::Unavailable(_))
        ));
        assert_eq!(gated.readiness(), Err("opening /data".to_owned()));
        assert!(!gated.is_open());

        gated.install(Arc::new(MemoryStore::new()));
        assert!(gated.is_open());
        assert_eq!(gated.readiness(), Ok(()));
        gated.append(request()).await.unwrap();
        assert_eq!(gated.stream_types().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn an_outside_verdict_withholds_readiness_but_not_calls() {
        let gated = GatedStore::new("opening");
        gated.install(Arc::new(MemoryStore::new()));
        assert_eq!(gated.set_not_ready(Some("table gone".into())), None);
        assert_eq!(gated.readiness(), Err("table gone".to_owned()));
        gated.append(request()).await.unwrap();
        assert_eq!(gated.set_not_ready(None), Some("table gone".to_owned()));
        assert_eq!(gated.readiness(), Ok(()));
    }
}
