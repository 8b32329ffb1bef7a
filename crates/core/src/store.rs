//! The storage contract: the [`EventStore`] trait, its requests and answers,
//! and the backend-neutral [`StoreError`].

use std::collections::HashSet;

use async_trait::async_trait;

use crate::event::{NewEvent, RecordedEvent, StreamInfo};
use crate::expectation::{Expectation, ExpectationFailed};
use crate::ids::{EventId, Position, Revision, StreamId, StreamKey, StreamType};
use crate::time::Timestamp;

/// The limits of the API, enforced the same way by every backend.
#[derive(Debug, Clone, Copy)]
pub struct Limits;

impl Limits {
    /// Most events in one append.
    pub const MAX_EVENTS_PER_APPEND: usize = 100;
    /// Most bytes of payload plus metadata JSON in one event.
    pub const MAX_EVENT_DATA_BYTES: usize = 256 * 1024;
    /// Most bytes in one request body.
    pub const MAX_BODY_BYTES: usize = 1024 * 1024;
    /// Most items one read may ask for.
    pub const MAX_READ_LIMIT: usize = 1000;
    /// Items per read when the client does not say.
    pub const DEFAULT_READ_LIMIT: usize = 100;
}

/// Errors of every backend, in terms a front end can map to answers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The append's expectation did not hold (409 `wrong-expected-revision`).
    #[error(transparent)]
    WrongExpectedRevision(#[from] ExpectationFailed),
    /// An event id of the append is already in the stream in another
    /// arrangement than a retry of this append (409 `duplicate-event`).
    #[error("event {event_id} is already in the stream")]
    DuplicateEvent {
        /// The first offending id.
        event_id: EventId,
    },
    /// The stream does not exist (404 `not-found`).
    #[error("stream {0} not found")]
    StreamNotFound(StreamKey),
    /// The stream was deleted; its id is never used again (410
    /// `stream-deleted`).
    #[error("stream {0} was deleted")]
    StreamDeleted(StreamKey),
    /// The request is malformed (400 `bad-request`).
    #[error("{0}")]
    InvalidRequest(String),
    /// The request exceeds a limit (413 `payload-too-large`).
    #[error("{0}")]
    TooLarge(String),
    /// The store is shutting down or otherwise not accepting work (503).
    #[error("the store is not available: {0}")]
    Unavailable(String),
    /// The store is healthy but has more work queued than it takes: the
    /// client should retry after a short pause (503 with `Retry-After`).
    #[error("the store is overloaded: {0}")]
    Overloaded(String),
    /// A backend failure; the detail is for the log, not for clients (500).
    #[error("storage backend failure: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Wraps any backend error.
    pub fn backend(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Backend(Box::new(err))
    }
}

/// A validated append: 1–100 events with distinct ids, each within the
/// size limit, to one stream, under one expectation.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    stream: StreamKey,
    expectation: Expectation,
    events: Vec<NewEvent>,
}

impl AppendRequest {
    /// Checks the limits and the distinctness of event ids.
    pub fn new(
        stream: StreamKey,
        expectation: Expectation,
        events: Vec<NewEvent>,
    ) -> Result<Self, StoreError> {
        if events.is_empty() {
            return Err(StoreError::InvalidRequest(
                "an append needs at least one event".into(),
            ));
        }
        if events.len() > Limits::MAX_EVENTS_PER_APPEND {
            return Err(StoreError::TooLarge(format!(
                "{} events in one append; at most {} are allowed",
                events.len(),
                Limits::MAX_EVENTS_PER_APPEND
            )));
        }
        let mut seen = HashSet::with_capacity(events.len());
        for e in &events {
            if e.data_len() > Limits::MAX_EVENT_DATA_BYTES {
                return Err(StoreError::TooLarge(format!(
                    "event {} has {} bytes of payload and metadata; at most {} are allowed",
                    e.event_id,
                    e.data_len(),
                    Limits::MAX_EVENT_DATA_BYTES
                )));
            }
            if !seen.insert(e.event_id) {
                return Err(StoreError::InvalidRequest(format!(
                    "event id {} appears twice in one append",
                    e.event_id
                )));
            }
        }
        Ok(Self {
            stream,
            expectation,
            events,
        })
    }

