//! CloudWatch metrics in the Embedded Metric Format (EMF): a
//! [`metrics::Recorder`] that keeps what the API router and the relay record
//! through the `metrics` facade during one invocation, and [`flush`]es it
//! as one JSON line on stdout at the invocation's end. CloudWatch Logs
//! turns those lines into metrics: no extra API call, no extra latency.
//!
//! Only the metrics named in [`EMF_METRICS`] are kept (a few per function,
//! without high-cardinality dimensions: custom metrics cost money); every
//! other facade metric is a no-op here. Each line carries one dimension,
//! `Function` (`api` or `relay`), and goes to the namespace in
//! `EVENT_STORE_METRICS_NAMESPACE` (default [`DEFAULT_NAMESPACE`]).
//!
//! The format: <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>;
//! `tests/emf.rs` checks every line against it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use eventstore_dynamodb::FeedEntry;
use metrics::{
    Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use serde_json::{Map, Value, json};

/// The namespace used when `EVENT_STORE_METRICS_NAMESPACE` is not set.
pub const DEFAULT_NAMESPACE: &str = "EventStore";
/// The most values one metric may carry in one EMF document.
pub const MAX_VALUES: usize = 100;

/// Counted when the relay handles a batch: its records (histogram).
pub const RELAY_BATCH_RECORDS: &str = "eventstore_relay_batch_records";
/// Seconds between the newest record's creation and its handling
/// (histogram).
pub const RELAY_NEWEST_AGE_SECONDS: &str = "eventstore_relay_newest_record_age_seconds";
/// Notifications by `result` (`published` or `failed`) (counter).
pub const RELAY_NOTIFICATIONS: &str = "eventstore_relay_notifications_total";
/// Feed positions the relay assigned (counter).
pub const RELAY_POSITIONS: &str = "eventstore_relay_positions_assigned_total";
/// DynamoDB requests answered with a throttling error (counter), as the
/// `eventstore-dynamodb` clients count them.
pub const DYNAMODB_THROTTLES: &str = eventstore_dynamodb::metrics::THROTTLES;

/// One metric of the EMF output: where it comes from and how it is shown.
#[derive(Debug, Clone, Copy)]
pub struct EmfMetric {
    /// The facade metric it is taken from.
    pub source: &'static str,
    /// The label it must carry (`(name, value)`), if any.
    pub label: Option<(&'static str, &'static str)>,
    /// Its name in CloudWatch.
    pub name: &'static str,
    /// Its CloudWatch unit.
    pub unit: &'static str,
    /// What a recorded value is multiplied by (seconds to milliseconds).
    pub scale: f64,
    /// Which function reports it.
    pub function: &'static str,
    /// A counter (summed over the invocation, 0 when untouched) rather
    /// than a distribution of values.
    pub counter: bool,
}

const fn m(
    function: &'static str,
    source: &'static str,
    label: Option<(&'static str, &'static str)>,
    name: &'static str,
    unit: &'static str,
    scale: f64,
    counter: bool,
) -> EmfMetric {
    EmfMetric {
        source,
        label,
        name,
        unit,
        scale,
        function,
        counter,
    }
}

use eventstore_http::metrics as http;

/// Every metric the functions report to CloudWatch.
pub const EMF_METRICS: &[EmfMetric] = &[
    m(
        "api",
        http::APPEND_SECONDS,
        None,
        "AppendLatency",
        "Milliseconds",
        1000.0,
        false,
    ),
    m(
        "api",
        http::APPENDS,
        Some(("outcome", "written")),
        "Appends",
        "Count",
        1.0,
        true,
    ),
    m(
        "api",
        http::EVENTS_APPENDED,
        None,
        "EventsAppended",
        "Count",
        1.0,
        true,
    ),
    m(
        "api",
        http::APPENDS,
        Some(("outcome", "conflict")),
        "Conflicts",
        "Count",
        1.0,
        true,
    ),
    m(
        "api",
        http::APPENDS,
        Some(("outcome", "retry")),
        "RetriesRecognised",
        "Count",
        1.0,
        true,
    ),
    m(
        "api",
        DYNAMODB_THROTTLES,
        None,
        "Throttles",
        "Count",
        1.0,
        true,
    ),
    m(
        "relay",
        RELAY_BATCH_RECORDS,
        None,
        "BatchSize",
        "Count",
        1.0,
        false,
    ),
    m(
        "relay",
        RELAY_NEWEST_AGE_SECONDS,
        None,
        "NewestRecordAge",
        "Milliseconds",
        1000.0,
        false,
    ),
    m(
        "relay",
        RELAY_NOTIFICATIONS,
        Some(("result", "published")),
        "NotificationsPublished",
        "Count",
        1.0,
        true,
    ),
    m(
        "relay",
        RELAY_NOTIFICATIONS,
        Some(("result", "failed")),
        "NotificationsFailed",
        "Count",
        1.0,
        true,
    ),
    m(
        "relay",
        RELAY_POSITIONS,
        None,
        "PositionsAssigned",
        "Count",
        1.0,
        true,
    ),
    m(
        "relay",
        DYNAMODB_THROTTLES,
        None,
        "Throttles",
        "Count",
        1.0,
        true,
    ),
];

/// The values recorded since the last flush, by EMF metric name.
#[derive(Default)]
struct Pending {
    counts: BTreeMap<&'static str, f64>,
    values: BTreeMap<&'static str, Vec<f64>>,
    touched: bool,
}

/// The recorder: keeps the [`EMF_METRICS`] of one function.
#[derive(Clone)]
pub struct EmfRecorder {
    function: &'static str,
    namespace: String,
    pending: Arc<Mutex<Pending>>,
}

impl std::fmt::Debug for EmfRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmfRecorder")
            .field("function", &self.function)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

struct Slot {
    metric: EmfMetric,
    pending: Arc<Mutex<Pending>>,
}

impl Slot {
    fn add(&self, value: f64) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.touched = true;
        let v = value * self.metric.scale;
        if self.metric.counter {
            *p.counts.entry(self.metric.name).or_default() += v;
        } else {
            p.values.entry(self.metric.name).or_default().push(v);
        }
    }
}

