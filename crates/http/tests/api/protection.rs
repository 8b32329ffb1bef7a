//! What keeps a hostile or overloaded client from starving the server at
//! the router's level: the long-poll limit, overload answers, readiness,
//! CORS, request and body timeouts, and the numeric ranges of the query.
//! (The connection-level limits — header timeout, connection limit,
//! shutdown deadline — are tested on the binary in `crates/cli/tests`.)

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use eventstore_core::{
    AppendOutcome, AppendRequest, DeleteOutcome, EventStore, FeedFilter, FeedPage, MemoryStore,
    Position, Revision, StoreError, StreamCursor, StreamInfo, StreamKey, StreamListPage,
    StreamRead, StreamSlice, StreamType, StreamTypeCount, Timestamp,
};
use eventstore_http::{AppState, CorsPolicy};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use utoipa::OpenApi;

use crate::support::{TestServer, spawn, spawn_with};

/// The in-memory model with switches for overload and readiness, and a
/// count of the feed reads it serves.
#[derive(Default)]
struct Switchable {
    inner: MemoryStore,
    overloaded: AtomicBool,
    not_ready: Mutex<Option<String>>,
    global_reads: AtomicUsize,
    type_reads: AtomicUsize,
}

#[async_trait]
impl EventStore for Switchable {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        if self.overloaded.load(Ordering::SeqCst) {
            return Err(StoreError::Overloaded("writer queue full (test)".into()));
        }
        self.inner.append(request).await
    }
    async fn stream_info(&self, stream: &StreamKey) -> Result<Option<StreamInfo>, StoreError> {
        self.inner.stream_info(stream).await
    }
    async fn read_stream(
        &self,
        stream: &StreamKey,
        read: StreamRead,
    ) -> Result<StreamSlice, StoreError> {
        self.inner.read_stream(stream, read).await
    }
    async fn list_streams(
        &self,
        stream_type: &StreamType,
        updated_after: Option<Timestamp>,
        cursor: Option<StreamCursor>,
        limit: usize,
    ) -> Result<StreamListPage, StoreError> {
        self.inner
            .list_streams(stream_type, updated_after, cursor, limit)
            .await
    }
    async fn stream_types(&self) -> Result<Vec<StreamTypeCount>, StoreError> {
        self.inner.stream_types().await
    }
    async fn read_feed(
        &self,
        filter: &FeedFilter,
        after: Position,
        limit: usize,
    ) -> Result<FeedPage, StoreError> {
        match filter {
            FeedFilter::All => self.global_reads.fetch_add(1, Ordering::SeqCst),
            _ => self.type_reads.fetch_add(1, Ordering::SeqCst),
        };
        self.inner.read_feed(filter, after, limit).await
    }
    async fn wait_for_feed(&self, after: Position) -> Result<(), StoreError> {
        self.inner.wait_for_feed(after).await
    }
    async fn wait_for_type_feed(
        &self,
        stream_type: &StreamType,
        after: Position,
    ) -> Result<(), StoreError> {
        self.inner.wait_for_type_feed(stream_type, after).await
    }
    async fn delete_stream(
        &self,
        stream: &StreamKey,
        expected: Option<Revision>,
    ) -> Result<DeleteOutcome, StoreError> {
        self.inner.delete_stream(stream, expected).await
    }
    async fn truncate_stream(
        &self,
        stream: &StreamKey,
        before: Revision,
        expected: Option<Revision>,
    ) -> Result<StreamInfo, StoreError> {
        self.inner.truncate_stream(stream, before, expected).await
    }
    fn readiness(&self) -> Result<(), String> {
        match self.not_ready.lock().unwrap().clone() {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }
}

async fn switchable(configure: impl FnOnce(AppState) -> AppState) -> (TestServer, Arc<Switchable>) {
    let store = Arc::new(Switchable::default());
    let server = spawn_with(configure(AppState::new(store.clone()))).await;
    (server, store)
}

fn new_event() -> Value {
    json!({"eventType": "tick", "payload": {}})
}

#[tokio::test]
async fn overloaded_store_answers_503_with_retry_after() {
    let (s, store) = switchable(|st| st).await;
    let id = s.create("order", json!(1)).await;
    store.overloaded.store(true, Ordering::SeqCst);
    let batch = json!({"expectedRevision": "any", "events": [new_event()]});
    for a in [
        s.post(&format!("/streams/order/{id}/events"), &batch).await,
        s.put(
            &format!("/streams/order/{id}/events/2"),
            &json!({"event": new_event()}),
        )
        .await,
        s.post("/streams/order", &json!({"initialEvent": new_event()}))
            .await,
    ] {
        let body = a.assert_error(503, "unavailable");
        assert_eq!(a.header("retry-after"), Some("1"), "{}", a.text);
        assert!(
            !body["message"].as_str().unwrap().contains("test"),
            "the store's detail stays in the log: {body}"
        );
    }
    store.overloaded.store(false, Ordering::SeqCst);
    s.post(&format!("/streams/order/{id}/events"), &batch)
        .await
        .assert_status(201);
}

