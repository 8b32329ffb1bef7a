//! The crate's error type.

use eventstore_core::StoreError;

/// Failures of the DynamoDB backend and its relay.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DynamoError {
    /// A DynamoDB or DynamoDB Streams request failed.
    #[error("{operation} failed: {message}")]
    Request {
        /// The operation, e.g. `UpdateItem`.
        operation: &'static str,
        /// The error as the SDK described it.
        message: String,
    },
    /// An item does not have the shape this crate writes.
    #[error("unexpected item content: {0}")]
    Corrupt(String),
    /// The table schema file is invalid.
    #[error("invalid table schema: {0}")]
    Schema(String),
    /// A write kept losing races and gave up.
    #[error("gave up after {0} attempts")]
    Contention(u32),
}

impl DynamoError {
    /// Wraps an SDK error with the operation's name.
    pub fn request(operation: &'static str, err: impl std::fmt::Display) -> Self {
        DynamoError::Request {
            operation,
            message: err.to_string(),
        }
    }
}

impl From<DynamoError> for StoreError {
    fn from(err: DynamoError) -> Self {
        StoreError::backend(err)
    }
}
