//! The DynamoDB clients count every attempt DynamoDB throttles (the SDK
//! retries those itself, so the store never sees them) into
//! `eventstore_dynamodb_throttles_total`, under the fidelity layer's
//! injected `ThrottlingException`s.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use eventstore_core::{EventStore, StreamId, StreamKey, StreamType};
use metrics::{
    Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};

/// Counts the throttle counter's increments; every other metric is a no-op.
#[derive(Clone, Default)]
struct Throttles(Arc<Count>);

#[derive(Default)]
struct Count(AtomicU64);

impl CounterFn for Count {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::SeqCst);
    }
    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::SeqCst);
    }
}

impl Recorder for Throttles {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        if key.name() == eventstore_dynamodb::metrics::THROTTLES {
            Counter::from_arc(self.0.clone())
        } else {
            Counter::noop()
        }
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[tokio::test]
async fn throttled_attempts_are_counted_and_the_sdk_retries_them() {
    let throttles = Throttles::default();
    metrics::set_global_recorder(throttles.clone()).unwrap();
    let h = support::harness("throttlecount", None, false).await;
    let table = h.store.table().to_string();
    let key = StreamKey::new(
        StreamType::parse("order").unwrap(),
        StreamId::parse("t-1").unwrap(),
    );
    assert!(h.store.stream_info(&key).await.unwrap().is_none());
    assert_eq!(throttles.0.0.load(Ordering::SeqCst), 0);
    let rule = format!(
        r#"{{"op":"Query","fault":"throttle","probability":1,"times":3,"match":"\"{table}\""}}"#
    );
    support::fidelity("PUT", &table, &format!(r#"{{"rules":[{rule}]}}"#));
    assert!(
        h.store.stream_info(&key).await.unwrap().is_none(),
        "answered after the SDK's retries"
    );
    assert_eq!(
        throttles.0.0.load(Ordering::SeqCst),
        3,
        "one per throttled attempt"
    );
}