#[tokio::test]
async fn readiness_follows_the_store_and_liveness_keeps_its_shape() {
    let (s, store) = switchable(|st| st.with_api_keys(["k"])).await;
    let ready = s.get("/readiness-check").await.assert_status(200);
    assert_eq!(ready["status"], "ok");
    assert!(Timestamp::parse(ready["at"].as_str().unwrap()).is_ok());
    assert_eq!(ready.as_object().unwrap().len(), 2, "{ready}");

    *store.not_ready.lock().unwrap() = Some("the last disk write failed: EIO".into());
    let a = s.get("/readiness-check").await;
    let body = a.assert_error(503, "unavailable");
    assert!(
        body["message"].as_str().unwrap().contains("EIO"),
        "the reason is given: {body}"
    );
    // Liveness does not depend on the store.
    let live = s.get("/liveness-check").await.assert_status(200);
    assert_eq!(live["status"], "ok");
    assert_eq!(live.as_object().unwrap().len(), 2, "{live}");

    *store.not_ready.lock().unwrap() = None;
    s.get("/readiness-check").await.assert_status(200);
    s.state.begin_shutdown();
    let a = s.get("/readiness-check").await;
    let body = a.assert_error(503, "unavailable");
    assert!(body["message"].as_str().unwrap().contains("shutting down"));
}