    /// A new stream with a server-made id (UUIDv7) and one initial event.
    pub fn create_stream(stream_type: StreamType, event: NewEvent) -> Result<Self, StoreError> {
        Self::new(
            StreamKey::new(stream_type, StreamId::generate()),
            Expectation::NoStream,
            vec![event],
        )
    }

    /// The target stream.
    pub fn stream(&self) -> &StreamKey {
        &self.stream
    }

    /// The expectation.
    pub fn expectation(&self) -> Expectation {
        self.expectation
    }

    /// The events, in order.
    pub fn events(&self) -> &[NewEvent] {
        &self.events
    }

    /// The event ids, in order.
    pub fn event_ids(&self) -> Vec<EventId> {
        self.events.iter().map(|e| e.event_id).collect()
    }

    /// Takes the parts apart.
    pub fn into_parts(self) -> (StreamKey, Expectation, Vec<NewEvent>) {
        (self.stream, self.expectation, self.events)
    }
}

/// The answer to a successful append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The stream after the append (for a recognised retry: as it is now).
    pub stream: StreamInfo,
    /// Revision of the append's first event.
    pub first_revision: Revision,
    /// Revision of the append's last event.
    pub last_revision: Revision,
    /// Feed position of the first event, where the backend assigns it at commit.
    pub first_position: Option<Position>,
    /// True when the events were already stored by an earlier try of the
    /// same append and nothing was written (HTTP 200 instead of 201).
    pub already_appended: bool,
}

/// The answer to a deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// The revision the stream had when it was deleted.
    pub last_revision: Revision,
    /// The feed position of the `$stream-deleted` entry, where the backend
    /// assigns it at commit.
    pub position: Option<Position>,
    /// True when the stream was already deleted and nothing was done.
    pub already_deleted: bool,
}

/// Checks a deletion's or truncation's expected revision against the
/// stream's revision `actual` (every backend calls this).
pub fn check_expected(expected: Option<Revision>, actual: Revision) -> Result<(), StoreError> {
    match expected {
        Some(e) if e != actual => Err(StoreError::WrongExpectedRevision(ExpectationFailed {
            expected: Expectation::Exact(e),
            actual,
        })),
        _ => Ok(()),
    }
}

/// Checks a truncation's `before` against the stream's revision `last`:
/// it must lie in `1..=last` (every backend calls this).
pub fn check_truncation(before: Revision, last: Revision) -> Result<(), StoreError> {
    if before.get() < 1 || before > last {
        return Err(StoreError::InvalidRequest(format!(
            "beforeRevision must be between 1 and the stream's revision {last}; it was {before}"
        )));
    }
    Ok(())
}

/// The event type of the feed entry that announces a deletion.
pub const STREAM_DELETED: &str = "$stream-deleted";

/// The prefix of event types the store reserves for its own entries;
/// appends may not use it.
pub const RESERVED_EVENT_TYPE_PREFIX: char = '$';

/// Reading direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// From old to new.
    #[default]
    Forward,
    /// From new to old.
    Backward,
}

/// How to read one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamRead {
    /// Which way to read.
    pub direction: Direction,
    /// Forward: start after this revision (default 0). Backward: start
    /// before this revision (default: from the end).
    pub from: Option<Revision>,
    /// Most events to return (1–1000).
    pub limit: usize,
}

impl StreamRead {
    /// Forward from the start, default limit.
    pub fn forward() -> Self {
        Self {
            direction: Direction::Forward,
            from: None,
            limit: Limits::DEFAULT_READ_LIMIT,
        }
    }

    /// Forward after `revision`, with `limit`.
    pub fn forward_after(revision: Revision, limit: usize) -> Self {
        Self {
            direction: Direction::Forward,
            from: Some(revision),
            limit,
        }
    }

