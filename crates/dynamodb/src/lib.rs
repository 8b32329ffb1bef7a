//! The DynamoDB storage backend of the event store and its feed relay.
//!
//! This crate owns the single-table item design (documented with its costs
//! in `docs/dynamodb.md`), [`DynamoStore`] (the
//! [`EventStore`](eventstore_core::EventStore) over it), the table schema
//! shared with the CDK app ([`create_table`], `table-schema.json`), and the
//! [`relay`] that turns the table's DynamoDB Stream into the global feed,
//! the per-type listings and the announcements of appends.
//!
//! It must not know about HTTP: page keys reach it as validated
//! [`StreamCursor`](eventstore_core::StreamCursor)s and every key it builds
//! names one partition of the kind asked for. It must not publish anything
//! nor build what is published: the relay returns the [`Announcement`]s it
//! derived (an append's feed entry and event types), and the caller
//! (`eventstore-aws`) turns them into messages, publishes them and
//! acknowledges them. It takes its AWS clients ready-made: SDK settings,
//! retry policy and the SNS publisher live in `eventstore-aws`.
//!
//! # Layout
//!
//! - [`items`]: the typed item layer — keys, attribute names (`items::attr`)
//!   and the conversions of every item kind (tip, chunk, append-id, feed
//!   page, type feed index, listing, checkpoint, mark) to and from SDK
//!   items, in one place.
//! - [`store`]: [`DynamoStore`], its stream reads and listings; `append`:
//!   the append path; `feed`: the global and per-type feed reads and waits;
//!   `lifecycle`: stream deletion and truncation and their cleanups;
//!   `feed_refs`: the removal of the feed's references to deleted and
//!   truncated events ([`DynamoStore::purge_feed_references`]).
//! - [`relay`]: [`Relay`], [`ChangeRecord`] (stream records to feed pages,
//!   type index, listings and announcements); [`poller`]: [`spawn_poller`],
//!   [`spawn_poller_with`] (which hands each batch's output to a callback
//!   that publishes and acknowledges it); [`RelayProgress`] (shared with the
//!   store). The store does not depend on the relay.
//! - [`schema`]: [`create_table`] and the schema file.
//! - [`codec`]: the compact binary form of an append's events.
//! - [`cost`]: DynamoDB's item-size and capacity rules, and [`cost::Recorder`],
//!   an SDK interceptor that records every request's items for cost checks.
//! - [`retry`]: jittered backoff and the error codes this crate retries
//!   itself (the SDK's own retry policy is set by `eventstore-aws`).
#![deny(missing_docs)]

mod append;
pub mod codec;
pub mod cost;
mod error;
mod feed;
mod feed_refs;
pub mod items;
mod lifecycle;
pub mod metrics;
pub mod poller;
mod progress;
pub mod relay;
pub mod retry;
pub mod schema;
pub mod store;

pub use error::DynamoError;
pub use feed_refs::ReferencePurge;
pub use poller::{PollerHandle, spawn_poller, spawn_poller_with};
pub use relay::replay::{FailedBatch, ReplayError, read_failed_batch};
pub use relay::{Announcement, ChangeRecord, FeedEntry, Relay, RelayOutput, RelayProgress};
pub use schema::{TABLE_SCHEMA_JSON, TableSchema, create_table};
pub use store::DynamoStore;
