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
    /// DynamoDB kept refusing a request for throttling (or for a transient
    /// server error) after every retry.
    #[error("{operation} throttled after every retry: {message}")]
    Throttled {
        /// The operation, e.g. `UpdateItem`.
        operation: &'static str,
        /// The error as the SDK described it.
        message: String,
    },
}

impl DynamoError {
    /// Wraps an error with the operation's name.
    pub fn request(operation: &'static str, err: impl std::fmt::Display) -> Self {
        DynamoError::Request {
            operation,
            message: err.to_string(),
        }
    }

    /// Wraps an SDK error with the operation's name: [`DynamoError::Throttled`]
    /// when DynamoDB refused it for throttling or a transient server error
    /// (the SDK has retried those already), [`DynamoError::Request`] else.
    pub fn classify<E, R>(
        operation: &'static str,
        err: aws_smithy_runtime_api::client::result::SdkError<E, R>,
    ) -> Self
    where
        E: std::error::Error
            + aws_smithy_types::error::metadata::ProvideErrorMetadata
            + Send
            + Sync
            + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let transient = err
            .as_service_error()
            .and_then(|e| e.code())
            .is_some_and(|c| {
                crate::retry::is_retryable(c) && !c.starts_with("TransactionConflict")
            });
        let message = aws_smithy_types::error::display::DisplayErrorContext(err).to_string();
        if transient {
            DynamoError::Throttled { operation, message }
        } else {
            DynamoError::Request { operation, message }
        }
    }
}

/// Throttling and lost races are "retry later" (503 with `Retry-After`);
/// anything else is a backend failure (500). Either way the detail is for
/// the log: the HTTP layer answers with a generic message and a request id.
impl From<DynamoError> for StoreError {
    fn from(err: DynamoError) -> Self {
        match err {
            DynamoError::Throttled { .. } | DynamoError::Contention(_) => {
                StoreError::Overloaded(err.to_string())
            }
            other => StoreError::backend(other),
        }
    }
}
