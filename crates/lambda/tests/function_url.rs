//! The API function's Lambda adaptation, without AWS: Function URL event
//! JSON (as Lambda hands it over) goes through `lambda_http::request::from_str`
//! into the function's router over an in-memory store, and the answers are
//! those of the local server.

use std::sync::Arc;

use axum::body::to_bytes;
use axum::http::StatusCode;
use eventstore_core::MemoryStore;
use eventstore_http::AppState;
use eventstore_lambda::api::function_router;
use serde_json::Value;
use tower::ServiceExt;

struct Answer {
    status: StatusCode,
    content_type: String,
    request_id: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

async fn send(app: &axum::Router, name: &str) -> Answer {
    let request = lambda_http::request::from_str(&fixture(name))
        .unwrap_or_else(|e| panic!("{name} is not a Function URL event lambda_http accepts: {e}"));
    let response = app
        .clone()
        .oneshot(request)
        .await
        .expect("the router never fails");
    let status = response.status();
    let header = |h: &str| {
        response
            .headers()
            .get(h)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let content_type = header("content-type").unwrap_or_default();
    let request_id = header("x-request-id");
    let body = to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Answer {
        status,
        content_type,
        request_id,
        body,
    }
}

fn app() -> axum::Router {
    function_router(AppState::new(Arc::new(MemoryStore::new())))
}

#[tokio::test]
async fn liveness_check_answers_through_a_function_url() {
    let a = send(&app(), "liveness.json").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["status"], "ok");
    assert!(
        a.request_id.is_some(),
        "every response carries x-request-id"
    );
}

#[tokio::test]
async fn a_base64_encoded_body_creates_a_stream() {
    let a = send(&app(), "create-stream-base64.json").await;
    assert_eq!(
        a.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    let stream = &a.json()["stream"];
    assert_eq!(stream["streamType"], "order");
    assert_eq!(stream["revision"], 1);
    assert!(stream["streamId"].as_str().is_some_and(|id| !id.is_empty()));
}

#[tokio::test]
async fn appended_events_are_read_back_with_the_query_string() {
    let app = app();
    let a = send(&app, "append-batch.json").await;
    assert_eq!(
        a.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    assert_eq!(a.json()["lastRevision"], 2);

    let read = send(&app, "read-stream.json").await;
    assert_eq!(read.status, StatusCode::OK);
    let page = &read.json()["eventPage"];
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["eventType"], "OrderPlaced");
    assert_eq!(events[0]["payload"], serde_json::json!({"total": 42}));
    assert_eq!(events[1]["payload"], "cash");
    assert_eq!(page["lastEvaluatedRevision"], 2);

    let details = send(&app, "stream-details.json").await;
    assert_eq!(details.status, StatusCode::OK);
    assert_eq!(details.json()["stream"]["revision"], 2);
}

#[tokio::test]
async fn client_errors_are_json_with_their_code() {
    let app = app();
    let missing = send(&app, "wrong-revision.json").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["code"], "not-found");

    assert_eq!(
        send(&app, "append-batch.json").await.status,
        StatusCode::CREATED
    );
    let conflict = send(&app, "wrong-revision.json").await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert_eq!(conflict.json()["code"], "wrong-expected-revision");
    assert_eq!(
        conflict.json()["requestId"].as_str(),
        conflict.request_id.as_deref()
    );

    let bad = send(&app, "bad-revision-query.json").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["code"], "bad-request");
}

#[tokio::test]
async fn the_openapi_document_and_page_are_served() {
    let app = app();
    let spec = send(&app, "openapi-spec.json").await;
    assert_eq!(spec.status, StatusCode::OK);
    let doc = spec.json();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    assert!(doc["paths"]["/liveness-check"].is_object());

    let page = send(&app, "openapi-page.json").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.content_type.starts_with("text/html"),
        "{}",
        page.content_type
    );
    assert!(String::from_utf8_lossy(&page.body).contains("swagger"));
}

/// A Function URL event for `method path` with `body`, signed (as the
/// `AWS_IAM` auth saw it) by `caller`, if any.
fn event(method: &str, path: &str, body: Option<&str>, caller: Option<&str>) -> String {
    let mut e: Value = serde_json::from_str(&fixture("stream-details.json")).unwrap();
    e["rawPath"] = path.into();
    e["requestContext"]["http"]["method"] = method.into();
    e["requestContext"]["http"]["path"] = path.into();
    if let Some(body) = body {
        e["body"] = body.into();
        e["headers"]["content-type"] = "application/json".into();
    }
    if let Some(arn) = caller {
        e["requestContext"]["authorizer"] = serde_json::json!({"iam": {
            "accessKey": "AKIAEXAMPLE", "accountId": "111122223333",
            "callerId": "AROAEXAMPLE:session", "userArn": arn, "userId": "AROAEXAMPLE:session"
        }});
    }
    e.to_string()
}

async fn send_event(app: &axum::Router, event: &str) -> StatusCode {
    let request = lambda_http::request::from_str(event).expect("a Function URL event");
    app.clone().oneshot(request).await.unwrap().status()
}

/// With `EVENT_STORE_ADMIN_PRINCIPALS`, only those IAM principals (or
/// sessions of those roles) may delete and truncate; other signed callers
/// get 403 and change nothing, and still append and read.
#[tokio::test]
async fn only_admin_principals_delete_and_truncate() {
    use eventstore_lambda::api::function_router_with_admins;
    let app = function_router_with_admins(
        AppState::new(Arc::new(MemoryStore::new())),
        vec!["arn:aws:iam::111122223333:role/ops/EventStoreAdmin".into()],
    );
    let writer = Some("arn:aws:sts::111122223333:assumed-role/OrderService/i-0abc");
    let admin = Some("arn:aws:sts::111122223333:assumed-role/EventStoreAdmin/alice");
    let batch = r#"{"expectedRevision":"no-stream","events":[{"eventType":"A","payload":1},{"eventType":"B","payload":2}]}"#;
    assert_eq!(
        send_event(
            &app,
            &event("POST", "/streams/order/o-9/events", Some(batch), writer)
        )
        .await,
        StatusCode::CREATED
    );
    let truncate = Some(r#"{"beforeRevision":2}"#);
    for caller in [writer, None] {
        assert_eq!(
            send_event(&app, &event("DELETE", "/streams/order/o-9", None, caller)).await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            send_event(
                &app,
                &event("POST", "/streams/order/o-9/truncate", truncate, caller)
            )
            .await,
            StatusCode::FORBIDDEN
        );
    }
    let details = event("GET", "/streams/order/o-9/details", None, writer);
    assert_eq!(send_event(&app, &details).await, StatusCode::OK);
    assert_eq!(
        send_event(
            &app,
            &event("POST", "/streams/order/o-9/truncate", truncate, admin)
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        send_event(&app, &event("DELETE", "/streams/order/o-9", None, admin)).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(send_event(&app, &details).await, StatusCode::GONE);
}
