//! The event store's AWS plumbing, in one place for the Lambda functions
//! (`eventstore-lambda`) and the binary (`eventstore-cli`).
//!
//! - [`config`]: AWS settings from the environment (region, credentials,
//!   the `AWS_ENDPOINT_URL` override for an emulator such as moto) or for
//!   an emulator, the retry policy, and every client made from them.
//! - [`sns`]: the SNS message of an append (the `Notification` JSON of
//!   API.md with the `StreamType` and `EventTypes` attributes) and
//!   [`sns::SnsPublisher`], which publishes in `PublishBatch` calls sized by
//!   count and bytes.
//! - [`announce`]: the relay's publish-then-acknowledge step
//!   ([`announce::Announcer`]) over any [`announce::Publisher`].
//!
//! It must not hold storage logic (that is `eventstore-dynamodb`, which
//! builds no message and does not know SNS) nor Lambda's event shapes
//! (`eventstore-lambda`).
#![deny(missing_docs)]

pub mod announce;
pub mod config;
pub mod sns;

pub use announce::{Announced, Announcer, Publisher};
pub use sns::SnsPublisher;