#[tokio::test]
async fn long_polls_beyond_the_limit_get_503_with_retry_after() {
    let (s, store) = switchable(|st| st.with_long_poll_limit(2)).await;
    let s = Arc::new(s);
    let mut waiters = Vec::new();
    for path in ["/events?wait=30", "/streams/order/events?wait=30"] {
        let s = s.clone();
        waiters.push(tokio::spawn(async move { s.get(path).await }));
    }
    // Both are held: each has read its feed once, then taken a place.
    let started = Instant::now();
    while store.global_reads.load(Ordering::SeqCst) == 0
        || store.type_reads.load(Ordering::SeqCst) == 0
    {
        assert!(started.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = s.get("/streams/other/events?wait=30").await;
    let body = refused.assert_error(503, "unavailable");
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(body["details"]["maxLongPolls"], 2);
    // Reads that do not wait are not limited.
    s.get("/events").await.assert_status(200);
    s.get("/events?wait=0").await.assert_status(200);
    for w in &waiters {
        assert!(!w.is_finished(), "the first two are still held");
    }
    // An event releases both waiters; their places are free again.
    s.create("order", json!(1)).await;
    for w in waiters {
        let a = tokio::time::timeout(Duration::from_secs(20), w)
            .await
            .expect("released by the append")
            .unwrap();
        a.assert_status(200);
    }
    // A poll that finds events answers at once, limit or not; and the
    // places are free again for new waiters.
    let page = s.get("/events?wait=30").await.assert_status(200);
    assert_eq!(page["eventPage"]["events"].as_array().unwrap().len(), 1);
    let s2 = s.clone();
    let again = tokio::spawn(async move { s2.get("/events?after-position=1&wait=30").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.create("order", json!(2)).await;
    tokio::time::timeout(Duration::from_secs(20), again)
        .await
        .expect("answered")
        .unwrap()
        .assert_status(200);
}

#[tokio::test]
async fn a_long_poll_on_a_quiet_type_reads_nothing_while_other_types_are_written() {
    let (s, store) = switchable(|st| st).await;
    let s = Arc::new(s);
    let id = s.create("busy", json!(0)).await;
    let waiter = {
        let s = s.clone();
        tokio::spawn(async move { s.get("/streams/quiet/events?wait=30").await })
    };
    let started = Instant::now();
    while store.type_reads.load(Ordering::SeqCst) == 0 {
        assert!(started.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reads_before = store.type_reads.load(Ordering::SeqCst);
    let globals_before = store.global_reads.load(Ordering::SeqCst);
    for _ in 0..50 {
        s.append_n("busy", &id, 2).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished());
    assert_eq!(
        store.type_reads.load(Ordering::SeqCst),
        reads_before,
        "events of other types made the quiet type's long poll read again"
    );
    assert_eq!(
        store.global_reads.load(Ordering::SeqCst),
        globals_before,
        "a type's long poll read the global feed"
    );
    s.create("quiet", json!("hello")).await;
    let page = tokio::time::timeout(Duration::from_secs(20), waiter)
        .await
        .expect("woken by its own type")
        .unwrap()
        .assert_status(200);
    let events = page["eventPage"]["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["payload"], "hello");
}

async fn preflight(s: &TestServer, origin: &str) -> crate::support::Answer {
    s.request(
        reqwest::Method::OPTIONS,
        "/streams/x/s/events",
        None,
        &[
            ("origin", origin),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "authorization,content-type",
            ),
        ],
    )
    .await
}

#[tokio::test]
async fn cors_allows_exactly_the_named_origins_or_any_when_spelled_out() {
    let named =
        CorsPolicy::from_origins(["https://app.example.com", "http://localhost:3000"]).unwrap();
    let s = spawn_with(
        AppState::new(Arc::new(MemoryStore::new()))
            .with_cors(named)
            .with_api_keys(["k"]),
    )
    .await;
    for origin in ["https://app.example.com", "http://localhost:3000"] {
        let pre = preflight(&s, origin).await;
        assert!(pre.status.is_success(), "{origin}: {}", pre.status);
        assert_eq!(pre.header("access-control-allow-origin"), Some(origin));
        let methods = pre.header("access-control-allow-methods").unwrap();
        assert!(methods.contains("POST"), "{methods}");
        let get = s
            .request(
                reqwest::Method::GET,
                "/streams",
                None,
                &[("origin", origin), ("authorization", "Bearer k")],
            )
            .await;
        assert_eq!(get.status, 200);
        assert_eq!(get.header("access-control-allow-origin"), Some(origin));
        let exposed = get.header("access-control-expose-headers").unwrap();
        assert!(exposed.contains("x-request-id"), "{exposed}");
        assert!(exposed.contains("traceparent"), "{exposed}");
        let allowed = pre.header("access-control-allow-headers").unwrap_or("");
        assert!(allowed.contains("traceparent"), "{allowed}");
    }
    for other in [
        "https://evil.example",
        "https://app.example.com.evil.example",
        "http://app.example.com",
    ] {
        let pre = preflight(&s, other).await;
        assert_eq!(pre.header("access-control-allow-origin"), None, "{other}");
        let get = s
            .request(
                reqwest::Method::GET,
                "/liveness-check",
                None,
                &[("origin", other)],
            )
            .await;
        assert_eq!(get.header("access-control-allow-origin"), None, "{other}");
    }

    let any =
        spawn_with(AppState::new(Arc::new(MemoryStore::new())).with_cors(CorsPolicy::AnyOrigin))
            .await;
    let pre = preflight(&any, "https://whoever.example").await;
    assert!(pre.status.is_success());
    assert_eq!(pre.header("access-control-allow-origin"), Some("*"));
}

/// Sends `head` and `body_start` of a request whose body never completes,
/// and returns the status line of the answer and how long it took.
async fn stalled_upload(s: &TestServer, drip: Option<Duration>) -> (String, Duration) {
    let addr = s.base.trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /streams/order/s1/events HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{{\"expectedRevision\":"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let read = match drip {
            None => tokio::time::timeout(Duration::from_secs(60), tcp.read(&mut buf)).await,
            Some(every) => {
                match tokio::time::timeout(every, tcp.read(&mut buf)).await {
                    Err(_) => {
                        // Nothing yet: one more byte of body, forever.
                        let _ = tcp.write_all(b" ").await;
                        assert!(started.elapsed() < Duration::from_secs(60));
                        continue;
                    }
                    ok => ok,
                }
            }
        };
        let n = read.expect("the server answers a stalled upload").unwrap();
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if answer.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer).to_string();
    let status = text.lines().next().unwrap_or_default().to_owned();
    (status, started.elapsed())
}

#[tokio::test]
async fn a_stalled_body_is_answered_408_after_the_body_timeout() {
    let s = spawn_with(
        AppState::new(Arc::new(MemoryStore::new())).with_body_timeout(Duration::from_secs(1)),
    )
    .await;
    let (status, took) = stalled_upload(&s, None).await;
    assert!(status.contains(" 408 "), "{status}");
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    // Normal uploads are not affected.
    s.create("order", json!(1)).await;
}

#[tokio::test]
async fn a_dripping_upload_is_cut_by_the_request_timeout_and_long_polls_fit_under_it() {
    let s = spawn_with(
        AppState::new(Arc::new(MemoryStore::new()))
            .with_body_timeout(Duration::from_secs(5))
            .with_request_timeout(Duration::from_secs(3)),
    )
    .await;
    // One byte every 200 ms never trips the body timeout; the request
    // timeout ends it.
    let (status, took) = stalled_upload(&s, Some(Duration::from_millis(200))).await;
    assert!(status.contains(" 408 "), "{status}");
    assert!(took >= Duration::from_millis(2500), "{took:?}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    // A long poll asking for more than the request timeout answers an
    // empty page before it, not a 408.
    let started = Instant::now();
    let page = s.get("/events?wait=30").await.assert_status(200);
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(page["eventPage"]["events"], json!([]));
    let a = s.get("/streams").await;
    assert_eq!(a.status, 200);
}

/// One numeric parameter of the document: where it is and its range.
struct NumericParam {
    method: String,
    path: String,
    name: String,
    location: String,
    minimum: u64,
    maximum: u64,
}

fn numeric_params() -> Vec<NumericParam> {
    let doc = serde_json::to_value(eventstore_http::ApiDoc::openapi()).unwrap();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                let schema = &p["schema"];
                let is_integer = schema["type"] == "integer"
                    || schema["type"]
                        .as_array()
                        .is_some_and(|t| t.iter().any(|t| t == "integer"));
                if !is_integer {
                    continue;
                }
                let name = p["name"].as_str().unwrap().to_owned();
                let minimum = schema["minimum"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{method} {path} {name}: no integer minimum"));
                let maximum = schema["maximum"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{method} {path} {name}: no integer maximum"));
                out.push(NumericParam {
                    method: method.to_uppercase(),
                    path: path.clone(),
                    name,
                    location: p["in"].as_str().unwrap().to_owned(),
                    minimum,
                    maximum,
                });
            }
        }
    }
    out
}

/// A request for `param` = `value`, with the other parameters valid.
fn numeric_request(param: &NumericParam, value: &str) -> (reqwest::Method, String, Option<Value>) {
    let mut path = param
        .path
        .replace("{streamType}", "order")
        .replace("{streamId}", "s1");
    let body = match param.method.as_str() {
        "PUT" => Some(json!({"event": new_event()})),
        "POST" if param.path.ends_with("/truncate") => Some(json!({"beforeRevision": 1})),
        _ => None,
    };
    if param.location == "path" {
        path = path.replace(&format!("{{{}}}", param.name), value);
    } else {
        let extra = if param.name == "before-revision" {
            "&direction=backward"
        } else {
            ""
        };
        path = format!("{path}?{}={value}{extra}", param.name);
    }
    (param.method.parse().unwrap(), path, body)
}

#[tokio::test]
async fn numeric_parameters_accept_exactly_their_documented_range() {
    let s = spawn().await;
    s.create("order", json!(1)).await;
    let params = numeric_params();
    let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
    for expected in [
        "after-position",
        "after-revision",
        "before-revision",
        "limit",
        "wait",
        "streamRevision",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    for p in &params {
        let what = format!("{} {} {}", p.method, p.path, p.name);
        let mut inside = vec![p.minimum.to_string(), p.maximum.to_string()];
        if p.name == "wait" {
            // Do not hold the test for the maximum wait.
            inside.pop();
        }
        for v in inside {
            let (method, path, body) = numeric_request(p, &v);
            let a = s.request(method, &path, body.as_ref(), &[]).await;
            assert!(
                a.status.as_u16() != 400 && !a.status.is_server_error(),
                "{what} = {v}: {} {}",
                a.status,
                a.text
            );
        }
        let mut outside = vec![
            (u128::from(p.maximum) + 1).to_string(),
            "18446744073709551616".to_owned(),
            "-1".to_owned(),
            "1.5".to_owned(),
            "+1".to_owned(),
        ];
        if p.minimum > 0 {
            outside.push((p.minimum - 1).to_string());
        }
        for v in outside {
            let (method, path, body) = numeric_request(p, &v);
            s.request(method, &path, body.as_ref(), &[])
                .await
                .assert_error(400, "bad-request");
        }
    }
}

#[test]
fn the_document_states_the_int64_maximum_exactly() {
    let doc = serde_json::to_string(&eventstore_http::ApiDoc::openapi()).unwrap();
    assert!(
        doc.contains("\"maximum\":9223372036854775807"),
        "exact maximum"
    );
    assert!(!doc.contains("9223372036854775808"));
    let readiness = serde_json::to_value(eventstore_http::ApiDoc::openapi()).unwrap();
    let op = &readiness["paths"]["/readiness-check"]["get"];
    assert!(op["responses"]["200"].is_object() && op["responses"]["503"].is_object());
}
