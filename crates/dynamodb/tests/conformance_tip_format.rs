//! The DynamoDB backend passes the backend-agnostic conformance suite with
//! streams of tip format, the design before append items: tables written
//! by earlier versions keep their streams in it (docs/dynamodb.md, "Tables
//! written by earlier versions"), and a store made `with_tip_format` still
//! creates them.

mod support;

use std::time::Duration;

use eventstore_core::conformance::Settings;

async fn fresh() -> support::Harness {
    let mut harness = support::harness("conf-tip", None, true).await;
    harness.store = harness.store.with_tip_format();
    harness
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
