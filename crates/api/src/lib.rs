//! The HTTP API's wire types: request bodies, response envelopes, the error
//! body, notifications and the opaque page keys.
//!
//! The server and the client both use these types, so the JSON shapes are
//! defined once. The types mirror `API.md`; events and streams themselves
//! are [`eventstore_core::RecordedEvent`] and [`eventstore_core::StreamInfo`],
//! whose serde forms are already the API's.
//!
//! This crate must not depend on a web framework or HTTP client.
#![deny(missing_docs)]

mod bodies;
mod notification;
mod page_key;

pub use bodies::*;
pub use notification::Notification;
pub use page_key::{PageKeyError, StreamPageKey};
