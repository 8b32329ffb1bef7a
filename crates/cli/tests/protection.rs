//! Black-box tests of the server's defences against slow, idle, greedy or
//! cross-site clients: the built binary on port 0, driven over raw TCP
//! where a well-behaved HTTP client cannot misbehave enough.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;

use support::{BIN, Server, wait_with_timeout};

fn memory(extra: &[&str]) -> Server {
    let mut args = vec!["serve", "--port", "0", "--backend", "memory"];
    args.extend_from_slice(extra);
    Server::start(BIN, &args, &[])
}

fn addr(server: &Server) -> String {
    server.url.trim_start_matches("http://").to_owned()
}

/// Reads until the peer closes the connection (EOF or reset) and returns
/// the bytes and how long it took; panics if it is still open after
/// `limit`.
fn read_until_closed(tcp: &mut TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    tcp.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                break;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!(
                    "the server kept the connection open for {:?} (got {:?})",
                    started.elapsed(),
                    String::from_utf8_lossy(&got)
                );
            }
            Err(e) => panic!("read: {e}"),
        }
        assert!(started.elapsed() < limit, "still open after {limit:?}");
    }
    (got, started.elapsed())
}

fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_half_sent_header_is_closed_within_the_header_timeout() {
    let server = memory(&["--header-timeout", "1"]);
    let mut half = TcpStream::connect(addr(&server)).unwrap();
    half.write_all(b"GET /liveness-check HTTP/1.1\r\nhost: x\r\nx-slow: ")
        .unwrap();
    let mut silent = TcpStream::connect(addr(&server)).unwrap();
    let (_, took) = read_until_closed(&mut half, Duration::from_secs(20));
    assert!(
        took >= Duration::from_millis(500),
        "closed too early: {took:?}"
    );
    let (_, _) = read_until_closed(&mut silent, Duration::from_secs(20));
    // Well-behaved clients are served as before.
    let live = client(Duration::from_secs(20))
        .get(format!("{}/liveness-check", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_kept_alive_connection_is_closed_after_the_keep_alive_timeout() {
    // The header timeout is long, so only the keep-alive timeout can close.
    let server = memory(&["--keep-alive-timeout", "1", "--header-timeout", "30"]);
    let mut tcp = TcpStream::connect(addr(&server)).unwrap();
    tcp.write_all(b"GET /liveness-check HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let (answer, took) = read_until_closed(&mut tcp, Duration::from_secs(20));
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        !text.contains("connection: close"),
        "kept alive first: {text}"
    );
    assert!(
        took >= Duration::from_millis(500),
        "closed too early: {took:?}"
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let server = memory(&["--max-connections", "2", "--header-timeout", "30"]);
    let first = TcpStream::connect(addr(&server)).unwrap();
    let _second = TcpStream::connect(addr(&server)).unwrap();
    // Give the server a generous moment to accept both (and hold both
    // places).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = client(Duration::from_millis(1500))
        .get(format!("{}/liveness-check", server.url))
        .send()
        .await;
    assert!(
        refused.is_err(),
        "a third connection was served: {:?}",
        refused.map(|r| r.status())
    );
    drop(first);
    let live = client(Duration::from_secs(20))
        .get(format!("{}/liveness-check", server.url))
        .send()
        .await
        .expect("served once a place is free");
    assert_eq!(live.status(), 200);
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn long_polls_beyond_the_limit_get_503_with_retry_after() {
    let server = memory(&["--max-long-polls", "1"]);
    let c = client(Duration::from_secs(60));
    let held = {
        let c = c.clone();
        let url = format!("{}/events?wait=30", server.url);
        tokio::spawn(async move { c.get(url).send().await.unwrap().status().as_u16() })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let refused = loop {
        let r = c
            .get(format!("{}/streams/t/events?wait=30", server.url))
            .send()
            .await
            .unwrap();
        if r.status() == 503 {
            break r;
        }
        // The other one had not started waiting yet; this one waited 30 s.
        assert!(started.elapsed() < Duration::from_secs(90));
    };
    assert_eq!(
        refused
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "unavailable");
    assert!(body["requestId"].is_string());
    // Release the held one with an event.
    let created = c
        .post(format!("{}/streams/t", server.url))
        .json(&json!({"initialEvent": {"eventType": "e", "payload": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(held.await.unwrap(), 200);
    server.stop();
}

async fn preflight(c: &reqwest::Client, base: &str, origin: &str) -> Option<String> {
    let r = c
        .request(reqwest::Method::OPTIONS, format!("{base}/streams/t"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    r.headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_is_off_by_default_and_allows_only_configured_origins() {
    let c = client(Duration::from_secs(20));
    let off = memory(&[]);
    assert_eq!(preflight(&c, &off.url, "https://a.example").await, None);
    let get = c
        .get(format!("{}/streams", off.url))
        .header("origin", "https://a.example")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    assert!(get.headers().get("access-control-allow-origin").is_none());
    off.stop();

    let named = memory(&[
        "--cors-origin",
        "https://a.example",
        "--cors-origin",
        "http://localhost:3000",
    ]);
    assert_eq!(
        preflight(&c, &named.url, "https://a.example")
            .await
            .as_deref(),
        Some("https://a.example")
    );
    assert_eq!(
        preflight(&c, &named.url, "http://localhost:3000")
            .await
            .as_deref(),
        Some("http://localhost:3000")
    );
    assert_eq!(preflight(&c, &named.url, "https://b.example").await, None);
    named.stop();

    let any = Server::start(
        BIN,
        &["--port", "0", "--backend", "memory"],
        &[("EVENT_STORE_CORS_ORIGINS", "*")],
    );
    assert_eq!(
        preflight(&c, &any.url, "https://whoever.example")
            .await
            .as_deref(),
        Some("*")
    );
    any.stop();

    let bad = Server::try_start(
        BIN,
        &[
            "--port",
            "0",
            "--backend",
            "memory",
            "--cors-origin",
            "https://a.example/",
        ],
        &[],
    )
    .err()
    .expect("an origin with a path is refused at start");
    assert!(bad.1.contains("cors-origin"), "{}", bad.1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stuck_upload_does_not_hold_shutdown_past_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let args = [
        "serve",
        "--port",
        "0",
        "--data-dir",
        &data,
        "--shutdown-timeout",
        "2",
        "--body-timeout",
        "600",
        "--request-timeout",
        "600",
    ];
    let mut server = Server::start(BIN, &args, &[]);
    let c = client(Duration::from_secs(20));
    let created = c
        .post(format!("{}/streams/order", server.url))
        .json(&json!({"initialEvent": {"eventType": "placed", "payload": {"n": 1}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["stream"]["streamId"]
        .as_str()
        .unwrap()
        .to_owned();
    // An upload that sends its head and a little of its body, then stalls.
    let mut stuck = TcpStream::connect(addr(&server)).unwrap();
    stuck
        .write_all(
            format!(
                "POST /streams/order/{id}/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 5000\r\n\r\n{{\"expectedRevision\":"
            )
            .as_bytes(),
        )
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    server.terminate();
    let status = wait_with_timeout(&mut server.child, Duration::from_secs(30));
    let took = started.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took >= Duration::from_millis(1500),
        "the upload got its time: {took:?}"
    );
    std::thread::sleep(Duration::from_millis(100));
    let log = server.stderr.lock().unwrap().clone();
    assert!(log.contains("store closed"), "{log}");
    assert!(log.contains("dropping connections"), "{log}");
    drop(server);

    // The store was closed cleanly: the acknowledged event is there.
    let server = Server::start(BIN, &args, &[]);
    let page: Value = c
        .get(format!("{}/streams/order/{id}/events", server.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["eventPage"]["events"][0]["payload"], json!({"n": 1}));
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn readiness_is_open_and_out_of_range_numbers_are_400() {
    let server = memory(&["--api-key", "k"]);
    let c = client(Duration::from_secs(20));
    let ready = c
        .get(format!("{}/readiness-check", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    assert!(body["at"].is_string());
    for path in [
        "/events?after-position=9223372036854775808",
        "/streams/t/events?after-position=9223372036854775808",
        "/streams/t/s/events?after-revision=9223372036854775808",
        "/streams/t/s/events?direction=backward&before-revision=9223372036854775808",
        "/events?limit=1001",
        "/events?wait=31",
    ] {
        let r = c
            .get(format!("{}{path}", server.url))
            .bearer_auth("k")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "bad-request", "{path}");
    }
    let r = c
        .put(format!(
            "{}/streams/t/s/events/9223372036854775808",
            server.url
        ))
        .bearer_auth("k")
        .json(&json!({"event": {"eventType": "e", "payload": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .get(format!(
            "{}/events?after-position=9223372036854775807",
            server.url
        ))
        .bearer_auth("k")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    server.stop();
}
