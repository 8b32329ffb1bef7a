//! Async Rust client of the event store's HTTP API.
//!
//! This crate owns the client side of the contract in `API.md`: a
//! [`Client`] with one method per endpoint, reads as [`futures::Stream`]s
//! that page internally (stream events forward or backward, a type's
//! streams, the stream types, the global and per-type feeds, with a follow
//! mode that long-polls), appends whose event ids are fixed before the first
//! try so that retries after transient failures are safe, one typed
//! [`Error`], bearer API keys and (feature `sigv4`) AWS SigV4 signing for a
//! Lambda Function URL with `AWS_IAM` auth. The `notifications` module
//! (features `sqs`, `lambda-events`) reads the store's notifications from an
//! SQS queue or a Lambda's SQS event.
//!
//! It must not define wire shapes of its own: requests and answers are the
//! types of `eventstore-api` and `eventstore-core`, shared with the server.
//!
//! # Main types
//!
//! - [`Client`], [`ClientBuilder`]: the connection, its timeouts, retries and auth.
//! - [`FeedOptions`]: where a feed starts, page size, follow mode.
//! - [`RetryPolicy`]: jittered exponential backoff.
//! - [`Error`]: every failure, by kind.
//! - `SigV4Signer` (feature `sigv4`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), eventstore_client::Error> {
//! use futures::TryStreamExt;
//! use eventstore_client::{Client, EventType, Expectation, JsonValue, NewEvent, StreamId, StreamRead, StreamType};
//!
//! let client = Client::new("http://127.0.0.1:8080")?;
//! let (t, id) = (StreamType::parse("cart").unwrap(), StreamId::parse("c-1").unwrap());
//! let event = NewEvent::new(EventType::parse("item-added").unwrap(), JsonValue::from_text(r#"{"sku":"x"}"#).unwrap());
//! client.append(&t, &id, Expectation::Any, vec![event]).await?;
//! let events: Vec<_> = client.read_stream(&t, &id, StreamRead::forward()).try_collect().await?;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod client;
mod error;
mod retry;
#[cfg(feature = "sigv4")]
mod sigv4;

#[cfg(any(feature = "sqs", feature = "lambda-events"))]
pub mod notifications;

pub use client::{Client, ClientBuilder, DEFAULT_URL, FeedOptions, MAX_WAIT_SECS};
pub use error::{Error, Result};
pub use retry::RetryPolicy;
#[cfg(feature = "sigv4")]
pub use sigv4::SigV4Signer;

#[cfg(feature = "sigv4")]
pub use aws_credential_types::Credentials;

pub use eventstore_api::{
    ErrorCode, EventPage, FeedPage, Liveness, Notification, StreamPage, StreamTypeEntry,
};
pub use eventstore_core::{
    AppendOutcome, Direction, EventId, EventType, Expectation, FeedFilter, JsonObject, JsonValue,
    NewEvent, Position, RecordedEvent, Revision, StreamId, StreamInfo, StreamKey, StreamRead,
    StreamType, Timestamp,
};
