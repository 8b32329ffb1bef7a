//! The DynamoDB storage backend of the event store and its feed relay.
//!
//! This crate owns the single-table item design (documented with its costs
//! in `docs/dynamodb.md`), [`DynamoStore`] (the
//! [`EventStore`](eventstore_core::EventStore) over it), the table schema
//! shared with the CDK app ([`create_table`], `table-schema.json`), and the
//! [`relay`] that turns the table's DynamoDB Stream into the global feed,
//! the per-type listings and the append notifications.
//!
//! It must not know about HTTP: page keys reach it as validated
//! [`StreamCursor`](eventstore_core::StreamCursor)s and every key it builds
//! names one partition of the kind asked for. It must not publish anything
//! itself: the relay returns the [`Notification`](eventstore_api::Notification)s
//! it derived and the caller publishes them.
//!
//! # Layout
//!
//! - `items`: the typed item layer — keys, attribute names (`items::attr`)
//!   and the conversions of every item kind (tip, chunk, append-id, feed
//!   page, type feed index, listing, checkpoint, mark) to and from SDK
//!   items, in one place.
//! - [`store`]: [`DynamoStore`], its stream reads and listings; `append`:
//!   the append path; `feed`: the global and per-type feed reads and waits.
//! - [`relay`]: [`Relay`], [`ChangeRecord`] (stream records to feed pages,
//!   type index, listings and notifications); [`poller`]: [`spawn_poller`],
//!   [`spawn_poller_with`]; [`RelayProgress`] (shared with the store). The
//!   store does not depend on the relay.
//! - [`schema`]: [`create_table`] and the schema file.
//! - [`codec`]: the compact binary form of an append's events.
//! - [`cost`]: DynamoDB's item-size and capacity rules, and [`cost::Recorder`],
//!   an SDK interceptor that records every request's items for cost checks.
//! - [`retry`]: jittered backoff and the error codes retried.
#![deny(missing_docs)]

mod append;
pub mod codec;
pub mod cost;
mod error;
mod feed;
mod items;
pub mod metrics;
pub mod poller;
mod progress;
pub mod relay;
pub mod retry;
pub mod schema;
pub mod store;

pub use error::DynamoError;
pub use poller::{PollerHandle, spawn_poller, spawn_poller_with};
pub use relay::replay::{FailedBatch, ReplayError, read_failed_batch};
pub use relay::{ChangeRecord, FeedEntry, Relay, RelayOutput, RelayProgress};
pub use schema::{TABLE_SCHEMA_JSON, TableSchema, create_table};
pub use store::DynamoStore;

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;

/// A DynamoDB client config builder from shared AWS settings, with the
/// standard retry strategy (jittered exponential backoff on throttling,
/// `ProvisionedThroughputExceeded`, 5xx and transport errors) raised to 8
/// attempts. Add interceptors to it before building.
pub fn dynamodb_config(sdk: &SdkConfig) -> aws_sdk_dynamodb::config::Builder {
    aws_sdk_dynamodb::config::Builder::from(sdk)
        .retry_config(sdk_config_retry())
        .retry_partition(retry_partition())
        .interceptor(metrics::CountThrottles)
}

/// The retry partition of this crate's DynamoDB clients. The SDK's default
/// retry quota (500 tokens, 5 per retry) is refilled only by retries that
/// succeed, so every retried request that then fails for good (a write
/// whose answer was lost and whose retry meets its own condition, a
/// throttled burst) drains it for the life of the process, and a
/// long-running server or warm Lambda ends up retrying nothing. Here
/// every success earns a token back and the bucket refills over time:
/// retries stay bounded under a storm (at most one retry per five
/// successes, sustained) and never run dry for good.
pub fn retry_partition() -> aws_sdk_dynamodb::config::retry::RetryPartition {
    use aws_sdk_dynamodb::config::retry::{RetryPartition, TokenBucket};
    RetryPartition::custom("eventstore-dynamodb")
        .token_bucket(
            TokenBucket::builder()
                .capacity(500)
                .retry_cost(5)
                .timeout_retry_cost(10)
                .success_reward(1.0)
                .refill_rate(10.0)
                .build(),
        )
        .build()
}

/// The retry settings of every client this crate makes.
pub fn sdk_config_retry() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(8)
        .with_initial_backoff(std::time::Duration::from_millis(20))
}

/// Clients from the environment (`AWS_REGION`, credentials,
/// `AWS_ENDPOINT_URL` for an emulator).
pub async fn clients_from_env() -> (aws_sdk_dynamodb::Client, aws_sdk_dynamodbstreams::Client) {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let streams = aws_sdk_dynamodbstreams::config::Builder::from(&sdk)
        .retry_config(sdk_config_retry())
        .retry_partition(retry_partition())
        .build();
    (
        aws_sdk_dynamodb::Client::from_conf(dynamodb_config(&sdk).build()),
        aws_sdk_dynamodbstreams::Client::from_conf(streams),
    )
}