impl CounterFn for Slot {
    fn increment(&self, value: u64) {
        self.add(value as f64);
    }
    fn absolute(&self, value: u64) {
        self.add(value as f64);
    }
}

impl HistogramFn for Slot {
    fn record(&self, value: f64) {
        self.add(value);
    }
}

impl EmfRecorder {
    /// A recorder for `function` (`api` or `relay`) writing to `namespace`.
    pub fn new(function: &'static str, namespace: impl Into<String>) -> Self {
        Self {
            function,
            namespace: namespace.into(),
            pending: Arc::default(),
        }
    }

    /// The recorder for `function`, its namespace from the environment.
    pub fn from_env(function: &'static str) -> Self {
        let namespace = std::env::var("EVENT_STORE_METRICS_NAMESPACE")
            .ok()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        Self::new(function, namespace)
    }

    fn slot(&self, key: &Key) -> Option<Arc<Slot>> {
        let metric = EMF_METRICS.iter().find(|m| {
            m.function == self.function
                && m.source == key.name()
                && m.label
                    .is_none_or(|(k, v)| key.labels().any(|l| l.key() == k && l.value() == v))
        })?;
        Some(Arc::new(Slot {
            metric: *metric,
            pending: self.pending.clone(),
        }))
    }

    /// The EMF documents for what was recorded since the last call (none
    /// when nothing was), and forgets it. More than [`MAX_VALUES`] values
    /// of one metric are spread over several documents.
    pub fn take_lines(&self, timestamp_ms: i64) -> Vec<String> {
        let pending = {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::take(&mut *p)
        };
        if !pending.touched {
            return Vec::new();
        }
        let mine: Vec<&EmfMetric> = EMF_METRICS
            .iter()
            .filter(|m| m.function == self.function)
            .collect();
        let rounds = pending
            .values
            .values()
            .map(|v| v.len().div_ceil(MAX_VALUES))
            .max()
            .unwrap_or(1)
            .max(1);
        let mut lines = Vec::with_capacity(rounds);
        for round in 0..rounds {
            let mut doc = Map::new();
            let mut defs = Vec::new();
            for metric in &mine {
                let value = if metric.counter {
                    if round > 0 {
                        continue;
                    }
                    json!(pending.counts.get(metric.name).copied().unwrap_or(0.0))
                } else {
                    let values = pending
                        .values
                        .get(metric.name)
                        .map_or(&[][..], Vec::as_slice);
                    let chunk: Vec<f64> = values
                        .chunks(MAX_VALUES)
                        .nth(round)
                        .map(<[f64]>::to_vec)
                        .unwrap_or_default();
                    if chunk.is_empty() {
                        continue;
                    }
                    json!(chunk)
                };
                if doc.contains_key(metric.name) {
                    continue;
                }
                doc.insert(metric.name.to_owned(), value);
                defs.push(json!({"Name": metric.name, "Unit": metric.unit}));
            }
            if defs.is_empty() {
                continue;
            }
            doc.insert("Function".into(), json!(self.function));
            doc.insert(
                "_aws".into(),
                json!({
                    "Timestamp": timestamp_ms,
                    "CloudWatchMetrics": [{
                        "Namespace": self.namespace,
                        "Dimensions": [["Function"]],
                        "Metrics": defs,
                    }],
                }),
            );
            lines.push(Value::Object(doc).to_string());
        }
        lines
    }
}

