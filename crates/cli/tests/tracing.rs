//! W3C trace context through the built binary: a request's `traceparent`
//! keeps its trace id in the answer's `traceparent` (with this server's
//! span id) and in the JSON log line of the request, next to the request
//! id; a request without one starts a new trace; an invalid one is ignored.

mod support;

use std::time::Duration;

use support::{BIN, Server};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn parts(header: &str) -> Vec<String> {
    header.split('-').map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_is_kept_in_the_answer_and_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let server = Server::start(
        BIN,
        &[
            "serve",
            "--port",
            "0",
            "--data-dir",
            &data,
            "--log-format",
            "json",
            "--log-level",
            "info,access=debug",
        ],
        &[],
    );
    let c = reqwest::Client::new();
    let r = c
        .post(format!("{}/streams/traced", server.url))
        .header("traceparent", format!("00-{TRACE}-{PARENT}-01"))
        .header("x-request-id", "req-traced-1")
        .json(&serde_json::json!({"initialEvent": {"eventType": "E", "payload": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let answer = parts(r.headers()["traceparent"].to_str().unwrap());
    assert_eq!(answer.len(), 4);
    assert_eq!(answer[0], "00");
    assert_eq!(answer[1], TRACE, "the caller's trace id");
    assert_eq!(answer[2].len(), 16);
    assert_ne!(answer[2], PARENT, "this server's own span id");
    assert_eq!(answer[3], "01");
    assert_eq!(r.headers()["x-request-id"], "req-traced-1");

    // Without one (and with an invalid one), a new trace each time.
    let mut seen = Vec::new();
    for header in [None, Some("00-zz-00f067aa0ba902b7-01")] {
        let mut req = c.get(format!("{}/liveness-check", server.url));
        if let Some(h) = header {
            req = req.header("traceparent", h);
        }
        let r = req.send().await.unwrap();
        let p = parts(r.headers()["traceparent"].to_str().unwrap());
        assert_eq!(p[1].len(), 32);
        assert_ne!(p[1], TRACE);
        assert!(!p[1].bytes().all(|b| b == b'0'));
        seen.push(p[1].clone());
    }
    assert_ne!(seen[0], seen[1], "a new trace id per request");

    // The request's log line carries both ids.
    let mut found = false;
    for _ in 0..100 {
        let log = server.stderr.lock().unwrap().clone();
        found = log.lines().any(|l| {
            l.contains("request finished")
                && l.contains(&format!("\"trace_id\":\"{TRACE}\""))
                && l.contains("\"request_id\":\"req-traced-1\"")
                && l.contains(&format!("\"parent_span_id\":\"{PARENT}\""))
        });
        if found {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(found, "{}", server.stderr.lock().unwrap());
    server.stop();
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            let pair = hex.get(i..i + 2).unwrap();
            u8::from_str_radix(pair, 16).unwrap()
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether an OTLP protobuf body holds a span named `name`: the span's
/// `name` is its field 5, a length-delimited string (tag byte `0x2a`).
fn has_span(bodies: &[u8], name: &str) -> bool {
    let mut field = vec![0x2a, u8::try_from(name.len()).unwrap()];
    field.extend_from_slice(name.as_bytes());
    contains(bodies, &field)
}

/// A small OTLP/HTTP collector that keeps the protobuf bodies it
/// receives: its endpoint and what it received.
async fn collector() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>) {
    use std::sync::{Arc, Mutex};
    let received: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let kept = received.clone();
    let collector = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                kept.lock().unwrap().push(body.to_vec());
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, collector).await.unwrap() });

    (endpoint, received)
}

/// `--otlp-endpoint` exports the spans to a collector (here a small HTTP
/// endpoint that keeps the OTLP/HTTP protobuf bodies it receives): the
/// request's span in the caller's trace with the caller's span as parent,
/// and the handler's and the store call's spans under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_export_carries_the_callers_trace_and_the_store_call() {
    let (endpoint, received) = collector().await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let server = Server::start(
        BIN,
        &[
            "serve",
            "--port",
            "0",
            "--data-dir",
            &data,
            "--otlp-endpoint",
            &endpoint,
        ],
        &[],
    );
    let r = reqwest::Client::new()
        .post(format!("{}/streams/traced", server.url))
        .header("traceparent", format!("00-{TRACE}-{PARENT}-01"))
        .json(&serde_json::json!({"initialEvent": {"eventType": "E", "payload": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let answer = parts(r.headers()["traceparent"].to_str().unwrap());
    assert_eq!(answer[1], TRACE);
    let span_id = answer[2].clone();
    assert_ne!(span_id, PARENT);
    // A clean stop exports what is buffered.
    server.stop();
    let bodies = received.lock().unwrap().concat();
    assert!(!bodies.is_empty(), "the collector received spans");
    assert!(
        contains(&bodies, &hex_bytes(TRACE)),
        "the caller's trace id"
    );
    assert!(
        contains(&bodies, &hex_bytes(PARENT)),
        "the caller's span as parent"
    );
    assert!(
        contains(&bodies, &hex_bytes(&span_id)),
        "the span the answer named"
    );
    for name in ["request", "create_stream", "append", "fdatasync"] {
        assert!(has_span(&bodies, name), "a span named {name}");
    }
    assert!(
        contains(&bodies, b"event-store"),
        "the service's resource name"
    );
}

/// On the DynamoDB backend, the SDK's calls are exported under the store
/// call: the operation spans the AWS SDK names `DynamoDB.<Operation>`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_export_carries_the_dynamodb_calls_under_the_store_call() {
    use eventstore_testkit::moto;
    let (endpoint, received) = collector().await;
    let env = moto::aws_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let table = format!("traced-{}", uuid::Uuid::now_v7().simple());
    let created =
        eventstore_testkit::process::command(BIN, &["dynamodb", "create-table", &table], &env)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
    assert!(created.status.success(), "{created:?}");
    let args = [
        "serve",
        "--backend",
        "dynamodb",
        "--table",
        &table,
        "--port",
        "0",
        "--otlp-endpoint",
        &endpoint,
    ];
    let server = Server::spawn(eventstore_testkit::process::command(BIN, &args, &env))
        .unwrap_or_else(|(status, err)| panic!("server did not start ({status:?}): {err}"));
    let r = reqwest::Client::new()
        .post(format!("{}/streams/traced", server.url))
        .header("traceparent", format!("00-{TRACE}-{PARENT}-01"))
        .json(&serde_json::json!({"initialEvent": {"eventType": "E", "payload": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    server.stop();
    let bodies = received.lock().unwrap().concat();
    assert!(
        contains(&bodies, &hex_bytes(TRACE)),
        "the caller's trace id"
    );
    for name in ["request", "append", "DynamoDB.TransactWriteItems"] {
        assert!(has_span(&bodies, name), "a span named {name}");
    }
}

/// At the default level the access log has a line for a refused request
/// (with its request id) and none for an answered one; `access=debug`
/// (the test above) adds those.
#[tokio::test]
async fn the_default_access_log_keeps_refusals_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let server = Server::start(
        BIN,
        &[
            "serve",
            "--port",
            "0",
            "--data-dir",
            &data,
            "--log-format",
            "json",
        ],
        &[("RUST_LOG", "info")],
    );
    let c = reqwest::Client::new();
    let r = c
        .post(format!("{}/streams/quiet", server.url))
        .header("x-request-id", "req-answered-1")
        .json(&serde_json::json!({"initialEvent": {"eventType": "E", "payload": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = c
        .get(format!(
            "{}/streams/quiet/no-such-stream/details",
            server.url
        ))
        .header("x-request-id", "req-refused-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let mut log = String::new();
    for _ in 0..100 {
        log = server.stderr.lock().unwrap().clone();
        if log.contains("req-refused-1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let finished = |id: &str| {
        log.lines()
            .any(|l| l.contains("request finished") && l.contains(id))
    };
    assert!(finished("req-refused-1"), "{log}");
    assert!(!finished("req-answered-1"), "{log}");
    server.stop();
}
