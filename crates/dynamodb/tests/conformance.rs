//! The DynamoDB backend passes the backend-agnostic conformance suite,
//! against the moto emulator with the relay polling DynamoDB Streams.

mod support;

use std::time::Duration;

use eventstore_core::conformance::Settings;

async fn fresh() -> support::Harness {
    support::harness("conf", None, true).await
}

eventstore_core::conformance_tests!(
    fresh,
    Settings {
        racing_writers: 16,
        race_rounds: 200,
        feed_timeout: Duration::from_secs(120),
        ..Settings::default()
    },
    |harness| &harness.store
);
