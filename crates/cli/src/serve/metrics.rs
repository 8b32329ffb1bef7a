//! The local server's metrics recorder: the `metrics` facade's values kept
//! by `metrics-exporter-prometheus` and rendered at `GET /metrics`.
//!
//! Why this crate: the libraries record through the `metrics` facade (one
//! line per measurement, no exporter dependency, a no-op without a
//! recorder), so the same calls feed Prometheus here and CloudWatch's
//! Embedded Metric Format on AWS. The exporter keeps every value in
//! atomics: a scrape reads them and never waits for the store's writer or
//! takes the store's index lock. `prometheus-client` would have meant
//! passing registries through every crate.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use eventstore_http::MetricsRenderer;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Latency buckets (seconds): from half a millisecond (a page-cache read,
/// a fast `fdatasync`) to half a minute (a long poll).
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Appends per group commit: powers of two up to the writer's batch limit.
const COMMIT_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// Installs the process's recorder and starts its upkeep (draining
/// histogram samples into buckets every few seconds). Call once, before
/// the store opens so that its first values are kept.
pub fn install() -> anyhow::Result<MetricsRenderer> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .context("histogram buckets")?
        .set_buckets_for_metric(
            Matcher::Full(eventstore_embedded::metrics::COMMIT_APPENDS.into()),
            COMMIT_BUCKETS,
        )
        .context("histogram buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(Arc::new(move || handle.render()))
}

/// The `# HELP` line of each metric.
fn describe() {
    use eventstore_embedded::metrics as store;
    use eventstore_http::metrics as http;
    use metrics::Unit;
    metrics::describe_counter!(
        http::HTTP_REQUESTS,
        "Requests answered, by method, route template and status."
    );
    metrics::describe_histogram!(
        http::HTTP_REQUEST_SECONDS,
        Unit::Seconds,
        "Seconds from a request's arrival to its answer, by method, route template and status."
    );
    metrics::describe_counter!(
        http::APPENDS,
        "Appends asked of the store, by outcome: written, retry (recognised retry), conflict (expectation failed), duplicate, refused, failed."
    );
    metrics::describe_histogram!(
        http::APPEND_SECONDS,
        Unit::Seconds,
        "Seconds an append took in the store, by outcome."
    );
    metrics::describe_counter!(http::EVENTS_APPENDED, "Events written by appends.");
    metrics::describe_counter!(
        http::BYTES_APPENDED,
        Unit::Bytes,
        "Bytes of payload and metadata written by appends."
    );
    metrics::describe_gauge!(http::LONG_POLLS_OPEN, "Feed requests waiting for events.");
    metrics::describe_gauge!(
        http::READY,
        "1 when the store takes writes, 0 when not (set at each scrape)."
    );
    metrics::describe_histogram!(
        store::COMMIT_APPENDS,
        "Appends taken by one group commit (one write and one fdatasync)."
    );
    metrics::describe_histogram!(
        store::FDATASYNC_SECONDS,
        Unit::Seconds,
        "Seconds one fdatasync of the log took."
    );
    metrics::describe_gauge!(
        store::WRITER_QUEUE_DEPTH,
        "Appends handed to the writer and not yet answered."
    );
    metrics::describe_gauge!(
        store::FEED_HEAD_POSITION,
        "Position of the last durable event in the global feed."
    );
    metrics::describe_gauge!(store::STORE_EVENTS, "Events (positions) in the log.");
    metrics::describe_gauge!(store::STORE_STREAMS, "Streams in the store.");
    metrics::describe_gauge!(
        store::STORE_DISK_BYTES,
        Unit::Bytes,
        "Bytes of the log on disk."
    );
}
