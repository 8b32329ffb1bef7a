//! The Lambda functions' CloudWatch metrics: every line the EMF recorder
//! writes is checked against the Embedded Metric Format specification
//! (a validator written from it, below, that itself is shown to refuse
//! what the specification forbids), and carries exactly what the
//! invocation did.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use eventstore_core::MemoryStore;
use eventstore_lambda::emf::{EMF_METRICS, EmfRecorder};
use serde_json::{Value, json};
use tower::ServiceExt;

/// The units CloudWatch accepts (`MetricDatum.Unit`).
const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// Checks one log line against the EMF specification: a JSON object whose
/// `_aws` member has an integer `Timestamp` (ms since the epoch) and a
/// `CloudWatchMetrics` array of directives; each directive has a
/// `Namespace` (1–1024 characters), `Dimensions` (an array of dimension
/// sets, each an array of at most 30 dimension names, each a top-level
/// member whose value is a string) and `Metrics` (at most 100 definitions,
/// each with a `Name` (1–1024 characters) that is a top-level member
/// holding a number or an array of at most 100 numbers, an optional `Unit`
/// from CloudWatch's list and an optional `StorageResolution` of 1 or 60).
fn validate_emf(line: &str) -> Result<Value, String> {
    let doc: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let root = doc.as_object().ok_or("the root is not an object")?;
    let aws = root
        .get("_aws")
        .and_then(Value::as_object)
        .ok_or("no _aws object")?;
    let ts = aws.get("Timestamp").ok_or("no _aws.Timestamp")?;
    if !(ts.is_i64() || ts.is_u64()) || ts.as_i64().is_none_or(|t| t < 0) {
        return Err(format!(
            "_aws.Timestamp is not a non-negative integer: {ts}"
        ));
    }
    let directives = aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .ok_or("no _aws.CloudWatchMetrics array")?;
    if directives.is_empty() {
        return Err("CloudWatchMetrics is empty".into());
    }
    for d in directives {
        let d = d.as_object().ok_or("a directive is not an object")?;
        let ns = d
            .get("Namespace")
            .and_then(Value::as_str)
            .ok_or("a directive has no Namespace string")?;
        if ns.is_empty() || ns.chars().count() > 1024 || ns.trim().is_empty() {
            return Err(format!("bad Namespace {ns:?}"));
        }
        let sets = d
            .get("Dimensions")
            .and_then(Value::as_array)
            .ok_or("a directive has no Dimensions array")?;
        for set in sets {
            let set = set.as_array().ok_or("a dimension set is not an array")?;
            if set.len() > 30 {
                return Err(format!(
                    "a dimension set has {} dimensions (max 30)",
                    set.len()
                ));
            }
            for dim in set {
                let name = dim.as_str().ok_or("a dimension name is not a string")?;
                match root.get(name) {
                    Some(Value::String(v)) if !v.is_empty() && v.chars().count() <= 1024 => {}
                    Some(other) => {
                        return Err(format!("dimension {name} is not a string value: {other}"));
                    }
                    None => return Err(format!("dimension {name} is not a top-level member")),
                }
            }
        }
        let metrics = d
            .get("Metrics")
            .and_then(Value::as_array)
            .ok_or("a directive has no Metrics array")?;
        if metrics.len() > 100 {
            return Err(format!("{} metric definitions (max 100)", metrics.len()));
        }
        for m in metrics {
            let m = m
                .as_object()
                .ok_or("a metric definition is not an object")?;
            let name = m
                .get("Name")
                .and_then(Value::as_str)
                .ok_or("a metric definition has no Name string")?;
            if name.is_empty() || name.chars().count() > 1024 {
                return Err(format!("bad metric name {name:?}"));
            }
            if let Some(unit) = m.get("Unit") {
                let unit = unit.as_str().ok_or("Unit is not a string")?;
                if !UNITS.contains(&unit) {
                    return Err(format!("unknown unit {unit}"));
                }
            }
            if let Some(res) = m.get("StorageResolution")
                && res.as_i64() != Some(1)
                && res.as_i64() != Some(60)
            {
                return Err(format!("StorageResolution {res} is neither 1 nor 60"));
            }
            match root.get(name) {
                Some(Value::Number(_)) => {}
                Some(Value::Array(values)) => {
                    if values.len() > 100 {
                        return Err(format!("{name} has {} values (max 100)", values.len()));
                    }
                    if !values.iter().all(Value::is_number) {
                        return Err(format!("{name} has a value that is not a number"));
                    }
                }
                Some(other) => return Err(format!("metric {name} is not numeric: {other}")),
                None => return Err(format!("metric {name} is not a top-level member")),
            }
        }
    }
    Ok(doc)
}