    /// Backward from the end (or before `before`), with `limit`.
    pub fn backward(before: Option<Revision>, limit: usize) -> Self {
        Self {
            direction: Direction::Backward,
            from: before,
            limit,
        }
    }
}

/// A page of one stream's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSlice {
    /// The events, in the direction read.
    pub events: Vec<RecordedEvent>,
    /// Whether more events lie beyond this page in the direction read.
    pub has_more: bool,
    /// The revision of the last event returned, or the revision the read
    /// started from when the page is empty, so a reader can always continue.
    pub last_evaluated_revision: Revision,
}

/// A position in the listing of a type's streams, ordered by
/// `(updated_at, stream_id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamCursor {
    /// `updatedAt` of the last stream returned.
    pub updated_at: Timestamp,
    /// Id of the last stream returned.
    pub stream_id: StreamId,
}

/// A page of a type's streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamListPage {
    /// Streams ordered by `(updated_at, stream_id)` ascending.
    pub streams: Vec<StreamInfo>,
    /// Where the next page starts, when there is one.
    pub next: Option<StreamCursor>,
}

/// A stream type and how many streams it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamTypeCount {
    /// The type.
    pub stream_type: StreamType,
    /// Number of streams of that type.
    pub streams: u64,
}

/// Which events a feed carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedFilter {
    /// Every event of every stream.
    All,
    /// Only events of streams of this type.
    StreamType(StreamType),
}

/// A page of a feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedPage {
    /// Events in feed order (ascending position).
    pub events: Vec<RecordedEvent>,
    /// Whether more events are already past this page.
    pub has_more: bool,
    /// Position of the last event returned, or the `after` position asked
    /// for when the page is empty.
    pub last_position: Position,
}

/// A storage backend. Every backend keeps the guarantees of the design:
/// append-only streams, gapless revisions from 1, atomic appends judged by
/// [`Expectation::check`], durable acknowledgements, idempotent retries
/// ([`crate::idempotency::decide`]), feed order that respects revision
/// order and resumes without loss or repetition.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends the request's events atomically, or explains why not.
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError>;

    /// The stream's summary, or `None` when it does not exist.
    async fn stream_info(&self, stream: &StreamKey) -> Result<Option<StreamInfo>, StoreError>;

    /// Reads a page of one stream. A stream that does not exist is
    /// [`StoreError::StreamNotFound`].
    async fn read_stream(
        &self,
        stream: &StreamKey,
        read: StreamRead,
    ) -> Result<StreamSlice, StoreError>;

    /// Lists a type's streams updated strictly after `updated_after` (all
    /// when `None`), ordered by `(updated_at, stream_id)`, starting strictly
    /// after `cursor`, at most `limit` of them.
    async fn list_streams(
        &self,
        stream_type: &StreamType,
        updated_after: Option<Timestamp>,
        cursor: Option<StreamCursor>,
        limit: usize,
    ) -> Result<StreamListPage, StoreError>;

    /// Every stream type with its number of streams, ordered by type.
    async fn stream_types(&self) -> Result<Vec<StreamTypeCount>, StoreError>;

    /// Reads a feed page: events with position strictly after `after`, in
    /// position order, at most `limit`.
    async fn read_feed(
        &self,
        filter: &FeedFilter,
        after: Position,
        limit: usize,
    ) -> Result<FeedPage, StoreError>;

    /// Resolves once an event with a position past `after` may be readable
    /// from the feed. May resolve early (callers re-read and wait again);
    /// never resolves late by more than the backend's polling interval.
    /// Callers bound the wait with their own timeout.
    async fn wait_for_feed(&self, after: Position) -> Result<(), StoreError>;

    /// Resolves once an event of `stream_type` with a position past `after`
    /// may be readable from that type's feed. Like
    /// [`wait_for_feed`](Self::wait_for_feed) it may resolve early; a backend that tracks
    /// each type's progress resolves only when that type moved, so that a
    /// long poll on a quiet type does no work while other types are
    /// written. The default waits on the global feed.
    async fn wait_for_type_feed(
        &self,
        stream_type: &StreamType,
        after: Position,
    ) -> Result<(), StoreError> {
        let _ = stream_type;
        self.wait_for_feed(after).await
    }

    /// Deletes the stream: its events leave the stream reads, the feeds
    /// and the listing, the feeds carry one [`STREAM_DELETED`] entry (at
    /// revision `last_revision + 1`), and the id answers
    /// [`StoreError::StreamDeleted`] from then on. `expected` is the
    /// revision the stream must be at ([`StoreError::WrongExpectedRevision`]
    /// otherwise). Deleting a deleted stream is `already_deleted`, whatever
    /// `expected` says; a stream that never existed is
    /// [`StoreError::StreamNotFound`].
    async fn delete_stream(
        &self,
        stream: &StreamKey,
        expected: Option<Revision>,
    ) -> Result<DeleteOutcome, StoreError>;

    /// Removes the stream's events below revision `before`: reads start at
    /// `before`, revisions are never renumbered, appends go on at the
    /// current revision, the feeds no longer carry the removed events, and
    /// the stream's `first_revision` becomes `before` (a truncation below an
    /// earlier one changes nothing). `before` must lie in `1..=revision`
    /// ([`StoreError::InvalidRequest`] otherwise). Answers the stream as it
    /// is after the truncation.
    async fn truncate_stream(
        &self,
        stream: &StreamKey,
        before: Revision,
        expected: Option<Revision>,
    ) -> Result<StreamInfo, StoreError>;

    /// Whether the store can take writes: `Err` with the reason when it
    /// stopped acknowledging appends (for instance after a failed disk
    /// write), for a readiness probe. The default is always ready.
    fn readiness(&self) -> Result<(), String> {
        Ok(())
    }
}

