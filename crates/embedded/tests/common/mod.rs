//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;

use eventstore_core::{
    AppendOutcome, AppendRequest, EventStore, EventType, Expectation, FeedFilter, JsonValue,
    NewEvent, Position, RecordedEvent, Revision, StoreError, StreamId, StreamInfo, StreamKey,
    StreamRead, StreamType,
};
use eventstore_embedded::EmbeddedStore;
use eventstore_embedded::vfs::{Op, PowerCut, SimFs};
use tempfile::TempDir;

/// The process dies; then the power is cut in one of three ways, or not,
/// chosen by `n` (the case's number), so that a sweep meets all four.
pub fn die_and_cut(fs: &SimFs, n: u64) {
    fs.kill();
    match n % 4 {
        0 => fs.heal(),
        1 => fs.power_cut(PowerCut::DropUnsynced),
        2 => fs.power_cut(PowerCut::TornPrefix),
        _ => fs.power_cut(PowerCut::TornSectors),
    }
}

/// Every kind of call that writes, for the tests that fail or die at each
/// call of a scenario (reads aside: they are many).
pub const WRITING_OPS: [Op; 7] = [
    Op::Write,
    Op::Sync,
    Op::SyncDir,
    Op::Rename,
    Op::Create,
    Op::SetLen,
    Op::Remove,
];

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

    /// A store whose index is checkpointed every `events` events.
    pub fn checkpointed(events: u64) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = EmbeddedStore::open_with(
            dir.path(),
            eventstore_embedded::EmbeddedOptions {
                checkpoint_events: events,
                ..eventstore_embedded::EmbeddedOptions::default()
            },
        )
        .expect("open");
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

/// The store itself: a `TempStore` is used wherever its store is.
impl std::ops::Deref for TempStore {
    type Target = EmbeddedStore;
    fn deref(&self) -> &EmbeddedStore {
        &self.store
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
    store: &EmbeddedStore,
    key: &StreamKey,
    expectation: Expectation,
    events: Vec<NewEvent>,
) -> Result<AppendOutcome, StoreError> {
    store
        .append(AppendRequest::new(key.clone(), expectation, events).unwrap())
        .await
}

pub async fn read_all(store: &EmbeddedStore, key: &StreamKey) -> Vec<RecordedEvent> {
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

pub async fn read_feed_all(store: &EmbeddedStore, filter: &FeedFilter) -> Vec<RecordedEvent> {
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

pub async fn list_all(store: &EmbeddedStore, t: &StreamType) -> Vec<StreamInfo> {
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
