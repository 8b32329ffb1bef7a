//! Black-box tests of `event-store serve`: the built binary on port 0 with
//! a fresh data directory per test, driven over HTTP.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

mod support;

use support::{BIN, Server, wait_with_timeout};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn send(
    c: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
    key: Option<&str>,
) -> (u16, Value) {
    let mut req = c.request(method, url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    assert!(resp.headers().contains_key("x-request-id"));
    let text = resp.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

fn data_args(dir: &Path) -> Vec<String> {
    vec![
        "serve".into(),
        "--port".into(),
        "0".into(),
        "--data-dir".into(),
        dir.display().to_string(),
    ]
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// What the contract suite's original flow wrote is all there after a
/// restart on the same data directory (the flow itself runs on every
/// target in `contract.rs`).
#[tokio::test(flavor = "multi_thread")]
async fn a_restart_keeps_what_the_original_flow_wrote() {
    use eventstore_testkit::contract::{self, Profile, Target};
    let dir = tempfile::tempdir().unwrap();
    let args = data_args(dir.path());
    let server = Server::start(BIN, &as_strs(&args), &[]);
    let target = Target::new(&server.url, Profile::consistent("embedded", None), ());
    contract::original_flow(&target).await;
    contract::batch_expectations(&target).await;
    let c = client();
    let snapshot = async |base: &str| {
        let mut out = Vec::new();
        for path in ["/events?limit=1000", "/streams"] {
            let (s, body) = send(
                &c,
                reqwest::Method::GET,
                format!("{base}{path}"),
                None,
                None,
            )
            .await;
            assert_eq!(s, 200, "{body}");
            out.push(body);
        }
        out
    };
    let before = snapshot(&server.url).await;
    assert!(before[0]["eventPage"]["events"].as_array().unwrap().len() >= 8);
    server.stop();

    // Same data directory, new process: everything is still there.
    let server = Server::start(BIN, &as_strs(&args), &[]);
    assert_eq!(snapshot(&server.url).await, before);
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_during_a_burst_keeps_every_acknowledged_append() {
    let dir = tempfile::tempdir().unwrap();
    let args = data_args(dir.path());
    let mut server = Server::start(BIN, &as_strs(&args), &[]);
    let base = server.url.clone();
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let mut tasks = vec![];
    for w in 0..8 {
        let base = base.clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let c = client();
            for i in 0..100_000u64 {
                let event_id = uuid::Uuid::now_v7().to_string();
                let stream = format!("s{}", (w * 7 + i) % 5);
                let r = c
                    .post(format!("{base}/streams/burst/{stream}/events"))
                    .json(&json!({"expectedRevision": "any",
                        "events": [{"eventType": "tick", "payload": {"w": w, "i": i}, "eventId": event_id}]}))
                    .send()
                    .await;
                match r {
                    Ok(resp) if resp.status().is_success() => {
                        acked.lock().unwrap().push((stream, event_id));
                    }
                    Ok(resp) => {
                        // Refused while shutting down is fine; anything else is not.
                        assert_eq!(resp.status().as_u16(), 503, "{:?}", resp.text().await);
                    }
                    Err(_) => break, // the server has gone away
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.terminate();
    for t in tasks {
        t.await.unwrap();
    }
    let status = wait_with_timeout(&mut server.child, Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
    drop(server);
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 10,
        "the burst made progress ({} appends)",
        acked.len()
    );

    let server = Server::start(BIN, &as_strs(&args), &[]);
    let c = client();
    let mut stored = std::collections::HashSet::new();
    for s in 0..5 {
        let mut after = 0;
        loop {
            let (code, page) = send(
                &c,
                reqwest::Method::GET,
                format!(
                    "{}/streams/burst/s{s}/events?limit=1000&after-revision={after}",
                    server.url
                ),
                None,
                None,
            )
            .await;
            if code == 404 {
                break;
            }
            assert_eq!(code, 200);
            for e in page["eventPage"]["events"].as_array().unwrap() {
                stored.insert((format!("s{s}"), e["eventId"].as_str().unwrap().to_owned()));
            }
            after = page["eventPage"]["lastEvaluatedRevision"].as_u64().unwrap();
            if page["eventPage"]["hasMore"] == false {
                break;
            }
        }
    }
    let missing: Vec<_> = acked.iter().filter(|a| !stored.contains(*a)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged appends lost: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    println!(
        "{} acknowledged appends, {} stored",
        acked.len(),
        stored.len()
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn api_keys_from_flags_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = data_args(dir.path());
    args.extend([
        "--api-key".into(),
        "first".into(),
        "--api-key".into(),
        "second".into(),
    ]);
    let c = client();
    use reqwest::Method as M;
    for (server, keys) in [
        (
            Server::start(BIN, &as_strs(&args), &[]),
            ["first", "second"],
        ),
        (
            Server::start(
                BIN,
                &["--port", "0", "--backend", "memory"],
                &[("EVENT_STORE_API_KEYS", "alpha, beta")],
            ),
            ["alpha", "beta"],
        ),
    ] {
        let base = &server.url;
        let (s, _) = send(&c, M::GET, format!("{base}/liveness-check"), None, None).await;
        assert_eq!(s, 200);
        let (s, body) = send(&c, M::GET, format!("{base}/streams"), None, None).await;
        assert_eq!(s, 401);
        assert_eq!(body["code"], "unauthorized");
        let (s, _) = send(&c, M::GET, format!("{base}/streams"), None, Some("wrong")).await;
        assert_eq!(s, 401);
        for k in keys {
            let (s, _) = send(&c, M::GET, format!("{base}/streams"), None, Some(k)).await;
            assert_eq!(s, 200, "key {k}");
        }
        let log = server.stop();
        for k in keys {
            assert!(!log.contains(k), "the key {k} appears in the log");
        }
    }
    // No key configured: open.
    let server = Server::start(BIN, &["--port", "0", "--backend", "memory"], &[]);
    let (s, _) = send(&c, M::GET, format!("{}/streams", server.url), None, None).await;
    assert_eq!(s, 200);
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_environment_settings_and_a_locked_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let dir_text = dir.path().display().to_string();
    // Settings from the environment, JSON logs, no subcommand.
    let server = Server::start(
        BIN,
        &[],
        &[
            ("EVENT_STORE_PORT", "0"),
            ("EVENT_STORE_DATA_DIR", &dir_text),
            ("EVENT_STORE_LOG_FORMAT", "json"),
        ],
    );
    assert!(server.url.starts_with("http://127.0.0.1:"));
    let c = client();
    let resp = c
        .get(format!("{}/streams/-bad/s1/details", server.url))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    // A second server on the same data directory is refused, clearly.
    let err = Server::try_start(BIN, &["--port", "0", "--data-dir", &dir_text], &[])
        .err()
        .expect("a second server on the same directory must fail");
    assert!(!err.0.unwrap().success());
    assert!(
        err.1.to_lowercase().contains("lock") || err.1.contains("in use"),
        "{}",
        err.1
    );

    let log = server.stop();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 3, "{log}");
    let mut saw_request = false;
    for line in &lines {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
        if v["span"]["request_id"] == "trace-me-42" {
            saw_request = true;
            assert_eq!(v["span"]["path"], "/streams/-bad/s1/details");
        }
    }
    assert!(saw_request, "a log line carries the request id: {log}");
    // The data directory was created and used.
    assert!(dir.path().read_dir().unwrap().next().is_some());
}
