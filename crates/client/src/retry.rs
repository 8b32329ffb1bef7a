//! Retries with jittered exponential backoff.

use std::time::Duration;

/// How often and how patiently transient failures are retried.
///
/// Transient failures are connection errors, timeouts, 5xx answers and 429.
/// Appends are safe to retry because their event ids are fixed before the
/// first try: the server recognises a retry and answers 200 without writing
/// again. Creating a stream (`POST /streams/{type}`, where the server picks
/// the id) is only retried when the request certainly did not reach the
/// server (connection refused, 429).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first try (0: never retry).
    pub max_retries: u32,
    /// Backoff before the first retry (before jitter).
    pub initial_backoff: Duration,
    /// Upper bound of one backoff.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// The pause before retry number `retry` (0-based): exponential, capped,
    /// with "equal jitter" (a random point in the upper half), so that many
    /// clients failing together do not retry in lockstep.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX);
        let base = self
            .initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff);
        let half = base / 2;
        let jitter = half.mul_f64(fastrand::f64());
        half + jitter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = RetryPolicy::default();
        for retry in 0..30 {
            let b = p.backoff(retry);
            let cap = p
                .initial_backoff
                .saturating_mul(1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX))
                .min(p.max_backoff);
            assert!(b >= cap / 2 && b <= cap, "retry {retry}: {b:?} vs {cap:?}");
        }
        let samples: std::collections::HashSet<_> = (0..20).map(|_| p.backoff(3)).collect();
        assert!(samples.len() > 1, "backoff is jittered");
    }
}
