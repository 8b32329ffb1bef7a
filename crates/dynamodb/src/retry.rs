//! Retries with jittered exponential backoff.
//!
//! The SDK's standard retry strategy (set on every client by `eventstore-aws`)
//! already retries throttling (`ThrottlingException`,
//! `ProvisionedThroughputExceededException`, `RequestLimitExceeded`), 5xx and
//! transport errors with jittered backoff. What it does not retry is a
//! transaction cancelled because of a `TransactionConflict` (another
//! transaction touched the same item) or an `UpdateItem` refused with
//! `TransactionConflictException`: those are retried here.

use std::time::Duration;

/// Error codes this crate retries itself (besides the SDK's own retries).
pub const RETRIED_CODES: &[&str] = &[
    "TransactionConflict",
    "TransactionConflictException",
    "TransactionInProgressException",
    "ThrottlingError",
    "ThrottlingException",
    "ProvisionedThroughputExceeded",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalServerError",
];

/// Whether an error or cancellation-reason code is transient.
pub fn is_retryable(code: &str) -> bool {
    RETRIED_CODES.contains(&code)
}

/// Backoff state: full jitter over an exponentially growing cap.
#[derive(Debug, Clone)]
pub struct Backoff {
    attempt: u32,
    base: Duration,
    cap: Duration,
    max_attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            attempt: 0,
            base: Duration::from_millis(10),
            cap: Duration::from_secs(2),
            max_attempts: 12,
        }
    }
}

impl Backoff {
    /// The next delay, or `None` when the attempts are used up.
    pub fn next_delay(&mut self) -> Option<Duration> {
        if self.attempt >= self.max_attempts {
            return None;
        }
        let exp = self.base.saturating_mul(1u32 << self.attempt.min(16));
        let ceiling = exp.min(self.cap);
        self.attempt += 1;
        Some(ceiling.mul_f64(fastrand::f64()))
    }

    /// Attempts made so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Sleeps for the next delay; false when the attempts are used up.
    pub async fn wait(&mut self) -> bool {
        match self.next_delay() {
            Some(d) => {
                tokio::time::sleep(d).await;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_jittered_capped_and_bounded() {
        let mut b = Backoff::default();
        let mut n = 0;
        while let Some(d) = b.next_delay() {
            assert!(d <= Duration::from_secs(2));
            n += 1;
        }
        assert_eq!(n, 12);
        let delays: Vec<_> = (0..20)
            .map(|_| {
                let mut b = Backoff::default();
                for _ in 0..5 {
                    b.next_delay();
                }
                b.next_delay().unwrap()
            })
            .collect();
        assert!(
            delays.iter().any(|d| *d != delays[0]),
            "delays are jittered"
        );
    }

    #[test]
    fn transient_codes_are_retried_and_condition_failures_are_not() {
        for code in [
            "TransactionConflict",
            "ThrottlingError",
            "ProvisionedThroughputExceededException",
        ] {
            assert!(is_retryable(code));
        }
        for code in ["ConditionalCheckFailed", "ValidationError", "None"] {
            assert!(!is_retryable(code));
        }
    }
}
