//! AWS settings and the clients made from them, with one retry policy.
//!
//! Settings come from the usual AWS sources — `AWS_REGION` or a profile,
//! the credential chain, and `AWS_ENDPOINT_URL` to send every request to an
//! emulator such as moto — read once per process ([`load`],
//! [`load_with_region`]), or are given for an emulator ([`for_emulator`]).
//! Every client is made here, so that all of them retry alike.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::retry::{RetryPartition, TokenBucket};

/// The region given to an emulator's settings ([`for_emulator`]).
pub const EMULATOR_REGION: &str = "us-east-1";

/// Why the AWS settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No region in the environment or the profile.
    #[error("no AWS region: set AWS_REGION (or a profile with a region)")]
    NoRegion,
}

/// AWS settings from the environment: region, credentials, and the
/// endpoint override `AWS_ENDPOINT_URL` when set. A Lambda function always
/// has a region; elsewhere prefer [`load_with_region`].
pub async fn load() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// [`load`], refusing settings without a region (an error now rather than
/// on the first request).
pub async fn load_with_region() -> Result<SdkConfig, ConfigError> {
    let sdk = load().await;
    if sdk.region().is_none() {
        return Err(ConfigError::NoRegion);
    }
    Ok(sdk)
}

/// Settings for an AWS emulator (moto) at `endpoint`: every request goes
/// there, in [`EMULATOR_REGION`], signed with dummy static credentials;
/// nothing is read from the environment.
pub async fn for_emulator(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(EMULATOR_REGION))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_sns::config::Credentials::new(
            "test", "test", None, None, "emulator",
        ))
        .load()
        .await
}

/// The retry settings of every client: the SDK's standard strategy
/// (jittered exponential backoff on throttling,
/// `ProvisionedThroughputExceeded`, 5xx and transport errors) with 8
/// attempts from a 20 ms initial backoff.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(8)
        .with_initial_backoff(Duration::from_millis(20))
}

/// The retry partition of the DynamoDB and DynamoDB Streams clients. The
/// SDK's default retry quota (500 tokens, 5 per retry) is refilled only by
/// retries that succeed, so every retried request that then fails for
/// good (a write whose answer was lost and whose retry meets its own
/// condition, a throttled burst) drains it for the life of the process,
/// and a long-running server or warm Lambda ends up retrying nothing.
/// Here every success earns a token back and the bucket refills over time:
/// retries stay bounded under a storm (at most one retry per five
/// successes, sustained) and never run dry for good.
pub fn retry_partition() -> RetryPartition {
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

/// A DynamoDB client config builder from `sdk`, with [`retry_config`],
/// [`retry_partition`] and the throttling counter
/// ([`eventstore_dynamodb::metrics::CountThrottles`]). Add interceptors to
/// it (a cost recorder) before building.
pub fn dynamodb_config(sdk: &SdkConfig) -> aws_sdk_dynamodb::config::Builder {
    aws_sdk_dynamodb::config::Builder::from(sdk)
        .retry_config(retry_config())
        .retry_partition(retry_partition())
        .interceptor(eventstore_dynamodb::metrics::CountThrottles)
}

/// A DynamoDB client ([`dynamodb_config`]).
pub fn dynamodb_client(sdk: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(dynamodb_config(sdk).build())
}

/// A DynamoDB Streams client, with [`retry_config`] and
/// [`retry_partition`].
pub fn streams_client(sdk: &SdkConfig) -> aws_sdk_dynamodbstreams::Client {
    aws_sdk_dynamodbstreams::Client::from_conf(
        aws_sdk_dynamodbstreams::config::Builder::from(sdk)
            .retry_config(retry_config())
            .retry_partition(retry_partition())
            .build(),
    )
}

/// An SNS client, with [`retry_config`] (the [`crate::sns::SnsPublisher`]
/// retries the entries SNS refuses on top of it).
pub fn sns_client(sdk: &SdkConfig) -> aws_sdk_sns::Client {
    aws_sdk_sns::Client::from_conf(
        aws_sdk_sns::config::Builder::from(sdk)
            .retry_config(retry_config())
            .build(),
    )
}

/// An SQS client (the relay's failure queue), with [`retry_config`].
pub fn sqs_client(sdk: &SdkConfig) -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(sdk)
            .retry_config(retry_config())
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn emulator_settings_name_the_endpoint_region_and_credentials() {
        let sdk = for_emulator("http://127.0.0.1:1").await;
        assert_eq!(sdk.endpoint_url(), Some("http://127.0.0.1:1"));
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some(EMULATOR_REGION));
        assert!(sdk.credentials_provider().is_some());
        let client = dynamodb_client(&sdk);
        assert_eq!(
            client.config().retry_config().map(|r| r.max_attempts()),
            Some(8)
        );
    }
}