#[async_trait]
impl<S: EventStore + ?Sized> EventStore for std::sync::Arc<S> {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        (**self).append(request).await
    }
    async fn stream_info(&self, stream: &StreamKey) -> Result<Option<StreamInfo>, StoreError> {
        (**self).stream_info(stream).await
    }
    async fn read_stream(
        &self,
        stream: &StreamKey,
        read: StreamRead,
    ) -> Result<StreamSlice, StoreError> {
        (**self).read_stream(stream, read).await
    }
    async fn list_streams(
        &self,
        stream_type: &StreamType,
        updated_after: Option<Timestamp>,
        cursor: Option<StreamCursor>,
        limit: usize,
    ) -> Result<StreamListPage, StoreError> {
        (**self)
            .list_streams(stream_type, updated_after, cursor, limit)
            .await
    }
    async fn stream_types(&self) -> Result<Vec<StreamTypeCount>, StoreError> {
        (**self).stream_types().await
    }
    async fn read_feed(
        &self,
        filter: &FeedFilter,
        after: Position,
        limit: usize,
    ) -> Result<FeedPage, StoreError> {
        (**self).read_feed(filter, after, limit).await
    }
    async fn wait_for_feed(&self, after: Position) -> Result<(), StoreError> {
        (**self).wait_for_feed(after).await
    }
    async fn wait_for_type_feed(
        &self,
        stream_type: &StreamType,
        after: Position,
    ) -> Result<(), StoreError> {
        (**self).wait_for_type_feed(stream_type, after).await
    }
    async fn delete_stream(
        &self,
        stream: &StreamKey,
        expected: Option<Revision>,
    ) -> Result<DeleteOutcome, StoreError> {
        (**self).delete_stream(stream, expected).await
    }
    async fn truncate_stream(
        &self,
        stream: &StreamKey,
        before: Revision,
        expected: Option<Revision>,
    ) -> Result<StreamInfo, StoreError> {
        (**self).truncate_stream(stream, before, expected).await
    }
    fn readiness(&self) -> Result<(), String> {
        (**self).readiness()
    }
}
