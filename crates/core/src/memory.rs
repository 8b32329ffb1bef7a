//! [`MemoryStore`]: the in-memory reference model.
//!
//! Simple enough to be obviously right, it is what model-based tests compare
//! real backends with, and a handy store for tests of front ends. It is not
//! durable.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use event_listener::Event;

use crate::event::{RecordedEvent, StreamInfo};
use crate::idempotency::{Decision, decide};
use crate::ids::{EventId, Position, Revision, StreamKey, StreamType};
use crate::store::{
    AppendOutcome, AppendRequest, DeleteOutcome, Direction, EventStore, FeedFilter, FeedPage,
    STREAM_DELETED, StoreError, StreamCursor, StreamListPage, StreamRead, StreamSlice,
    StreamTypeCount, check_expected, check_truncation,
};
use crate::time::Timestamp;

struct Stream {
    /// Every event appended, by revision - 1 (truncated ones included: the
    /// model only hides them).
    events: Vec<RecordedEvent>,
    ids: HashMap<EventId, Revision>,
    created_at: Option<Timestamp>,
    /// The first revision reads return (raised by truncation).
    first: Revision,
    /// Set once the stream is deleted.
    deleted: bool,
}

impl Default for Stream {
    fn default() -> Self {
        Self {
            events: Vec::new(),
            ids: HashMap::new(),
            created_at: None,
            first: Revision::FIRST,
            deleted: false,
        }
    }
}

/// One place of the global feed.
enum FeedEntry {
    /// An appended event: (stream, revision).
    Event(StreamKey, Revision),
    /// A `$stream-deleted` entry.
    Deleted(RecordedEvent),
}

#[derive(Default)]
struct State {
    streams: HashMap<StreamKey, Stream>,
    /// The feed, by position - 1.
    feed: Vec<FeedEntry>,
    /// Per type: set of (updated_at micros, stream id) for listings.
    by_update: BTreeMap<StreamType, BTreeSet<(Timestamp, crate::ids::StreamId)>>,
    /// Per type: the position of its last event.
    type_heads: HashMap<StreamType, Position>,
    last_time: Option<Timestamp>,
}

/// The in-memory reference model of an event store.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    committed: Event,
    /// Per type with someone waiting on its feed: the event an append of
    /// that type notifies. Entries go away with their last waiter.
    type_waiters: Mutex<HashMap<StreamType, Arc<Event>>>,
}

/// A waiter's share of a [`MemoryStore::type_waiters`] entry; the last one
/// dropped removes the entry, so waiting on many quiet types leaves nothing
/// behind.
struct TypeWaiter<'a> {
    waiters: &'a Mutex<HashMap<StreamType, Arc<Event>>>,
    stream_type: &'a StreamType,
    event: Option<Arc<Event>>,
}

impl<'a> TypeWaiter<'a> {
    fn new(
        waiters: &'a Mutex<HashMap<StreamType, Arc<Event>>>,
        stream_type: &'a StreamType,
    ) -> Self {
        let event = waiters
            .lock()
            .expect("poisoned")
            .entry(stream_type.clone())
            .or_default()
            .clone();
        Self {
            waiters,
            stream_type,
            event: Some(event),
        }
    }

    fn event(&self) -> &Event {
        self.event.as_ref().expect("present until dropped")
    }
}

impl Drop for TypeWaiter<'_> {
    fn drop(&mut self) {
        let mut waiters = self.waiters.lock().expect("poisoned");
        // Released under the lock, so that the count below is exact.
        self.event = None;
        if waiters
            .get(self.stream_type)
            .is_some_and(|e| Arc::strong_count(e) == 1)
        {
            waiters.remove(self.stream_type);
        }
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wakes the feed's waiters and those of `stream_type`'s feed.
    fn wake(&self, stream_type: &StreamType) {
        self.committed.notify(usize::MAX);
        // Notified under the lock: a waiter's entry is only ever counted by
        // its waiters and the map (see `TypeWaiter`).
        if let Some(event) = self.type_waiters.lock().expect("poisoned").get(stream_type) {
            event.notify(usize::MAX);
        }
    }
}

impl State {
    fn info(&self, key: &StreamKey) -> Option<StreamInfo> {
        let s = self.streams.get(key)?;
        let last = s.events.last()?;
        Some(StreamInfo {
            stream_id: key.stream_id.clone(),
            stream_type: key.stream_type.clone(),
            revision: last.revision,
            first_revision: s.first,
            updated_at: last.created_at,
            created_at: s
                .created_at
                .expect("a stream with events has a creation time"),
        })
    }

