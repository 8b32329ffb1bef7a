//! Readiness while the store opens. The server binds its port before it
//! opens the store: until the store is open, `/readiness-check` and every
//! store call answer 503 (readiness naming the opening), while
//! `/liveness-check` answers 200.
//!
//! Two views: the gate the server serves, held shut in-process for as long
//! as the test wants (deterministic), and the built binary opening a data
//! directory large enough to take a moment, watched from its first line.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventstore_core::{
    AppendRequest, EventStore, EventType, Expectation, GatedStore, JsonValue, NewEvent, StreamId,
    StreamKey, StreamType,
};
use eventstore_embedded::vfs::SimFs;
use eventstore_embedded::{EmbeddedOptions, EmbeddedStore};
use metrics_exporter_prometheus::PrometheusBuilder;

const BIN: &str = env!("CARGO_BIN_EXE_event-store");

async fn get(c: &reqwest::Client, url: &str) -> (u16, String) {
    let r = c.get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// `POST /streams/order` with one event.
async fn create(c: &reqwest::Client, url: &str) -> reqwest::Response {
    c.post(format!("{url}/streams/order"))
        .json(&serde_json::json!({"initialEvent": {"eventType": "Placed", "payload": 1}}))
        .send()
        .await
        .unwrap()
}

fn ready_gauge(metrics: &str) -> String {
    metrics
        .lines()
        .find(|l| l.starts_with("eventstore_ready "))
        .unwrap_or("")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_is_still_opening_is_not_ready_and_answers_503_then_serves() {
    let handle = PrometheusBuilder::new().install_recorder().unwrap();
    let render: eventstore_http::MetricsRenderer = Arc::new(move || handle.render());
    let gate = Arc::new(GatedStore::new("opening the data directory /sim/open"));
    let state = eventstore_http::AppState::new(gate.clone()).with_metrics(render);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, eventstore_http::router(state))
            .await
            .unwrap();
    });
    let c = reqwest::Client::new();

    // Opening: not ready, and every store call is a 503 that says why.
    let (status, body) = get(&c, &format!("{url}/readiness-check")).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("opening the data directory"), "{body}");
    assert_eq!(get(&c, &format!("{url}/liveness-check")).await.0, 200);
    let metrics = get(&c, &format!("{url}/metrics")).await.1;
    assert_eq!(ready_gauge(&metrics), "eventstore_ready 0");
    let append = create(&c, &url).await;
    assert_eq!(append.status(), 503);
    assert!(append.headers().contains_key("x-request-id"));
    let body: serde_json::Value = append.json().await.unwrap();
    assert_eq!(body["code"], "unavailable", "{body}");
    for path in [
        "/streams",
        "/streams/order",
        "/events",
        "/streams/order/o-1/details",
    ] {
        let (status, body) = get(&c, &format!("{url}{path}")).await;
        assert_eq!(status, 503, "{path}: {body}");
    }

    // Opened: ready, and the store takes writes.
    let fs = SimFs::new(3);
    let store = EmbeddedStore::open_with(
        PathBuf::from("/sim/open"),
        EmbeddedOptions {
            fs: Arc::new(fs),
            ..EmbeddedOptions::default()
        },
    )
    .unwrap();
    let store = Arc::new(store);
    gate.install(store.clone());
    assert_eq!(get(&c, &format!("{url}/readiness-check")).await.0, 200);
    let metrics = get(&c, &format!("{url}/metrics")).await.1;
    assert_eq!(ready_gauge(&metrics), "eventstore_ready 1");
    let append = create(&c, &url).await;
    assert_eq!(append.status(), 201);
    task.abort();
    store.close().await;
}

/// Writes `n` events into `dir`: 20 writers, each appending batches of
/// 100 events to its own 5 streams.
async fn fill(dir: &std::path::Path, n: usize) {
    let store = Arc::new(EmbeddedStore::open(dir).unwrap());
    let payload = JsonValue::from_text(format!("{{\"pad\":\"{}\"}}", "x".repeat(80))).unwrap();
    let writers: Vec<_> = (0..20)
        .map(|w| {
            let store = store.clone();
            let payload = payload.clone();
            tokio::spawn(async move {
                let ty = StreamType::parse("load").unwrap();
                for batch in 0..n / 100 / 20 {
                    let id = StreamId::parse(format!("s-{w}-{}", batch % 5)).unwrap();
                    let events = (0..100)
                        .map(|_| {
                            NewEvent::new(EventType::parse("Loaded").unwrap(), payload.clone())
                        })
                        .collect();
                    let key = StreamKey::new(ty.clone(), id);
                    let request = AppendRequest::new(key, Expectation::Any, events).unwrap();
                    store.append(request).await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_answers_from_its_first_line_and_is_ready_once_it_says_listening() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path(), 200_000).await;

    let mut child = Command::new(BIN)
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let url = first
        .strip_prefix("starting on ")
        .and_then(|rest| rest.strip_suffix(": opening the store"))
        .unwrap_or_else(|| panic!("first line: {first}"))
        .to_owned();

    // From the first line on, the port answers (never a refused
    // connection): 503 naming the opening until the store is open, 200
    // from then on.
    let c = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut answers = Vec::new();
    let listening = loop {
        assert!(Instant::now() < deadline, "never listening: {answers:?}");
        let (status, body) = get(&c, &format!("{url}/readiness-check")).await;
        assert!(
            status == 200 || (status == 503 && body.contains("opening the data directory")),
            "{status} {body}"
        );
        answers.push(status);
        if let Ok(line) = rx.try_recv() {
            break line;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(listening, format!("listening on {url}"));
    assert!(
        answers.windows(2).all(|w| !(w[0] == 200 && w[1] == 503)),
        "once ready, it stays ready: {answers:?}"
    );
    assert_eq!(get(&c, &format!("{url}/readiness-check")).await.0, 200);
    let (status, body) = get(&c, &format!("{url}/streams/load/s-7-3/details")).await;
    assert_eq!(status, 200, "{body}");
    eprintln!(
        "readiness answers while opening 200,000 events: {} × 503, then 200",
        answers.iter().filter(|s| **s == 503).count()
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
