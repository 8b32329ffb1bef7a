//! Optional bearer API keys.

use std::sync::Arc;

use eventstore_core::MemoryStore;
use eventstore_http::AppState;
use reqwest::Method;
use serde_json::json;

use crate::support::{spawn, spawn_with};

#[tokio::test]
async fn with_keys_every_data_route_needs_one() {
    let state = AppState::new(Arc::new(MemoryStore::new())).with_api_keys(["k-one", "k-two"]);
    let s = spawn_with(state).await;
    let create = json!({"initialEvent": {"eventType": "x", "payload": 1}});

    // Liveness and the static pages are open.
    s.get("/liveness-check").await.assert_status(200);
    assert_eq!(s.get("/ui/").await.status, 200);
    assert_eq!(s.get("/openapi/openapi-spec.json").await.status, 200);
    assert!(s.get("/").await.status.is_redirection());

    // Data routes without a key, with a wrong key, with a wrong scheme.
    for headers in [
        vec![],
        vec![("authorization", "Bearer nope")],
        vec![("authorization", "Bearer k-one-and-more")],
        vec![("authorization", "Bearer k-on")],
        vec![("authorization", "Basic k-one")],
        vec![("authorization", "k-one")],
        vec![("authorization", "Bearer ")],
    ] {
        for (method, path) in [
            (Method::GET, "/streams"),
            (Method::GET, "/events"),
            (Method::GET, "/streams/t"),
            (Method::GET, "/streams/t/events"),
            (Method::GET, "/streams/t/s/details"),
            (Method::GET, "/streams/t/s/events"),
        ] {
            let a = s.request(method, path, None, &headers).await;
            a.assert_error(401, "unauthorized");
            assert_eq!(a.header("www-authenticate"), Some("Bearer"));
        }
        s.request(Method::POST, "/streams/t", Some(&create), &headers)
            .await
            .assert_error(401, "unauthorized");
    }
    // Nothing was created by the refused requests.
    let listed = s
        .request(
            Method::GET,
            "/streams",
            None,
            &[("authorization", "Bearer k-one")],
        )
        .await
        .assert_status(200);
    assert_eq!(listed["streamTypes"], json!([]));

    // Either key works, the scheme is case-insensitive.
    s.request(
        Method::POST,
        "/streams/t",
        Some(&create),
        &[("authorization", "Bearer k-one")],
    )
    .await
    .assert_status(201);
    s.request(
        Method::POST,
        "/streams/t",
        Some(&create),
        &[("authorization", "bearer k-two")],
    )
    .await
    .assert_status(201);
    let listed = s
        .request(
            Method::GET,
            "/streams",
            None,
            &[("authorization", "Bearer k-two")],
        )
        .await
        .assert_status(200);
    assert_eq!(
        listed["streamTypes"],
        json!([{"streamType": "t", "streams": 2}])
    );
}

#[tokio::test]
async fn without_keys_no_header_is_needed_and_empty_keys_do_not_count() {
    let s = spawn().await;
    s.get("/streams").await.assert_status(200);
    let state = AppState::new(Arc::new(MemoryStore::new())).with_api_keys([""]);
    assert!(!state.auth_required());
    let s = spawn_with(state).await;
    s.get("/streams").await.assert_status(200);
}