    /// The live stream `key`: not found, or deleted, are errors.
    fn live(&self, key: &StreamKey) -> Result<&Stream, StoreError> {
        match self.streams.get(key) {
            None => Err(StoreError::StreamNotFound(key.clone())),
            Some(s) if s.deleted => Err(StoreError::StreamDeleted(key.clone())),
            Some(s) => Ok(s),
        }
    }

    /// The feed entry at `index` (position - 1), unless it was deleted or
    /// truncated away.
    fn feed_entry(&self, index: usize) -> Option<&RecordedEvent> {
        match &self.feed[index] {
            FeedEntry::Deleted(e) => Some(e),
            FeedEntry::Event(key, rev) => {
                let s = &self.streams[key];
                (!s.deleted && *rev >= s.first).then(|| &s.events[rev.get() as usize - 1])
            }
        }
    }

    fn notify_type(&mut self, stream_type: &StreamType) {
        let head = Position::new(self.feed.len() as u64);
        self.type_heads.insert(stream_type.clone(), head);
    }

    /// A commit time that never goes backwards, so listings stay ordered.
    fn commit_time(&mut self) -> Timestamp {
        let mut now = Timestamp::now();
        if let Some(last) = self.last_time
            && now <= last
        {
            now = Timestamp::from_micros(last.as_micros() + 1);
        }
        self.last_time = Some(now);
        now
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        let mut st = self.state.lock().expect("poisoned");
        let key = request.stream().clone();
        let ids = request.event_ids();
        let (current, found) = match st.streams.get(&key) {
            Some(s) if s.deleted => return Err(StoreError::StreamDeleted(key)),
            Some(s) => (
                s.events.last().map_or(Revision::ZERO, |e| e.revision),
                ids.iter().map(|id| s.ids.get(id).copied()).collect(),
            ),
            None => (Revision::ZERO, vec![None; ids.len()]),
        };
        match decide(request.expectation(), current, &ids, &found)? {
            Decision::AlreadyAppended { first, last } => {
                let stream = st.info(&key).expect("stream exists");
                let first_position = st.streams[&key].events[first.get() as usize - 1].position;
                Ok(AppendOutcome {
                    stream,
                    first_revision: first,
                    last_revision: last,
                    first_position,
                    already_appended: true,
                })
            }
            Decision::Write => {
                let now = st.commit_time();
                let (_, _, events) = request.into_parts();
                let first_position = Position::new(st.feed.len() as u64 + 1);
                let old_updated = st.info(&key).map(|i| i.updated_at);
                let mut revision = current;
                let mut recorded = Vec::with_capacity(events.len());
                for e in events {
                    revision = revision.next();
                    st.feed.push(FeedEntry::Event(key.clone(), revision));
                    recorded.push(RecordedEvent {
                        stream_id: key.stream_id.clone(),
                        stream_type: key.stream_type.clone(),
                        revision,
                        event_type: e.event_type,
                        payload: e.payload,
                        created_at: now,
                        event_id: e.event_id,
                        metadata: e.metadata,
                        position: Some(Position::new(st.feed.len() as u64)),
                    });
                }
                let stream = st.streams.entry(key.clone()).or_default();
                stream.created_at.get_or_insert(now);
                for e in recorded {
                    stream.ids.insert(e.event_id, e.revision);
                    stream.events.push(e);
                }
                let listing = st.by_update.entry(key.stream_type.clone()).or_default();
                if let Some(old) = old_updated {
                    listing.remove(&(old, key.stream_id.clone()));
                }
                listing.insert((now, key.stream_id.clone()));
                st.notify_type(&key.stream_type);
                let info = st.info(&key).expect("just written");
                drop(st);
                self.wake(&key.stream_type);
                Ok(AppendOutcome {
                    stream: info,
                    first_revision: current.next(),
                    last_revision: revision,
                    first_position: Some(first_position),
                    already_appended: false,
                })
            }
        }
    }

    async fn stream_info(&self, stream: &StreamKey) -> Result<Option<StreamInfo>, StoreError> {
        let st = self.state.lock().expect("poisoned");
        if st.streams.get(stream).is_some_and(|s| s.deleted) {
            return Err(StoreError::StreamDeleted(stream.clone()));
        }
        Ok(st.info(stream))
    }

