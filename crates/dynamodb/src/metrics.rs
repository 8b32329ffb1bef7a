//! What the DynamoDB clients report through the [`metrics`] facade: every
//! attempt DynamoDB answers with a throttling error, counted by an
//! interceptor on the clients `eventstore-aws` builds (`dynamodb_config`; the SDK
//! retries those itself, so the store never sees them otherwise).

use aws_sdk_dynamodb::config::interceptors::FinalizerInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;

/// DynamoDB attempts answered with a throttling error (counter).
pub const THROTTLES: &str = "eventstore_dynamodb_throttles_total";

/// The error codes DynamoDB throttles with.
const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
];

/// Counts throttled attempts into [`THROTTLES`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CountThrottles;

/// Whether a DynamoDB error body names a throttling error (its `__type`
/// is `com.amazonaws.dynamodb.v20120810#<code>`).
pub fn is_throttling_body(body: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(body) else {
        return false;
    };
    THROTTLING_CODES
        .iter()
        .any(|code| text.contains(&format!("#{code}\"")) || text.contains(&format!("\"{code}\"")))
}

impl Intercept for CountThrottles {
    fn name(&self) -> &'static str {
        "CountThrottles"
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let throttled = context.response().is_some_and(|r| {
            r.status().as_u16() == 400 && r.body().bytes().is_some_and(is_throttling_body)
        });
        if throttled {
            metrics::counter!(THROTTLES).increment(1);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_bodies_are_recognised_and_others_are_not() {
        for body in [
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"x"}"#,
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"}"#,
            r#"{"__type":"RequestLimitExceeded"}"#,
        ] {
            assert!(is_throttling_body(body.as_bytes()), "{body}");
        }
        for body in [
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"}"#,
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","message":"ThrottlingError"}"#,
            "",
        ] {
            assert!(!is_throttling_body(body.as_bytes()), "{body}");
        }
    }
}
