//! Path, query, header and body parsing of the HTTP API: random requests
//! through [`eventstore_http::router`] over a [`MemoryStore`], in process.
//!
//! An input is a method byte, a flags byte (JSON content type or not),
//! the request target (path and query) up to the first newline, and the
//! body. Targets that are not a valid URI are skipped: the HTTP server in
//! front of the router refuses them before it is called. Time is paused
//! (tokio's test clock), so a long poll's `wait` passes at once.
//!
//! Checked, besides "no panic" (the router's panic layer would answer
//! 500): no answer is a 5xx; every answer has an `x-request-id`; every
//! 4xx of the API is the JSON error body with a code, a message and the
//! request id; every 2xx of the API is JSON.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, Uri};
use eventstore_api::ErrorBody;
use eventstore_core::{
    AppendRequest, EventStore, EventType, Expectation, JsonValue, MemoryStore, NewEvent, StreamId,
    StreamKey, StreamType,
};
use eventstore_http::{AppState, router};
use tower::ServiceExt;

use crate::engine::Target;

/// The target.
pub const TARGET: Target = Target {
    name: "http_router",
    seeds,
    dictionary: &[
        b"/streams/",
        b"/events",
        b"/details",
        b"?after-position=",
        b"&limit=",
        b"&wait=",
        b"&direction=backward",
        b"&before-revision=",
        b"?after-revision=",
        b"?updated-after=",
        b"&next-page-key=",
        b"2025-01-25T10:11:12.123456Z",
        b"czEKb3JkZXIKNDIKcy05",
        b"%2F",
        b"%00",
        b"%FF",
        b"%",
        b"18446744073709551616",
        b"-1",
        b"..",
        b"//",
        b"\"eventType\":",
        b"\"payload\":",
        b"\"expectedRevision\":",
        b"\"no-stream\"",
    ],
    fixup: None,
    check,
    default_iters: 3_000,
};

const METHODS: [Method; 7] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::GET,
    Method::DELETE,
    Method::HEAD,
    Method::OPTIONS,
];

fn seeds() -> Vec<Vec<u8>> {
    let req = |method: u8, json: bool, target: &str, body: &str| {
        let mut v = vec![method, u8::from(json)];
        v.extend_from_slice(target.as_bytes());
        v.push(b'\n');
        v.extend_from_slice(body.as_bytes());
        v
    };
    let event = r#"{"eventType":"ItemAdded","payload":{"sku":"A-1"}}"#;
    vec![
        req(0, false, "/liveness-check", ""),
        req(0, false, "/readiness-check", ""),
        req(
            1,
            true,
            "/streams/order",
            &format!(r#"{{"initialEvent":{event}}}"#),
        ),
        req(
            0,
            false,
            "/streams/order?updated-after=2020-01-01T00:00:00Z&next-page-key=czEKb3JkZXIKNDIKcy05",
            "",
        ),
        req(0, false, "/streams/order/s-1/details", ""),
        req(
            2,
            true,
            "/streams/order/s-1/events/2",
            &format!(r#"{{"event":{event}}}"#),
        ),
        req(
            1,
            true,
            "/streams/order/s-1/events",
            &format!(r#"{{"expectedRevision":"any","events":[{event},{event}]}}"#),
        ),
        req(
            0,
            false,
            "/streams/order/s-1/events?after-revision=1&limit=2&direction=backward&before-revision=3",
            "",
        ),
        req(0, false, "/events?after-position=0&limit=5&wait=1", ""),
        req(
            0,
            false,
            "/streams/order/events?after-position=1&limit=1&wait=0",
            "",
        ),
        req(0, false, "/streams", ""),
        req(0, false, "/openapi/openapi-spec.json", ""),
    ]
}

struct World {
    runtime: tokio::runtime::Runtime,
    app: Router,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a runtime");
        let store = Arc::new(MemoryStore::new());
        runtime.block_on(async {
            let stream = StreamKey::new(
                StreamType::parse("order").expect("type"),
                StreamId::parse("s-1").expect("id"),
            );
            let events = (0..3)
                .map(|i| {
                    NewEvent::new(
                        EventType::parse("ItemAdded").expect("type"),
                        JsonValue::from_text(format!("{{\"n\":{i}}}")).expect("json"),
                    )
                })
                .collect();
            let request =
                AppendRequest::new(stream, Expectation::NoStream, events).expect("request");
            store.append(request).await.expect("append");
        });
        let app = router(AppState::new(store));
        World { runtime, app }
    })
}

fn check(input: &[u8]) {
    let [method, flags, rest @ ..] = input else {
        return;
    };
    let (target, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(uri) = Uri::try_from(target) else {
        return;
    };
    // The server only ever passes origin-form targets.
    if uri.scheme().is_some() || !uri.path().starts_with('/') {
        return;
    }
    let method = METHODS[*method as usize % METHODS.len()].clone();
    let mut builder = Request::builder().method(method.clone()).uri(uri.clone());
    if flags & 1 == 1 {
        builder = builder.header("content-type", "application/json");
    }
    let request = builder
        .body(Body::from(body.to_vec()))
        .expect("a request from a valid URI");
    let w = world();
    let (status, headers, bytes) = w.runtime.block_on(async {
        let response = w
            .app
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("a response body");
        (parts.status, parts.headers, bytes)
    });
    let what = format!(
        "{method} {uri} -> {status}: {}",
        String::from_utf8_lossy(&bytes)
    );
    assert!(!status.is_server_error(), "a server error: {what}");
    let request_id = headers
        .get("x-request-id")
        .unwrap_or_else(|| panic!("no x-request-id: {what}"))
        .to_str()
        .expect("a text request id");
    let path = uri.path();
    let api = !(path == "/" || path.starts_with("/ui") || path.starts_with("/openapi"));
    if !api || method == Method::HEAD || status == StatusCode::NO_CONTENT {
        return;
    }
    if status.is_client_error() {
        let error: ErrorBody = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("a 4xx that is not the error body ({e}): {what}"));
        assert_eq!(error.request_id, request_id, "{what}");
        assert!(!error.message.is_empty(), "{what}");
    } else if status.is_success() {
        serde_json::from_slice::<serde_json::Value>(&bytes)
            .unwrap_or_else(|e| panic!("a 2xx that is not JSON ({e}): {what}"));
    }
}