/// One way to break a valid document.
type Breaker = Box<dyn Fn(&mut Value)>;

fn valid() -> Value {
    json!({
        "_aws": {"Timestamp": 1_700_000_000_000_i64, "CloudWatchMetrics": [{
            "Namespace": "N", "Dimensions": [["Function"]],
            "Metrics": [{"Name": "A", "Unit": "Count"}]}]},
        "Function": "api", "A": 1
    })
}

#[test]
fn the_validator_refuses_what_the_specification_forbids() {
    assert!(validate_emf(&valid().to_string()).is_ok());
    let broken: Vec<(&str, Breaker)> = vec![
        (
            "no timestamp",
            Box::new(|v| {
                v["_aws"].as_object_mut().unwrap().remove("Timestamp");
            }),
        ),
        (
            "string timestamp",
            Box::new(|v| v["_aws"]["Timestamp"] = json!("now")),
        ),
        (
            "no directives",
            Box::new(|v| v["_aws"]["CloudWatchMetrics"] = json!([])),
        ),
        (
            "no namespace",
            Box::new(|v| {
                v["_aws"]["CloudWatchMetrics"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("Namespace");
            }),
        ),
        (
            "dimension not top-level",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("Function");
            }),
        ),
        (
            "dimension not a string",
            Box::new(|v| v["Function"] = json!(3)),
        ),
        (
            "31 dimensions",
            Box::new(|v| {
                let names: Vec<String> = (0..31).map(|i| format!("D{i}")).collect();
                for n in &names {
                    v[n] = json!("x");
                }
                v["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = json!([names]);
            }),
        ),
        (
            "metric not top-level",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("A");
            }),
        ),
        ("metric a string", Box::new(|v| v["A"] = json!("1"))),
        (
            "array with a string",
            Box::new(|v| v["A"] = json!([1, "2"])),
        ),
        ("101 values", Box::new(|v| v["A"] = json!(vec![1; 101]))),
        (
            "101 metrics",
            Box::new(|v| {
                let defs: Vec<Value> = (0..101).map(|i| json!({"Name": format!("M{i}")})).collect();
                for i in 0..101 {
                    v[format!("M{i}")] = json!(1);
                }
                v["_aws"]["CloudWatchMetrics"][0]["Metrics"] = json!(defs);
            }),
        ),
        (
            "unknown unit",
            Box::new(|v| v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = json!("Apples")),
        ),
        (
            "bad resolution",
            Box::new(|v| {
                v["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["StorageResolution"] = json!(5)
            }),
        ),
    ];
    for (what, breaks) in broken {
        let mut v = valid();
        breaks(&mut v);
        assert!(validate_emf(&v.to_string()).is_err(), "accepted: {what}");
    }
}

async fn call(app: &axum::Router, method: &str, uri: &str, body: &str) -> u16 {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    app.clone().oneshot(req).await.unwrap().status().as_u16()
}

