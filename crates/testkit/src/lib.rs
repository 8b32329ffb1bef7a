//! What the event store's tests share, so that no test copies it.
//!
//! - [`moto`]: the AWS emulator (moto, `scripts/moto/server.py`) started
//!   once per test process, AWS settings for it, and its fault-injection
//!   control API;
//! - `sns` (feature `aws`): topics, subscribed queues and the messages they
//!   receive, on the emulator;
//! - `lambda_event` (feature `aws`): the events Lambda's DynamoDB event
//!   source mapping sends, built from records of the Streams API;
//! - [`process`]: a server binary started on port 0, its URL read from its
//!   `listening on` line;
//! - [`http`]: the router over any [`EventStore`](eventstore_core::EventStore)
//!   on a real TCP listener, and a JSON client with assertions on the
//!   error shape;
//! - [`contract`]: the HTTP contract suite, run against any base URL;
//! - [`difffuzz`]: differential fuzzing through HTTP, random operation
//!   sequences against a target and the reference model.
//!
//! It must not be a dependency of anything but tests; it is not published.
#![deny(missing_docs)]

pub mod contract;
pub mod difffuzz;
pub mod http;
#[cfg(feature = "aws")]
pub mod lambda_event;
pub mod moto;
pub mod process;
#[cfg(feature = "aws")]
pub mod sns;
