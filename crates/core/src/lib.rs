//! Domain model and storage contract of the event store.
//!
//! This crate owns the vocabulary every other crate speaks: validated
//! identifiers ([`StreamType`], [`StreamId`], [`EventType`], [`EventId`]),
//! numbers that cannot be mixed up ([`Revision`], [`Position`]), the append
//! [`Expectation`] and the one pure function that decides it
//! ([`Expectation::check`]), new and recorded events, and the [`EventStore`]
//! trait that every storage backend implements.
//!
//! It must not depend on a web framework, an async runtime or an AWS crate:
//! backends and front ends depend on it, never the other way round.
//!
//! # Layout
//!
//! - [`ids`]: validated identifiers and numbers.
//! - [`json`]: JSON payloads kept byte for byte as the client sent them.
//! - [`time`]: the [`Timestamp`] type and its RFC 3339 form.
//! - [`expectation`]: [`Expectation`] and the concurrency decision.
//! - [`event`]: [`NewEvent`], [`RecordedEvent`], [`StreamInfo`].
//! - [`store`]: the [`EventStore`] trait, its requests, answers and [`StoreError`].
//! - [`idempotency`]: the pure decision whether an append is a retry.
//! - [`gated`]: [`GatedStore`], a store that answers 503 until the real one is open.
//! - [`memory`]: [`MemoryStore`], the in-memory reference model.
//! - `conformance` (feature `testkit`): the suite every backend must pass.
//! - `openapi` (feature `openapi`): OpenAPI schemas of the wire types.
#![deny(missing_docs)]

pub mod event;
pub mod expectation;
pub mod gated;
pub mod idempotency;
pub mod ids;
pub mod json;
pub mod memory;
pub mod store;
pub mod time;

#[cfg(feature = "testkit")]
pub mod conformance;

#[cfg(feature = "openapi")]
pub mod openapi;

pub use event::{NewEvent, RecordedEvent, StreamInfo};
pub use expectation::{Expectation, ExpectationFailed};
pub use gated::GatedStore;
pub use ids::{EventId, EventType, IdError, Position, Revision, StreamId, StreamKey, StreamType};
pub use json::{JsonError, JsonObject, JsonValue};
pub use memory::MemoryStore;
pub use store::{
    AppendOutcome, AppendRequest, DeleteOutcome, Direction, EventStore, FeedFilter, FeedPage,
    Limits, STREAM_DELETED, StoreError, StreamCursor, StreamListPage, StreamRead, StreamSlice,
    StreamTypeCount,
};
pub use time::Timestamp;
