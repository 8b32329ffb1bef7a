//! The DynamoDB backend passes the backend-agnostic conformance suite with
//! the fidelity layer's faults switched on (`support::standard_faults`):
//! transaction conflicts, throttling, 500s, responses lost after the write
//! was applied, `TransactionInProgressException` and `ClientRequestToken`
//! semantics, on every operation the store and the relay send.

mod support;

use std::time::Duration;

use eventstore_core::conformance::Settings;

async fn fresh() -> support::Harness {
    support::harness_with("conf-faults", None, true, true).await
}

eventstore_core::conformance_tests!(
    fresh,
    Settings {
        racing_writers: 16,
        race_rounds: 200,
        feed_timeout: Duration::from_secs(120),
        responses_may_be_lost: true,
    },
    |harness| &harness.store
);
