//! The original service's flow and the batch append, through the front door.

use serde_json::{Value, json};

use crate::support::spawn;

#[tokio::test]
async fn original_flow_create_append_conflict_read_details_list() {
    let s = spawn().await;
    let before = eventstore_core::Timestamp::now().to_rfc3339();

    // Create with an object payload whose text must come back unchanged.
    let object_payload = r#"{"z":1,"a":[1.50,"x"],"name":"test name"}"#;
    let create_body = format!(
        r#"{{"initialEvent":{{"eventType":"something-important-happened","payload":{object_payload}}}}}"#
    );
    let a = s
        .raw(
            reqwest::Method::POST,
            "/streams/test-stream-type",
            Some("application/json"),
            create_body.into_bytes(),
        )
        .await;
    let created = a.assert_status(201);
    let stream = &created["stream"];
    let id = stream["streamId"].as_str().unwrap().to_owned();
    let uuid = uuid::Uuid::parse_str(&id).expect("server-made ids are UUIDs");
    assert_eq!(uuid.get_version_num(), 7, "server-made ids are UUIDv7");
    assert_eq!(stream["streamType"], "test-stream-type");
    assert_eq!(stream["revision"], 1);
    assert!(stream["updatedAt"].as_str().is_some());
    assert!(stream["createdAt"].as_str().is_some());

    // Append revision 2 with a string payload (as the original service took it).
    let put = json!({"event": {"eventType": "renamed", "payload": "just a string"}});
    let path = format!("/streams/test-stream-type/{id}/events/2");
    let appended = s.put(&path, &put).await.assert_status(201);
    assert_eq!(appended["stream"]["revision"], 2);

    // The same revision again is a conflict.
    let conflict = s
        .put(&path, &put)
        .await
        .assert_error(409, "wrong-expected-revision");
    assert_eq!(conflict["details"]["expectedRevision"], 1);
    assert_eq!(conflict["details"]["actualRevision"], 2);

    // Both events, payloads unchanged.
    let read = s
        .get(&format!("/streams/test-stream-type/{id}/events"))
        .await;
    let page = read.assert_status(200);
    assert!(
        read.text.contains(object_payload),
        "object payload text changed: {}",
        read.text
    );
    let events = page["eventPage"]["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["revision"], 1);
    assert_eq!(events[0]["eventType"], "something-important-happened");
    assert_eq!(events[1]["revision"], 2);
    assert_eq!(events[1]["payload"], "just a string");
    for e in events {
        assert_eq!(e["streamId"], id.as_str());
        assert_eq!(e["streamType"], "test-stream-type");
        assert!(e["eventId"].as_str().is_some());
        assert!(e["createdAt"].as_str().is_some());
        assert_eq!(e["metadata"], json!({}));
        assert!(e["position"].as_u64().is_some());
    }
    assert_eq!(page["eventPage"]["hasMore"], false);
    assert_eq!(page["eventPage"]["lastEvaluatedRevision"], 2);

    // After revision 1: only the second.
    let page = s
        .get(&format!(
            "/streams/test-stream-type/{id}/events?after-revision=1"
        ))
        .await
        .assert_status(200);
    assert_eq!(page["eventPage"]["events"].as_array().unwrap().len(), 1);

    // Details.
    let details = s
        .get(&format!("/streams/test-stream-type/{id}/details"))
        .await
        .assert_status(200);
    assert_eq!(details["stream"]["revision"], 2);
    assert_eq!(details["stream"]["streamId"], id.as_str());

    // Listing by type, with and without updated-after.
    let listed = s
        .get(&format!("/streams/test-stream-type?updated-after={before}"))
        .await
        .assert_status(200);
    let streams = listed["streamPage"]["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0]["streamId"], id.as_str());
    assert_eq!(listed["streamPage"]["hasMore"], false);
    let updated = details["stream"]["updatedAt"].as_str().unwrap();
    let later = s
        .get(&format!(
            "/streams/test-stream-type?updated-after={}",
            updated.replace('+', "%2B")
        ))
        .await
        .assert_status(200);
    assert_eq!(later["streamPage"]["streams"], json!([]));
    let all = s.get("/streams/test-stream-type").await.assert_status(200);
    assert_eq!(all["streamPage"]["streams"].as_array().unwrap().len(), 1);
    let other = s.get("/streams/other-type").await.assert_status(200);
    assert_eq!(other["streamPage"]["streams"], json!([]));
}

#[tokio::test]
async fn put_appends_only_to_existing_streams() {
    let s = spawn().await;
    // Revision 1 on a missing stream would create it: 404, nothing created.
    let put = json!({"event": {"eventType": "x", "payload": {}}});
    s.put("/streams/order/nope/events/1", &put)
        .await
        .assert_error(404, "not-found");
    s.put("/streams/order/nope/events/7", &put)
        .await
        .assert_error(404, "not-found");
    assert_eq!(s.stream_types().await, json!([]));
    // Revision 1 on an existing stream is a conflict.
    let id = s.create("order", json!({})).await;
    let c = s
        .put(&format!("/streams/order/{id}/events/1"), &put)
        .await
        .assert_error(409, "wrong-expected-revision");
    assert_eq!(c["details"]["actualRevision"], 1);
    assert_eq!(s.events("order", &id).await.len(), 1);
    // A revision beyond current + 1 is a conflict too.
    s.put(&format!("/streams/order/{id}/events/5"), &put)
        .await
        .assert_error(409, "wrong-expected-revision");
    assert_eq!(s.events("order", &id).await.len(), 1);
}

#[tokio::test]
async fn put_retry_with_same_event_id_is_recognised() {
    let s = spawn().await;
    let id = s.create("order", json!({})).await;
    let event_id = uuid::Uuid::now_v7().to_string();
    let put = json!({"event": {"eventType": "x", "payload": 1, "eventId": event_id}});
    let path = format!("/streams/order/{id}/events/2");
    s.put(&path, &put).await.assert_status(201);
    let retry = s.put(&path, &put).await.assert_status(200);
    assert_eq!(retry["stream"]["revision"], 2);
    assert_eq!(s.events("order", &id).await.len(), 2);
}

#[tokio::test]
async fn batch_append_expectations_and_idempotent_retries() {
    let s = spawn().await;
    let path = "/streams/account/acc-1/events";
    let e1 = uuid::Uuid::now_v7().to_string();
    let e2 = uuid::Uuid::now_v7().to_string();
    let batch = json!({"expectedRevision": "no-stream", "events": [
        {"eventType": "opened", "payload": {"owner": "ann"}, "eventId": e1, "metadata": {"by": "test"}},
        {"eventType": "deposited", "payload": 10, "eventId": e2},
    ]});
    let first = s.post(path, &batch).await.assert_status(201);
    assert_eq!(first["firstRevision"], 1);
    assert_eq!(first["lastRevision"], 2);
    assert_eq!(first["stream"]["revision"], 2);
    assert_eq!(first["stream"]["streamId"], "acc-1");

    // The same request again: recognised, 200, original revisions.
    let retry = s.post(path, &batch).await.assert_status(200);
    assert_eq!(retry["firstRevision"], 1);
    assert_eq!(retry["lastRevision"], 2);
    let events = s.events("account", "acc-1").await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["metadata"], json!({"by": "test"}));
    assert_eq!(events[0]["eventId"], e1.as_str());

    // Integer expectation.
    let next = json!({"expectedRevision": 2, "events": [{"eventType": "withdrawn", "payload": 3}]});
    let third = s.post(path, &next).await.assert_status(201);
    assert_eq!(third["firstRevision"], 3);

    // Stale expectation: 409 with details, nothing written.
    let stale = s
        .post(
            path,
            &json!({"expectedRevision": 1, "events": [{"eventType": "x", "payload": 0}]}),
        )
        .await
        .assert_error(409, "wrong-expected-revision");
    assert_eq!(
        stale["details"],
        json!({"expectedRevision": 1, "actualRevision": 3})
    );

    // "no-stream" on an existing stream.
    let ns = s
        .post(
            path,
            &json!({"expectedRevision": "no-stream", "events": [{"eventType": "x", "payload": 0}]}),
        )
        .await
        .assert_error(409, "wrong-expected-revision");
    assert_eq!(
        ns["details"],
        json!({"expectedRevision": "no-stream", "actualRevision": 3})
    );

    // "exists" on a missing stream.
    let ex = s
        .post(
            "/streams/account/missing/events",
            &json!({"expectedRevision": "exists", "events": [{"eventType": "x", "payload": 0}]}),
        )
        .await
        .assert_error(409, "wrong-expected-revision");
    assert_eq!(
        ex["details"],
        json!({"expectedRevision": "exists", "actualRevision": 0})
    );

    // An eventId already in the stream, in another arrangement.
    let dup = s
        .post(
            path,
            &json!({"expectedRevision": "any", "events": [
                {"eventType": "x", "payload": 0},
                {"eventType": "again", "payload": 0, "eventId": e1}]}),
        )
        .await
        .assert_error(409, "duplicate-event");
    assert_eq!(dup["details"]["eventId"], e1.as_str());

    // "any" appends.
    let any = s
        .post(
            path,
            &json!({"expectedRevision": "any", "events": [{"eventType": "x", "payload": null}]}),
        )
        .await
        .assert_status(201);
    assert_eq!(any["firstRevision"], 4);
    assert_eq!(s.events("account", "acc-1").await.len(), 4);

    // The same id under another type is another stream.
    s.post(
        "/streams/other/acc-1/events",
        &json!({"expectedRevision": 0, "events": [{"eventType": "x", "payload": 0}]}),
    )
    .await
    .assert_status(201);
    assert_eq!(s.events("other", "acc-1").await.len(), 1);
    assert_eq!(s.events("account", "acc-1").await.len(), 4);
}

#[tokio::test]
async fn stream_reads_page_forward_and_backward() {
    let s = spawn().await;
    let id = s.create("log", json!(0)).await;
    s.append_n("log", &id, 9).await;
    let revs = |page: &Value| -> Vec<u64> {
        page["eventPage"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["revision"].as_u64().unwrap())
            .collect()
    };
    // Forward pages of 4 via lastEvaluatedRevision.
    let mut after = 0;
    let mut seen = vec![];
    loop {
        let page = s
            .get(&format!(
                "/streams/log/{id}/events?after-revision={after}&limit=4"
            ))
            .await
            .assert_status(200);
        seen.extend(revs(&page));
        after = page["eventPage"]["lastEvaluatedRevision"].as_u64().unwrap();
        if page["eventPage"]["hasMore"] == false {
            break;
        }
    }
    assert_eq!(seen, (1..=10).collect::<Vec<_>>());
    // Past the end: empty page that says where it started.
    let empty = s
        .get(&format!("/streams/log/{id}/events?after-revision=10"))
        .await
        .assert_status(200);
    assert_eq!(revs(&empty), Vec::<u64>::new());
    assert_eq!(empty["eventPage"]["lastEvaluatedRevision"], 10);
    assert_eq!(empty["eventPage"]["hasMore"], false);
    // Backward from the end, then before a revision.
    let back = s
        .get(&format!(
            "/streams/log/{id}/events?direction=backward&limit=3"
        ))
        .await
        .assert_status(200);
    assert_eq!(revs(&back), vec![10, 9, 8]);
    assert_eq!(back["eventPage"]["hasMore"], true);
    let before = s
        .get(&format!(
            "/streams/log/{id}/events?direction=backward&before-revision=3"
        ))
        .await
        .assert_status(200);
    assert_eq!(revs(&before), vec![2, 1]);
    assert_eq!(before["eventPage"]["hasMore"], false);
    // A stream id that looks like a route word still works.
    s.post(
        "/streams/log/events/events",
        &json!({"expectedRevision": "no-stream", "events": [{"eventType": "x", "payload": 0}]}),
    )
    .await
    .assert_status(201);
    assert_eq!(s.events("log", "events").await.len(), 1);
    s.get("/streams/log/events/details")
        .await
        .assert_status(200);
}

#[tokio::test]
async fn liveness_types_and_request_ids() {
    let s = spawn().await;
    let live = s.get("/liveness-check").await.assert_status(200);
    assert_eq!(live["status"], "ok");
    assert!(eventstore_core::Timestamp::parse(live["at"].as_str().unwrap()).is_ok());

    s.create("b-type", json!({})).await;
    s.create("a-type", json!({})).await;
    s.create("b-type", json!({})).await;
    assert_eq!(
        s.stream_types().await,
        json!([{"streamType": "a-type", "streams": 1}, {"streamType": "b-type", "streams": 2}])
    );

    // A sane incoming request id is kept, anything else is replaced.
    let a = s
        .request(
            reqwest::Method::GET,
            "/liveness-check",
            None,
            &[("x-request-id", "abc-123")],
        )
        .await;
    assert_eq!(a.header("x-request-id"), Some("abc-123"));
    let a = s
        .request(
            reqwest::Method::GET,
            "/nope",
            None,
            &[("x-request-id", "abc-124")],
        )
        .await;
    assert_eq!(a.assert_error(404, "not-found")["requestId"], "abc-124");
    let a = s
        .request(
            reqwest::Method::GET,
            "/liveness-check",
            None,
            &[("x-request-id", "bad id{}")],
        )
        .await;
    let id = a.header("x-request-id").unwrap();
    assert_ne!(id, "bad id{}");
    assert!(uuid::Uuid::parse_str(id).is_ok());
}

#[tokio::test]
async fn pages_redirects_ui_and_no_cors_by_default() {
    let s = spawn().await;
    let root = s.get("/").await;
    assert!(root.status.is_redirection());
    let expected = if eventstore_http::ui_available() {
        "ui/"
    } else {
        "openapi/"
    };
    assert_eq!(root.header("location"), Some(expected));
    let ui = s.get("/ui").await;
    assert!(ui.status.is_redirection());
    assert_eq!(ui.header("location"), Some("ui/"));

    let index = s.get("/ui/").await;
    assert_eq!(index.status, 200);
    assert!(
        index
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(index.text.contains("<html"));
    let etag = index.header("etag").unwrap().to_owned();
    let again = s
        .request(
            reqwest::Method::GET,
            "/ui/index.html",
            None,
            &[("if-none-match", &etag)],
        )
        .await;
    assert_eq!(again.status, 304);
    if eventstore_http::ui_available() {
        let css = s.get("/ui/style.css").await;
        assert_eq!(css.status, 200);
        assert!(css.header("content-type").unwrap().starts_with("text/css"));
    }
    s.get("/ui/no-such-file.js")
        .await
        .assert_error(404, "not-found");

    let bare = s.get("/openapi").await;
    assert!(bare.status.is_redirection());
    assert_eq!(bare.header("location"), Some("openapi/"));
    let swagger = s.get("/openapi/").await;
    assert_eq!(swagger.status, 200);
    assert!(
        swagger
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let spec = s.get("/openapi/openapi-spec.json").await.assert_status(200);
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    let init = s.get("/openapi/swagger-initializer.js").await;
    assert_eq!(init.status, 200);
    assert!(init.text.contains("openapi-spec.json"));

    // CORS is off by default: no preflight answer, no allow-origin header
    // (the pages above are same-origin and need none).
    let pre = s
        .request(
            reqwest::Method::OPTIONS,
            "/streams/x",
            None,
            &[
                ("origin", "http://example.test"),
                ("access-control-request-method", "POST"),
            ],
        )
        .await;
    assert!(!pre.status.is_success(), "{}", pre.status);
    assert_eq!(pre.header("access-control-allow-origin"), None);
    let get = s
        .request(
            reqwest::Method::GET,
            "/streams",
            None,
            &[("origin", "http://example.test")],
        )
        .await;
    assert_eq!(get.status, 200);
    assert_eq!(get.header("access-control-allow-origin"), None);
}