/// The API function's line after appends through the shared router: one
/// written append of three events, a recognised retry of it, a conflict.
#[tokio::test]
async fn the_api_functions_lines_follow_the_specification_and_count_what_happened() {
    let recorder = EmfRecorder::new("api", "EventStore/test");
    metrics::set_global_recorder(recorder.clone()).unwrap();
    let app = eventstore_http::router(eventstore_http::AppState::new(Arc::new(MemoryStore::new())));

    assert_eq!(call(&app, "GET", "/liveness-check", "").await, 200);
    assert!(
        recorder.take_lines(1).is_empty(),
        "nothing to report, no line"
    );

    let three = r#"{"expectedRevision":"no-stream","events":[
        {"eventId":"0193a5c8-0000-7000-8000-000000000001","eventType":"E","payload":1},
        {"eventId":"0193a5c8-0000-7000-8000-000000000002","eventType":"E","payload":2},
        {"eventId":"0193a5c8-0000-7000-8000-000000000003","eventType":"E","payload":3}]}"#;
    assert_eq!(
        call(&app, "POST", "/streams/t/s-1/events", three).await,
        201
    );
    assert_eq!(
        call(&app, "POST", "/streams/t/s-1/events", three).await,
        200
    );
    let conflict = r#"{"expectedRevision":1,"events":[{"eventType":"E","payload":4}]}"#;
    assert_eq!(
        call(&app, "POST", "/streams/t/s-1/events", conflict).await,
        409
    );

    let lines = recorder.take_lines(1_764_000_000_000);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let doc = validate_emf(&lines[0]).unwrap_or_else(|e| panic!("{e}: {}", lines[0]));
    assert_eq!(doc["_aws"]["Timestamp"], 1_764_000_000_000_i64);
    assert_eq!(
        doc["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "EventStore/test"
    );
    assert_eq!(doc["Function"], "api");
    assert_eq!(doc["Appends"], 1.0);
    assert_eq!(doc["EventsAppended"], 3.0);
    assert_eq!(doc["Conflicts"], 1.0);
    assert_eq!(doc["RetriesRecognised"], 1.0);
    assert_eq!(doc["Throttles"], 0.0);
    let latencies = doc["AppendLatency"].as_array().unwrap();
    assert_eq!(latencies.len(), 3, "one per append asked");
    assert!(latencies.iter().all(|v| v.as_f64().unwrap() >= 0.0));
    // Every metric the function declares is defined with its unit, and
    // nothing identifying (stream ids, payloads) is in the line.
    let defs = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        .as_array()
        .unwrap();
    for m in EMF_METRICS.iter().filter(|m| m.function == "api") {
        assert!(
            defs.iter()
                .any(|d| d["Name"] == m.name && d["Unit"] == m.unit),
            "{} missing",
            m.name
        );
    }
    assert!(!lines[0].contains("s-1"));
    assert!(recorder.take_lines(2).is_empty(), "taken once");

    // More than 100 latencies in one invocation spread over several lines.
    for i in 0..150 {
        let body =
            format!(r#"{{"expectedRevision":"any","events":[{{"eventType":"E","payload":{i}}}]}}"#);
        let req = Request::builder()
            .method("POST")
            .uri("/streams/t/s-2/events")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        assert_eq!(app.clone().oneshot(req).await.unwrap().status(), 201);
    }
    let lines = recorder.take_lines(3);
    assert_eq!(lines.len(), 2);
    let docs: Vec<Value> = lines.iter().map(|l| validate_emf(l).unwrap()).collect();
    let n: usize = docs
        .iter()
        .map(|d| d["AppendLatency"].as_array().unwrap().len())
        .sum();
    assert_eq!(n, 150);
    assert_eq!(docs[0]["EventsAppended"], 150.0);
    assert!(docs[1].get("EventsAppended").is_none(), "counters once");
}

#[test]
fn the_relay_functions_line_follows_the_specification() {
    let recorder = EmfRecorder::new("relay", "EventStore/test");
    metrics::with_local_recorder(&recorder, || {
        eventstore_lambda::emf::relay_batch(7, Some(1.5), 6, 1);
        eventstore_lambda::emf::positions_assigned(&[]);
    });
    let lines = recorder.take_lines(5);
    assert_eq!(lines.len(), 1);
    let doc = validate_emf(&lines[0]).unwrap_or_else(|e| panic!("{e}: {}", lines[0]));
    assert_eq!(doc["Function"], "relay");
    assert_eq!(doc["BatchSize"], json!([7.0]));
    assert_eq!(doc["NewestRecordAge"], json!([1500.0]));
    assert_eq!(doc["NotificationsPublished"], 6.0);
    assert_eq!(doc["NotificationsFailed"], 1.0);
    assert_eq!(doc["PositionsAssigned"], 0.0);
    assert!(
        doc.get("AppendLatency").is_none(),
        "the API's metrics are not the relay's"
    );
}
