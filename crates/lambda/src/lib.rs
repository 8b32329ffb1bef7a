//! The event store's AWS Lambda functions, as a library their two small
//! binaries call.
//!
//! This crate owns the adaptation of the service to Lambda: reading the
//! functions' configuration from the environment once per cold start
//! ([`config`]), JSON logs for CloudWatch with the Lambda request id on every
//! line ([`telemetry`]), the API function's router — the very same
//! [`eventstore_http::router`] over the DynamoDB backend, wrapped by
//! `lambda_http` ([`api`]) — and the relay function, which turns a batch of
//! DynamoDB Stream records into feed positions through
//! [`eventstore_dynamodb::Relay`] and publishes one SNS message per committed
//! append ([`relay`]), and CloudWatch metrics in the Embedded Metric Format
//! ([`emf`]).
//!
//! It must not implement HTTP handlers, storage or the feed itself: those
//! live in `eventstore-http` and `eventstore-dynamodb`; nor AWS plumbing
//! shared with the binary (SDK settings, retries, the SNS publisher, the
//! publish-then-acknowledge step): that is `eventstore-aws`. It must not
//! log payloads, keys or credentials.
//!
//! Main types: [`config::ApiConfig`], [`config::RelayConfig`],
//! [`relay::RelayFunction`], [`LambdaError`].
#![deny(missing_docs)]

pub mod api;
pub mod config;
pub mod emf;
pub mod relay;
pub mod telemetry;

/// Everything that can go wrong in the functions' own code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LambdaError {
    /// A required environment variable is missing or empty.
    #[error("configuration: {0} is not set")]
    MissingSetting(&'static str),
    /// The event is not what the event source mapping sends.
    #[error("unexpected event: {0}")]
    BadEvent(String),
    /// The relay failed on a record.
    #[error("relay: {0}")]
    Relay(#[from] eventstore_dynamodb::DynamoError),
}
