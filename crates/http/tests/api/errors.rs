//! Server errors are JSON with a code and a request id and leak nothing
//! (the client errors are in the contract suite, `eventstore_testkit::contract`).

use serde_json::{Value, json};

fn event() -> Value {
    json!({"eventType": "x", "payload": {"k": "v"}})
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
    async fn delete_stream(
        &self,
        _: &eventstore_core::StreamKey,
        _: Option<eventstore_core::Revision>,
    ) -> Result<eventstore_core::DeleteOutcome, eventstore_core::StoreError> {
        Err(boom())
    }
    async fn truncate_stream(
        &self,
        _: &eventstore_core::StreamKey,
        _: eventstore_core::Revision,
        _: Option<eventstore_core::Revision>,
    ) -> Result<eventstore_core::StreamInfo, eventstore_core::StoreError> {
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
