//! Every error path answers JSON with a code and a request id, and changes
//! nothing.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestServer, spawn};

/// A stream `order/s1` with two events, and the snapshot to compare with.
async fn setup() -> (TestServer, Value, Value) {
    let s = spawn().await;
    s.post(
        "/streams/order/s1/events",
        &json!({"expectedRevision": "no-stream", "events": [
            {"eventType": "a", "payload": {"n": 1}}, {"eventType": "b", "payload": "two"}]}),
    )
    .await
    .assert_status(201);
    let events = json!(s.events("order", "s1").await);
    let types = s.stream_types().await;
    (s, events, types)
}

async fn unchanged(s: &TestServer, events: &Value, types: &Value) {
    assert_eq!(
        &json!(s.events("order", "s1").await),
        events,
        "stream changed"
    );
    assert_eq!(&s.stream_types().await, types, "streams changed");
    let feed = s.get("/events?limit=1000").await.assert_status(200);
    assert_eq!(feed["eventPage"]["events"].as_array().unwrap().len(), 2);
}

fn event() -> Value {
    json!({"eventType": "x", "payload": {"k": "v"}})
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let (s, events, types) = setup().await;
    s.get("/nope").await.assert_error(404, "not-found");
    s.get("/streams/order/s1")
        .await
        .assert_error(404, "not-found");
    s.get("/streams/order/s1/events/1/x")
        .await
        .assert_error(404, "not-found");
    s.post("/liveness-check", &json!({}))
        .await
        .assert_error(405, "method-not-allowed");
    let del = s.request(Method::DELETE, "/streams/order", None, &[]).await;
    del.assert_error(405, "method-not-allowed");
    assert!(del.header("allow").is_some(), "405 keeps the Allow header");
    s.get("/streams/order/s1/events/3")
        .await
        .assert_error(405, "method-not-allowed");
    s.request(
        Method::PATCH,
        "/streams/order/s1/events",
        Some(&json!({})),
        &[],
    )
    .await
    .assert_error(405, "method-not-allowed");
    s.get("/streams/order/s1/details").await.assert_status(200);
    s.get("/streams/order/nope/details")
        .await
        .assert_error(404, "not-found");
    s.get("/streams/order/nope/events")
        .await
        .assert_error(404, "not-found");
    unchanged(&s, &events, &types).await;
}

#[tokio::test]
async fn bodies_that_are_not_json_or_too_large() {
    let (s, events, types) = setup().await;
    let path = "/streams/order/s1/events";
    let good =
        serde_json::to_vec(&json!({"expectedRevision": "any", "events": [event()]})).unwrap();

    // Content type.
    s.raw(Method::POST, path, None, good.clone())
        .await
        .assert_error(415, "unsupported-media-type");
    s.raw(Method::POST, path, Some("text/plain"), good.clone())
        .await
        .assert_error(415, "unsupported-media-type");
    s.raw(
        Method::POST,
        "/streams/order",
        Some("application/x-www-form-urlencoded"),
        b"a=b".to_vec(),
    )
    .await
    .assert_error(415, "unsupported-media-type");
    s.raw(
        Method::PUT,
        "/streams/order/s1/events/3",
        None,
        good.clone(),
    )
    .await
    .assert_error(415, "unsupported-media-type");

    // Body over 1 MiB.
    let big = format!(
        r#"{{"expectedRevision":"any","events":[{{"eventType":"x","payload":"{}"}}]}}"#,
        "a".repeat(1024 * 1024 + 10)
    );
    s.raw(
        Method::POST,
        path,
        Some("application/json"),
        big.into_bytes(),
    )
    .await
    .assert_error(413, "payload-too-large");

    // More than 100 events.
    let many: Vec<Value> = (0..101).map(|_| event()).collect();
    s.post(path, &json!({"expectedRevision": "any", "events": many}))
        .await
        .assert_error(413, "payload-too-large");

    // One event's payload + metadata over 256 KiB (the body is under 1 MiB).
    let fat = json!({"eventType": "x", "payload": "p".repeat(200 * 1024), "metadata": {"m": "q".repeat(60 * 1024)}});
    s.post(
        path,
        &json!({"expectedRevision": "any", "events": [fat.clone()]}),
    )
    .await
    .assert_error(413, "payload-too-large");
    s.put("/streams/order/s1/events/3", &json!({"event": fat.clone()}))
        .await
        .assert_error(413, "payload-too-large");
    s.post("/streams/order", &json!({"initialEvent": fat}))
        .await
        .assert_error(413, "payload-too-large");

    // Exactly 100 small events is fine (then undone by comparing on another stream).
    let hundred: Vec<Value> = (0..100).map(|_| event()).collect();
    s.post(
        "/streams/bulk/b1/events",
        &json!({"expectedRevision": "any", "events": hundred}),
    )
    .await
    .assert_status(201);
    assert_eq!(s.events("bulk", "b1").await.len(), 100);
    assert_eq!(&json!(s.events("order", "s1").await), &events);
    let _ = types;
}