    async fn read_stream(
        &self,
        stream: &StreamKey,
        read: StreamRead,
    ) -> Result<StreamSlice, StoreError> {
        let st = self.state.lock().expect("poisoned");
        let s = st.live(stream)?;
        let total = s.events.len() as u64;
        let limit = read.limit as u64;
        // Revisions below `kept_from` were truncated away.
        let kept_from = s.first.get() - 1;
        match read.direction {
            Direction::Forward => {
                let after = read.from.unwrap_or(Revision::ZERO).get();
                let start = after.max(kept_from).min(total);
                let end = (start + limit).min(total);
                let events = s.events[start as usize..end as usize].to_vec();
                Ok(StreamSlice {
                    last_evaluated_revision: events
                        .last()
                        .map_or(Revision::new(after), |e| e.revision),
                    has_more: end < total,
                    events,
                })
            }
            Direction::Backward => {
                let before = read.from.map_or(total + 1, |r| r.get());
                let end = before.saturating_sub(1).min(total); // last revision to include
                let start = end.saturating_sub(limit).max(kept_from); // exclusive lower bound
                let end = end.max(start);
                let mut events = s.events[start as usize..end as usize].to_vec();
                events.reverse();
                Ok(StreamSlice {
                    last_evaluated_revision: events
                        .last()
                        .map_or(Revision::new(before), |e| e.revision),
                    has_more: start > kept_from,
                    events,
                })
            }
        }
    }

    async fn list_streams(
        &self,
        stream_type: &StreamType,
        updated_after: Option<Timestamp>,
        cursor: Option<StreamCursor>,
        limit: usize,
    ) -> Result<StreamListPage, StoreError> {
        let st = self.state.lock().expect("poisoned");
        let Some(listing) = st.by_update.get(stream_type) else {
            return Ok(StreamListPage {
                streams: vec![],
                next: None,
            });
        };
        let mut streams = Vec::new();
        let mut more = false;
        for (updated, id) in listing.iter() {
            if updated_after.is_some_and(|t| *updated <= t) {
                continue;
            }
            if let Some(c) = &cursor
                && (*updated, id) <= (c.updated_at, &c.stream_id)
            {
                continue;
            }
            if streams.len() == limit {
                more = true;
                break;
            }
            let key = StreamKey::new(stream_type.clone(), id.clone());
            streams.push(st.info(&key).expect("listed stream exists"));
        }
        let next = if more {
            streams.last().map(|s| StreamCursor {
                updated_at: s.updated_at,
                stream_id: s.stream_id.clone(),
            })
        } else {
            None
        };
        Ok(StreamListPage { streams, next })
    }

    async fn stream_types(&self) -> Result<Vec<StreamTypeCount>, StoreError> {
        let st = self.state.lock().expect("poisoned");
        Ok(st
            .by_update
            .iter()
            .map(|(t, set)| StreamTypeCount {
                stream_type: t.clone(),
                streams: set.len() as u64,
            })
            .collect())
    }

    async fn read_feed(
        &self,
        filter: &FeedFilter,
        after: Position,
        limit: usize,
    ) -> Result<FeedPage, StoreError> {
        let st = self.state.lock().expect("poisoned");
        let mut events = Vec::new();
        let mut has_more = false;
        for index in (after.get() as usize).min(st.feed.len())..st.feed.len() {
            let Some(event) = st.feed_entry(index) else {
                continue;
            };
            if let FeedFilter::StreamType(t) = filter
                && &event.stream_type != t
            {
                continue;
            }
            if events.len() == limit {
                has_more = true;
                break;
            }
            events.push(event.clone());
        }
        let last_position = events
            .last()
            .and_then(|e: &RecordedEvent| e.position)
            .unwrap_or(after);
        Ok(FeedPage {
            events,
            has_more,
            last_position,
        })
    }

