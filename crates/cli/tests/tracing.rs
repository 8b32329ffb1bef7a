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