#[tokio::test]
async fn malformed_json_and_missing_fields() {
    let (s, events, types) = setup().await;
    let path = "/streams/order/s1/events";
    let bad_bodies: Vec<(&str, &str)> = vec![
        (path, "{"),
        (path, ""),
        (path, "[]"),
        (path, r#"{"events": []}"#),
        (path, r#"{"expectedRevision": "any"}"#),
        (path, r#"{"expectedRevision": "any", "events": []}"#),
        (
            path,
            r#"{"expectedRevision": "sometimes", "events": [{"eventType":"x","payload":1}]}"#,
        ),
        (
            path,
            r#"{"expectedRevision": -1, "events": [{"eventType":"x","payload":1}]}"#,
        ),
        (
            path,
            r#"{"expectedRevision": "any", "events": [{"payload":1}]}"#,
        ),
        (
            path,
            r#"{"expectedRevision": "any", "events": [{"eventType":"x"}]}"#,
        ),
        (
            path,
            r#"{"expectedRevision": "any", "events": [{"eventType":"","payload":1}]}"#,
        ),
        (
            path,
            r#"{"expectedRevision": "any", "events": [{"eventType":" x","payload":1}]}"#,
        ),
        (
            path,
            r#"{"expectedRevision": "any", "events": [{"eventType":"x","payload":1,"eventId":"nope"}]}"#,
        ),
        (
            path,
            r#"{"expectedRevision": "any", "events": [{"eventType":"x","payload":1,"metadata":[1]}]}"#,
        ),
        (
            path,
            r#"{"expectedRevision": "any", "events": [{"eventType":"x","payload":1,"eventId":"0195a3c4-7f5e-7b1a-9c1d-2e3f4a5b6c7d"},{"eventType":"x","payload":1,"eventId":"0195a3c4-7f5e-7b1a-9c1d-2e3f4a5b6c7d"}]}"#,
        ),
        (
            "/streams/order",
            r#"{"event": {"eventType":"x","payload":1}}"#,
        ),
        ("/streams/order", r#"{"initialEvent": {"eventType":"x"}}"#),
        (
            "/streams/order",
            r#"{"initialEvent": {"eventType":"x","payload":1} "#,
        ),
    ];
    for (p, body) in bad_bodies {
        let a = s
            .raw(
                Method::POST,
                p,
                Some("application/json"),
                body.as_bytes().to_vec(),
            )
            .await;
        let err = a.assert_error(400, "bad-request");
        assert!(
            err["message"].as_str().unwrap().len() > 10,
            "{body}: {}",
            a.text
        );
    }
    let missing = s
        .raw(
            Method::POST,
            "/streams/order",
            Some("application/json"),
            br#"{"initialEvent": {"eventType":"x"}}"#.to_vec(),
        )
        .await
        .assert_error(400, "bad-request");
    assert!(
        missing["message"].as_str().unwrap().contains("payload"),
        "the message names the missing field: {missing}"
    );
    for body in [r#"{"event": {"eventType":"x"}}"#, r#"{"evnt": {}}"#, "nope"] {
        s.raw(
            Method::PUT,
            "/streams/order/s1/events/3",
            Some("application/json"),
            body.as_bytes().to_vec(),
        )
        .await
        .assert_error(400, "bad-request");
    }
    unchanged(&s, &events, &types).await;
}

#[tokio::test]
async fn invalid_path_segments_are_400_before_any_lookup() {
    let (s, events, types) = setup().await;
    let long_type = "t".repeat(101);
    let long_id = "i".repeat(129);
    let bad_types = [
        "-order",
        "_x",
        "a%20b",
        "a:b",
        "%C3%A9",
        long_type.as_str(),
        "a%2Fb",
    ];
    let bad_ids = [
        "a%20b",
        "a%2Fb",
        "%00",
        long_id.as_str(),
        "a%3Fb",
        "caf%C3%A9",
    ];
    for t in bad_types {
        s.post(&format!("/streams/{t}"), &json!({"initialEvent": event()}))
            .await
            .assert_error(400, "bad-request");
        s.get(&format!("/streams/{t}"))
            .await
            .assert_error(400, "bad-request");
        s.get(&format!("/streams/{t}/events"))
            .await
            .assert_error(400, "bad-request");
        s.get(&format!("/streams/{t}/s1/details"))
            .await
            .assert_error(400, "bad-request");
        s.get(&format!("/streams/{t}/s1/events"))
            .await
            .assert_error(400, "bad-request");
        s.post(
            &format!("/streams/{t}/s1/events"),
            &json!({"expectedRevision": "any", "events": [event()]}),
        )
        .await
        .assert_error(400, "bad-request");
        s.put(
            &format!("/streams/{t}/s1/events/3"),
            &json!({"event": event()}),
        )
        .await
        .assert_error(400, "bad-request");
    }
    for id in bad_ids {
        s.get(&format!("/streams/order/{id}/details"))
            .await
            .assert_error(400, "bad-request");
        s.get(&format!("/streams/order/{id}/events"))
            .await
            .assert_error(400, "bad-request");
        s.post(
            &format!("/streams/order/{id}/events"),
            &json!({"expectedRevision": "any", "events": [event()]}),
        )
        .await
        .assert_error(400, "bad-request");
        s.put(
            &format!("/streams/order/{id}/events/3"),
            &json!({"event": event()}),
        )
        .await
        .assert_error(400, "bad-request");
    }
    // Invalid segments win over a bad body: validated first.
    s.raw(
        Method::POST,
        "/streams/-bad",
        Some("application/json"),
        b"{".to_vec(),
    )
    .await
    .assert_error(400, "bad-request");
    // Revisions.
    for rev in [
        "0",
        "abc",
        "-1",
        "1.5",
        "+3",
        "99999999999999999999999",
        "%20",
    ] {
        s.put(
            &format!("/streams/order/s1/events/{rev}"),
            &json!({"event": event()}),
        )
        .await
        .assert_error(400, "bad-request");
    }
    unchanged(&s, &events, &types).await;
}

#[tokio::test]
async fn invalid_query_values_are_400() {
    let (s, events, types) = setup().await;
    let cases = [
        "/streams/order/s1/events?after-revision=x",
        "/streams/order/s1/events?after-revision=-1",
        "/streams/order/s1/events?limit=0",
        "/streams/order/s1/events?limit=1001",
        "/streams/order/s1/events?limit=ten",
        "/streams/order/s1/events?direction=sideways",
        "/streams/order/s1/events?direction=backward&after-revision=1",
        "/streams/order/s1/events?before-revision=1",
        "/streams/order/s1/events?after-revision=1&after-revision=2",
        "/streams/order/s1/events?before-revision=x&direction=backward",
        "/streams/order?updated-after=yesterday",
        "/streams/order?updated-after=2025-13-01T00:00:00Z",
        "/streams/order?next-page-key=garbage!",
        "/streams/order?next-page-key=",
        "/streams/order?limit=0",
        "/events?after-position=-1",
        "/events?after-position=abc",
        "/events?limit=5000",
        "/events?wait=31",
        "/events?wait=-1",
        "/events?wait=1.5",
        "/streams/order/events?after-position=x",
        "/streams/order/events?wait=31",
        "/streams/-bad/events?wait=1",
        "/events?limit=%FF",
    ];
    for path in cases {
        let a = s.get(path).await;
        let body = a.assert_error(400, "bad-request");
        assert!(!body["message"].as_str().unwrap().is_empty(), "{path}");
    }
    // A page key of another listing.
    for i in 0..3 {
        s.create("pk", json!(i)).await;
    }
    let page = s.get("/streams/pk?limit=1").await.assert_status(200);
    let key = page["streamPage"]["nextPageKey"]
        .as_str()
        .unwrap()
        .to_owned();
    s.get(&format!("/streams/pk?next-page-key={key}"))
        .await
        .assert_status(200);
    s.get(&format!("/streams/order?next-page-key={key}"))
        .await
        .assert_error(400, "bad-request");
    assert_eq!(&json!(s.events("order", "s1").await), &events);
    let _ = types;
}

/// A store whose every operation fails with a backend error that carries
/// a secret, to prove 5xx answers do not leak it.
struct FailingStore;

const SECRET: &str = "disk /secret/path exploded";

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Boom(&'static str);

fn boom() -> eventstore_core::StoreError {
    eventstore_core::StoreError::backend(Boom(SECRET))
}

#[async_trait::async_trait]
impl eventstore_core::EventStore for FailingStore {
    async fn append(
        &self,
        _: eventstore_core::AppendRequest,
    ) -> Result<eventstore_core::AppendOutcome, eventstore_core::StoreError> {
        Err(eventstore_core::StoreError::Unavailable(SECRET.into()))
    }
    async fn stream_info(
        &self,
        _: &eventstore_core::StreamKey,
    ) -> Result<Option<eventstore_core::StreamInfo>, eventstore_core::StoreError> {
        Err(boom())
    }
    async fn read_stream(
        &self,
        _: &eventstore_core::StreamKey,
        _: eventstore_core::StreamRead,
    ) -> Result<eventstore_core::StreamSlice, eventstore_core::StoreError> {
        Err(boom())
    }
    async fn list_streams(
        &self,
        _: &eventstore_core::StreamType,
        _: Option<eventstore_core::Timestamp>,
        _: Option<eventstore_core::StreamCursor>,
        _: usize,
    ) -> Result<eventstore_core::StreamListPage, eventstore_core::StoreError> {
        Err(boom())
    }
    async fn stream_types(
        &self,
    ) -> Result<Vec<eventstore_core::StreamTypeCount>, eventstore_core::StoreError> {
        Err(boom())
    }
    async fn read_feed(
        &self,
        _: &eventstore_core::FeedFilter,
        _: eventstore_core::Position,
        _: usize,
    ) -> Result<eventstore_core::FeedPage, eventstore_core::StoreError> {
        Err(boom())
    }
    async fn wait_for_feed(
        &self,
        _: eventstore_core::Position,
    ) -> Result<(), eventstore_core::StoreError> {
        Err(boom())
    }
}

#[tokio::test]
async fn server_errors_are_json_and_do_not_leak_internals() {
    let s = crate::support::spawn_with(eventstore_http::AppState::new(std::sync::Arc::new(
        FailingStore,
    )))
    .await;
    for path in [
        "/streams",
        "/events",
        "/streams/t",
        "/streams/t/events?wait=1",
        "/streams/t/s/details",
        "/streams/t/s/events",
    ] {
        let a = s.get(path).await;
        a.assert_error(500, "internal");
        assert!(!a.text.contains("secret"), "{path}: {}", a.text);
    }
    let a = s
        .post(
            "/streams/t/s/events",
            &json!({"expectedRevision": "any", "events": [event()]}),
        )
        .await;
    a.assert_error(503, "unavailable");
    assert!(!a.text.contains("secret"), "{}", a.text);
    // Input errors are still 4xx: validation happens before the store.
    s.get("/streams/-t/s/details")
        .await
        .assert_error(400, "bad-request");
}
