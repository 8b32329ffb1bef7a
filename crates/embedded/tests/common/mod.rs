//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;

use async_trait::async_trait;
use eventstore_core::{
    AppendOutcome, AppendRequest, EventStore, EventType, Expectation, FeedFilter, FeedPage,
    JsonValue, NewEvent, Position, RecordedEvent, Revision, StoreError, StreamCursor, StreamId,
    StreamInfo, StreamKey, StreamListPage, StreamRead, StreamSlice, StreamType, StreamTypeCount,
    Timestamp,
};
use eventstore_embedded::EmbeddedStore;
use tempfile::TempDir;

/// A store in a temporary directory that lives as long as the store.
pub struct TempStore {
    pub store: EmbeddedStore,
    pub dir: TempDir,
}

impl TempStore {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open(dir.path()).expect("open");
        Self { store, dir }
    }

    /// Closes the store and opens the same directory again.
    pub async fn reopen(self) -> Self {
        self.store.close().await;
        drop(self.store);
        let store = EmbeddedStore::open(self.dir.path()).expect("reopen");
        Self {
            store,
            dir: self.dir,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

#[async_trait]
impl EventStore for TempStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        self.store.append(request).await
    }
    async fn stream_info(&self, stream: &StreamKey) -> Result<Option<StreamInfo>, StoreError> {
        self.store.stream_info(stream).await
    }
    async fn read_stream(
        &self,
        stream: &StreamKey,
        read: StreamRead,
    ) -> Result<StreamSlice, StoreError> {
        self.store.read_stream(stream, read).await
    }
    async fn list_streams(
        &self,
        stream_type: &StreamType,
        updated_after: Option<Timestamp>,
        cursor: Option<StreamCursor>,
        limit: usize,
    ) -> Result<StreamListPage, StoreError> {
        self.store
            .list_streams(stream_type, updated_after, cursor, limit)
            .await
    }
    async fn stream_types(&self) -> Result<Vec<StreamTypeCount>, StoreError> {
        self.store.stream_types().await
    }
    async fn read_feed(
        &self,
        filter: &FeedFilter,
        after: Position,
        limit: usize,
    ) -> Result<FeedPage, StoreError> {
        self.store.read_feed(filter, after, limit).await
    }
    async fn wait_for_feed(&self, after: Position) -> Result<(), StoreError> {
        self.store.wait_for_feed(after).await
    }
}

pub fn key(t: &str, id: &str) -> StreamKey {
    StreamKey::new(StreamType::parse(t).unwrap(), StreamId::parse(id).unwrap())
}

pub fn event(i: usize) -> NewEvent {
    NewEvent::new(
        EventType::parse("happened").unwrap(),
        JsonValue::from_text(format!(r#"{{"i":{i},"pad":"{}"}}"#, "x".repeat(i % 50))).unwrap(),
    )
}

pub fn events(n: usize) -> Vec<NewEvent> {
    (0..n).map(event).collect()
}

pub async fn append(
    store: &dyn EventStore,
    key: &StreamKey,
    expectation: Expectation,
    events: Vec<NewEvent>,
) -> Result<AppendOutcome, StoreError> {
    store
        .append(AppendRequest::new(key.clone(), expectation, events).unwrap())
        .await
}

pub async fn read_all(store: &dyn EventStore, key: &StreamKey) -> Vec<RecordedEvent> {
    let mut out = Vec::new();
    let mut after = Revision::ZERO;
    loop {
        let page = store
            .read_stream(key, StreamRead::forward_after(after, 1000))
            .await
            .expect("read_stream");
        out.extend(page.events);
        after = page.last_evaluated_revision;
        if !page.has_more {
            return out;
        }
    }
}

pub async fn read_feed_all(store: &dyn EventStore, filter: &FeedFilter) -> Vec<RecordedEvent> {
    let mut out = Vec::new();
    let mut after = Position::ZERO;
    loop {
        let page = store
            .read_feed(filter, after, 1000)
            .await
            .expect("read_feed");
        out.extend(page.events);
        after = page.last_position;
        if !page.has_more {
            return out;
        }
    }
}

pub async fn list_all(store: &dyn EventStore, t: &StreamType) -> Vec<StreamInfo> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list_streams(t, None, cursor, 7).await.expect("list");
        out.extend(page.streams);
        cursor = page.next;
        if cursor.is_none() {
            return out;
        }
    }
}