    async fn delete_stream(
        &self,
        stream: &StreamKey,
        expected: Option<Revision>,
    ) -> Result<DeleteOutcome, StoreError> {
        let mut st = self.state.lock().expect("poisoned");
        let s = st
            .streams
            .get(stream)
            .ok_or_else(|| StoreError::StreamNotFound(stream.clone()))?;
        let last = s.events.last().map_or(Revision::ZERO, |e| e.revision);
        if s.deleted {
            return Ok(DeleteOutcome {
                last_revision: last,
                position: None,
                already_deleted: true,
            });
        }
        check_expected(expected, last)?;
        let now = st.commit_time();
        let updated = st.info(stream).map(|i| i.updated_at);
        let position = Position::new(st.feed.len() as u64 + 1);
        let entry = RecordedEvent {
            stream_id: stream.stream_id.clone(),
            stream_type: stream.stream_type.clone(),
            revision: last.next(),
            event_type: crate::ids::EventType::parse(STREAM_DELETED).expect("a valid type"),
            payload: crate::json::JsonValue::from_text("{}").expect("valid JSON"),
            created_at: now,
            event_id: EventId::generate(),
            metadata: crate::json::JsonObject::empty(),
            position: Some(position),
        };
        st.feed.push(FeedEntry::Deleted(entry));
        st.streams.get_mut(stream).expect("found above").deleted = true;
        if let Some(updated) = updated {
            let listing = st.by_update.entry(stream.stream_type.clone()).or_default();
            listing.remove(&(updated, stream.stream_id.clone()));
            if listing.is_empty() {
                st.by_update.remove(&stream.stream_type);
            }
        }
        st.notify_type(&stream.stream_type);
        drop(st);
        self.wake(&stream.stream_type);
        Ok(DeleteOutcome {
            last_revision: last,
            position: Some(position),
            already_deleted: false,
        })
    }

    async fn truncate_stream(
        &self,
        stream: &StreamKey,
        before: Revision,
        expected: Option<Revision>,
    ) -> Result<StreamInfo, StoreError> {
        let mut st = self.state.lock().expect("poisoned");
        let s = st.live(stream)?;
        let last = s.events.last().map_or(Revision::ZERO, |e| e.revision);
        check_expected(expected, last)?;
        check_truncation(before, last)?;
        let s = st.streams.get_mut(stream).expect("live above");
        s.first = s.first.max(before);
        Ok(st.info(stream).expect("a live stream has events"))
    }

    async fn wait_for_feed(&self, after: Position) -> Result<(), StoreError> {
        loop {
            let listener = self.committed.listen();
            if self.state.lock().expect("poisoned").feed.len() as u64 > after.get() {
                return Ok(());
            }
            listener.await;
        }
    }

    /// Wakes only when `stream_type` itself moves past `after`: appends of
    /// other types notify other waiters.
    async fn wait_for_type_feed(
        &self,
        stream_type: &StreamType,
        after: Position,
    ) -> Result<(), StoreError> {
        let waiter = TypeWaiter::new(&self.type_waiters, stream_type);
        loop {
            let listener = waiter.event().listen();
            let head = self
                .state
                .lock()
                .expect("poisoned")
                .type_heads
                .get(stream_type)
                .copied();
            if head.is_some_and(|p| p > after) {
                return Ok(());
            }
            listener.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::event::NewEvent;
    use crate::ids::{EventType, StreamId};
    use crate::json::JsonValue;

    fn append(store: &MemoryStore, stream_type: &str) -> Position {
        let key = StreamKey::new(
            StreamType::parse(stream_type).unwrap(),
            StreamId::parse("s1").unwrap(),
        );
        let event = NewEvent::new(
            EventType::parse("tick").unwrap(),
            JsonValue::from_text("{}").unwrap(),
        );
        let request = AppendRequest::new(key, crate::Expectation::Any, vec![event]).unwrap();
        futures::executor::block_on(store.append(request))
            .unwrap()
            .first_position
            .unwrap()
    }

    #[test]
    fn a_type_waiter_sleeps_through_other_types_and_wakes_on_its_own() {
        let store = Arc::new(MemoryStore::new());
        let quiet = StreamType::parse("quiet").unwrap();
        append(&store, "quiet");
        let after = append(&store, "quiet");
        let waiter = {
            let store = store.clone();
            let quiet = quiet.clone();
            std::thread::spawn(move || {
                futures::executor::block_on(store.wait_for_type_feed(&quiet, after)).unwrap();
            })
        };
        for _ in 0..50 {
            append(&store, "busy");
        }
        std::thread::sleep(Duration::from_millis(200));
        assert!(!waiter.is_finished(), "woken by another type's appends");
        assert_eq!(store.type_waiters.lock().unwrap().len(), 1);
        append(&store, "quiet");
        waiter.join().unwrap();
        assert!(
            store.type_waiters.lock().unwrap().is_empty(),
            "the last waiter removes its entry"
        );
        // Already past: resolves at once, for a type that never had events
        // it would wait.
        futures::executor::block_on(store.wait_for_type_feed(&quiet, Position::ZERO)).unwrap();
        assert!(store.type_waiters.lock().unwrap().is_empty());
    }
}
