//! Deleting and truncating streams over HTTP: the answers, the bad input
//! that changes nothing, and the admin keys.

use std::sync::Arc;

use eventstore_core::MemoryStore;
use eventstore_http::AppState;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestServer, spawn, spawn_with};

async fn delete(s: &TestServer, path: &str) -> crate::support::Answer {
    s.request(Method::DELETE, path, None, &[]).await
}

async fn feed(s: &TestServer, path: &str) -> Vec<Value> {
    let body = s.get(path).await.assert_status(200);
    body["eventPage"]["events"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_deleted_stream_is_gone_everywhere_and_its_id_is_never_reused() {
    let s = spawn().await;
    let gone = s.create("account", json!({"owner": "ada"})).await;
    s.append_n("account", &gone, 2).await;
    let kept = s.create("account", json!({"owner": "bob"})).await;
    let path = format!("/streams/account/{gone}");

    // Bad input changes nothing.
    delete(&s, &format!("{path}?expected-revision=2"))
        .await
        .assert_error(409, "wrong-expected-revision");
    delete(&s, &format!("{path}?expected-revision=x"))
        .await
        .assert_error(400, "bad-request");
    delete(&s, "/streams/account/never")
        .await
        .assert_error(404, "not-found");
    delete(&s, "/streams/bad type/x")
        .await
        .assert_error(400, "bad-request");
    assert_eq!(s.events("account", &gone).await.len(), 3);

    let a = delete(&s, &format!("{path}?expected-revision=3")).await;
    assert_eq!(a.status, 204, "{}", a.text);
    assert!(a.text.is_empty());
    assert_eq!(delete(&s, &path).await.status, 204, "again");

    s.get(&format!("{path}/details"))
        .await
        .assert_error(410, "stream-deleted");
    s.get(&format!("{path}/events"))
        .await
        .assert_error(410, "stream-deleted");
    s.put(
        &format!("{path}/events/4"),
        &json!({"event": {"eventType": "late", "payload": 1}}),
    )
    .await
    .assert_error(410, "stream-deleted");
    s.post(
        &format!("{path}/events"),
        &json!({"expectedRevision": "any", "events": [{"eventType": "late", "payload": 1}]}),
    )
    .await
    .assert_error(410, "stream-deleted");

    let listing = s.get("/streams/account").await.assert_status(200);
    let ids: Vec<&str> = listing["streamPage"]["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["streamId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![kept.as_str()]);
    assert_eq!(
        s.stream_types().await,
        json!([{"streamType": "account", "streams": 1}])
    );

    for path in ["/events", "/streams/account/events"] {
        let entries = feed(&s, path).await;
        let of_gone: Vec<&Value> = entries.iter().filter(|e| e["streamId"] == gone).collect();
        assert_eq!(of_gone.len(), 1, "{path}: {of_gone:?}");
        assert_eq!(of_gone[0]["eventType"], "$stream-deleted");
        assert_eq!(of_gone[0]["revision"], 4);
        assert_eq!(of_gone[0]["streamType"], "account");
        assert!(
            !entries.iter().any(|e| e["payload"]["owner"] == "ada"),
            "{path}: the deleted payload is no longer served"
        );
    }
}

#[tokio::test]
async fn truncation_keeps_revisions_and_refuses_bad_bounds() {
    let s = spawn().await;
    let id = s.create("ledger", json!({"n": 0})).await;
    s.append_n("ledger", &id, 9).await;
    let path = format!("/streams/ledger/{id}/truncate");

    for body in [
        json!({"beforeRevision": 0}),
        json!({"beforeRevision": 11}),
        json!({"beforeRevision": -1}),
        json!({"beforeRevision": "3"}),
        json!({"beforeRevision": 3.5}),
        json!({"beforeRevision": 9223372036854775808u64}),
        json!({"before": 3}),
        json!({"beforeRevision": 3, "extra": true}),
        json!([]),
    ] {
        s.post(&path, &body).await.assert_error(400, "bad-request");
    }
    s.post(
        &format!("{path}?expected-revision=9"),
        &json!({"beforeRevision": 3}),
    )
    .await
    .assert_error(409, "wrong-expected-revision");
    s.post(
        "/streams/ledger/never/truncate",
        &json!({"beforeRevision": 1}),
    )
    .await
    .assert_error(404, "not-found");
    assert_eq!(s.events("ledger", &id).await.len(), 10, "nothing changed");

    // An integral float is the integer (JSON has one number type).
    let truncated = s
        .post(
            &format!("{path}?expected-revision=10"),
            &json!({"beforeRevision": 4.0}),
        )
        .await
        .assert_status(200);
    assert_eq!(truncated["stream"]["firstRevision"], 4);
    assert_eq!(truncated["stream"]["revision"], 10);
    let revisions: Vec<u64> = s
        .events("ledger", &id)
        .await
        .iter()
        .map(|e| e["revision"].as_u64().unwrap())
        .collect();
    assert_eq!(revisions, (4..=10).collect::<Vec<_>>());
    let details = s
        .get(&format!("/streams/ledger/{id}/details"))
        .await
        .assert_status(200);
    assert_eq!(details["stream"]["firstRevision"], 4);
    s.put(
        &format!("/streams/ledger/{id}/events/11"),
        &json!({"event": {"eventType": "next", "payload": 11}}),
    )
    .await
    .assert_status(201);
    let entries = feed(&s, "/events").await;
    assert_eq!(entries.len(), 8, "the feed drops revisions 1-3");

    delete(&s, &format!("/streams/ledger/{id}")).await;
    s.post(&path, &json!({"beforeRevision": 5}))
        .await
        .assert_error(410, "stream-deleted");
    // A malformed body is a 400 before the stream is looked at.
    s.post(&path, &json!({"beforeRevision": 0}))
        .await
        .assert_error(400, "bad-request");
}

#[tokio::test]
async fn with_admin_keys_only_they_delete_and_truncate() {
    let state = AppState::new(Arc::new(MemoryStore::new()))
        .with_api_keys(["user-key"])
        .with_admin_api_keys(["admin-key"]);
    let s = spawn_with(state).await;
    let user = s.api.clone().with_bearer("user-key");
    let admin = s.api.clone().with_bearer("admin-key");
    let id = user.create("doc", json!({"v": 1})).await;
    user.append_n("doc", &id, 2).await;
    let path = format!("/streams/doc/{id}");

    user.request(Method::DELETE, &path, None, &[])
        .await
        .assert_error(403, "forbidden");
    user.post(&format!("{path}/truncate"), &json!({"beforeRevision": 2}))
        .await
        .assert_error(403, "forbidden");
    s.api
        .without_bearer()
        .request(Method::DELETE, &path, None, &[])
        .await
        .assert_error(401, "unauthorized");
    assert_eq!(user.events("doc", &id).await.len(), 3, "nothing changed");

    // The admin key works everywhere a key does.
    assert_eq!(admin.events("doc", &id).await.len(), 3);
    admin
        .post(&format!("{path}/truncate"), &json!({"beforeRevision": 2}))
        .await
        .assert_status(200);
    let a = admin.request(Method::DELETE, &path, None, &[]).await;
    assert_eq!(a.status, 204, "{}", a.text);

    // Without admin keys, any valid key may delete.
    let state = AppState::new(Arc::new(MemoryStore::new())).with_api_keys(["only-key"]);
    let s = spawn_with(state).await;
    let only = s.api.clone().with_bearer("only-key");
    let id = only.create("doc", json!({"v": 1})).await;
    let a = only
        .request(Method::DELETE, &format!("/streams/doc/{id}"), None, &[])
        .await;
    assert_eq!(a.status, 204, "{}", a.text);
}