impl Recorder for EmfRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.slot(key).map_or_else(Counter::noop, Counter::from_arc)
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.slot(key)
            .map_or_else(Histogram::noop, Histogram::from_arc)
    }
}

static INSTALLED: OnceLock<EmfRecorder> = OnceLock::new();

/// Installs the process's recorder for `function` (namespace from the
/// environment). Call once per cold start, before anything records; a
/// second call does nothing.
pub fn install(function: &'static str) {
    let recorder = INSTALLED.get_or_init(|| EmfRecorder::from_env(function));
    let _ = metrics::set_global_recorder(recorder.clone());
}

/// Prints what the invocation recorded as EMF lines on stdout (nothing when
/// it recorded nothing or no recorder is installed). Call at the end of
/// every invocation.
pub fn flush() {
    if let Some(recorder) = INSTALLED.get() {
        let now = chrono_now_ms();
        for line in recorder.take_lines(now) {
            println!("{line}");
        }
    }
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Records what the relay did with one batch: its size, the age of its
/// newest record (`None` when it had none), and its notifications.
pub fn relay_batch(
    records: usize,
    newest_age_seconds: Option<f64>,
    published: usize,
    failed: usize,
) {
    metrics::histogram!(RELAY_BATCH_RECORDS).record(records as f64);
    if let Some(age) = newest_age_seconds {
        metrics::histogram!(RELAY_NEWEST_AGE_SECONDS).record(age.max(0.0));
    }
    metrics::counter!(RELAY_NOTIFICATIONS, "result" => "published").increment(published as u64);
    metrics::counter!(RELAY_NOTIFICATIONS, "result" => "failed").increment(failed as u64);
}

/// Records the feed positions a relay call assigned.
pub fn positions_assigned(entries: &[FeedEntry]) {
    metrics::counter!(RELAY_POSITIONS).increment(entries.iter().map(|e| e.count).sum());
}

/// Seconds since the newest record of a batch was written (by its
/// approximate creation time), or `None` for an empty batch.
pub fn newest_record_age(event: &aws_lambda_events::dynamodb::TimeWindowEvent) -> Option<f64> {
    let newest = event
        .dynamo_db_event
        .records
        .iter()
        .map(|r| r.change.approximate_creation_date_time)
        .max()?;
    let now = std::time::SystemTime::now();
    let newest = std::time::SystemTime::UNIX_EPOCH
        + std::time::Duration::from_millis(u64::try_from(newest.timestamp_millis()).unwrap_or(0));
    Some(now.duration_since(newest).map_or(0.0, |d| d.as_secs_f64()))
}
