//! The cases of the contract suite, one public async function each.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use super::Target;
use crate::http::Api;

/// Every case, by name, in the order [`run_all`] runs them.
pub const CASES: &[&str] = &[
    "original_flow",
    "put_appends_only_to_existing_streams",
    "batch_expectations",
    "retries_are_answered_with_the_original_revisions",
    "concurrent_writers_race",
    "stream_reads_page_both_ways",
    "listings_page_in_update_order",
    "feeds_page_in_order_and_filter_by_type",
    "long_polls_wake_and_time_out",
    "stream_types_liveness_and_request_ids",
    "authentication",
    "unknown_routes_methods_and_media_types",
    "malformed_bodies",
    "invalid_path_segments_and_queries",
    "limits",
    "extreme_values_round_trip",
    "documents_and_pages",
    "deletion_and_truncation",
    "deletion_races_appends",
    "deletion_during_a_feed_read",
    "truncation_races_appends",
];

/// Runs every case on one target in turn (for a target that is costly to
/// start), printing each case's name and time.
pub async fn run_all(t: &Target) {
    for name in CASES {
        let started = Instant::now();
        eprintln!("{}: {name} ...", t.profile.name);
        run_case(t, name).await;
        eprintln!("{}: {name} ok ({:?})", t.profile.name, started.elapsed());
    }
}

/// Runs the case called `name`.
pub async fn run_case(t: &Target, name: &str) {
    match name {
        "original_flow" => original_flow(t).await,
        "put_appends_only_to_existing_streams" => put_appends_only_to_existing_streams(t).await,
        "batch_expectations" => batch_expectations(t).await,
        "retries_are_answered_with_the_original_revisions" => {
            retries_are_answered_with_the_original_revisions(t).await
        }
        "concurrent_writers_race" => concurrent_writers_race(t).await,
        "stream_reads_page_both_ways" => stream_reads_page_both_ways(t).await,
        "listings_page_in_update_order" => listings_page_in_update_order(t).await,
        "feeds_page_in_order_and_filter_by_type" => feeds_page_in_order_and_filter_by_type(t).await,
        "long_polls_wake_and_time_out" => long_polls_wake_and_time_out(t).await,
        "stream_types_liveness_and_request_ids" => stream_types_liveness_and_request_ids(t).await,
        "authentication" => authentication(t).await,
        "unknown_routes_methods_and_media_types" => unknown_routes_methods_and_media_types(t).await,
        "malformed_bodies" => malformed_bodies(t).await,
        "invalid_path_segments_and_queries" => invalid_path_segments_and_queries(t).await,
        "limits" => limits(t).await,
        "extreme_values_round_trip" => extreme_values_round_trip(t).await,
        "documents_and_pages" => documents_and_pages(t).await,
        "deletion_and_truncation" => deletion_and_truncation(t).await,
        "deletion_races_appends" => deletion_races_appends(t).await,
        "deletion_during_a_feed_read" => deletion_during_a_feed_read(t).await,
        "truncation_races_appends" => truncation_races_appends(t).await,
        other => panic!("no contract case {other:?}"),
    }
}

fn page_events(page: &Value) -> Vec<Value> {
    page["eventPage"]["events"]
        .as_array()
        .unwrap_or_else(|| panic!("not an event page: {page}"))
        .clone()
}

fn revs(page: &Value) -> Vec<u64> {
    page_events(page)
        .iter()
        .map(|e| e["revision"].as_u64().unwrap())
        .collect()
}

fn positions(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .map(|e| {
            e["position"]
                .as_u64()
                .unwrap_or_else(|| panic!("a feed event has a position: {e}"))
        })
        .collect()
}

fn event(n: u64) -> Value {
    json!({"eventType": "tick", "payload": {"n": n}})
}

fn ids_of(events: &[Value]) -> Vec<Value> {
    events.iter().map(|e| e["eventId"].clone()).collect()
}

fn listed_ids(page: &Value) -> Vec<String> {
    page["streamPage"]["streams"]
        .as_array()
        .unwrap_or_else(|| panic!("not a stream page: {page}"))
        .iter()
        .map(|s| s["streamId"].as_str().unwrap().to_owned())
        .collect()
}

/// Every event of a feed path (`/events` or `/streams/T/events`) after
/// `after`, paging by `limit`, checking the page shape on the way.
async fn read_feed(api: &Api, path: &str, after: u64, limit: u64) -> Vec<Value> {
    let mut after = after;
    let mut out = Vec::new();
    loop {
        let answer = api
            .get(&format!("{path}?after-position={after}&limit={limit}"))
            .await;
        let link = answer.header("link").map(str::to_owned);
        let page = answer.assert_status(200);
        let events = page_events(&page);
        assert!(events.len() as u64 <= limit, "{page}");
        let last = page["eventPage"]["lastPosition"].as_u64().unwrap();
        // Every feed page names the next one (a query resolved against
        // the URL asked), before its body is read.
        assert_eq!(
            link.as_deref(),
            Some(format!("<?after-position={last}&limit={limit}>; rel=\"next\"").as_str()),
            "{path}: the Link header names the next page"
        );
        match events.last() {
            Some(e) => assert_eq!(e["position"].as_u64(), Some(last), "{page}"),
            None => assert_eq!(last, after, "an empty page says where it started"),
        }
        out.extend(events);
        after = last;
        if page["eventPage"]["hasMore"] == false {
            return out;
        }
    }
}

/// The stream types listed by `GET /streams` with their counts, for `types`
/// only, once they are as `want` says (settled).
async fn type_counts(t: &Target, want: &[(&str, u64)]) -> Value {
    let want_json: Vec<Value> = want
        .iter()
        .map(|(ty, n)| json!({"streamType": ty, "streams": n}))
        .collect();
    let names: HashSet<&str> = want.iter().map(|(ty, _)| *ty).collect();
    let body = t
        .settled("/streams", |b| {
            let mine: Vec<Value> = b["streamTypes"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| names.contains(e["streamType"].as_str().unwrap()))
                .cloned()
                .collect();
            mine == want_json
        })
        .await;
    let all = body["streamTypes"].as_array().unwrap();
    let sorted: Vec<&str> = all
        .iter()
        .map(|e| e["streamType"].as_str().unwrap())
        .collect();
    assert!(
        sorted.windows(2).all(|w| w[0] < w[1]),
        "stream types are sorted by name: {sorted:?}"
    );
    body
}

/// The original service's flow (its README): create, append at a
/// revision, a conflict, read, details, list by type; and the feeds.
pub async fn original_flow(t: &Target) {
    let api = &t.api;
    let ty = t.ty("flow");
    let live = api.get("/liveness-check").await.assert_status(200);
    assert_eq!(live["status"], "ok");

    // Create with an object payload whose text must come back unchanged.
    let object_payload = r#"{"z":1,"a":[1.50,"x"],"name":"test name"}"#;
    let create_body = format!(
        r#"{{"initialEvent":{{"eventType":"something-important-happened","payload":{object_payload}}}}}"#
    );
    let created = api
        .raw(
            Method::POST,
            &format!("/streams/{ty}"),
            Some("application/json"),
            create_body.into_bytes(),
        )
        .await
        .assert_status(201);
    let stream = &created["stream"];
    let id = stream["streamId"].as_str().unwrap().to_owned();
    let uuid = uuid::Uuid::parse_str(&id).expect("server-made ids are UUIDs");
    assert_eq!(uuid.get_version_num(), 7, "server-made ids are UUIDv7");
    assert_eq!(stream["streamType"], ty.as_str());
    assert_eq!(stream["revision"], 1);
    assert!(stream["updatedAt"].as_str().is_some(), "{created}");
    assert!(stream["createdAt"].as_str().is_some(), "{created}");

    // Append revision 2 with a string payload (as the original took it).
    let put = json!({"event": {"eventType": "renamed", "payload": "just a string"}});
    let path = format!("/streams/{ty}/{id}/events/2");
    let appended = api.put(&path, &put).await.assert_status(201);
    assert_eq!(appended["stream"]["revision"], 2);
    let conflict = api
        .put(&path, &put)
        .await
        .assert_error(409, "wrong-expected-revision");
    assert_eq!(
        conflict["details"],
        json!({"expectedRevision": 1, "actualRevision": 2})
    );

    // Both events, payloads unchanged, every field there.
    let read = api.get(&format!("/streams/{ty}/{id}/events")).await;
    let page = read.assert_status(200);
    assert!(
        read.text.contains(object_payload),
        "the object payload's text changed: {}",
        read.text
    );
    let events = page_events(&page);
    assert_eq!(revs(&page), [1, 2]);
    assert_eq!(events[0]["eventType"], "something-important-happened");
    assert_eq!(events[1]["payload"], "just a string");
    for e in &events {
        assert_eq!(e["streamId"], id.as_str());
        assert_eq!(e["streamType"], ty.as_str());
        assert!(uuid::Uuid::parse_str(e["eventId"].as_str().unwrap()).is_ok());
        assert!(e["createdAt"].as_str().is_some());
        assert_eq!(e["metadata"], json!({}));
        if t.profile.feed_is_eventually_consistent {
            assert!(
                e.get("position").is_none_or(|p| p.as_u64().is_some()),
                "{e}"
            );
        } else {
            assert!(e["position"].as_u64().is_some(), "{e}");
        }
    }
    assert_eq!(page["eventPage"]["hasMore"], false);
    assert_eq!(page["eventPage"]["lastEvaluatedRevision"], 2);
    let rest = api
        .get(&format!("/streams/{ty}/{id}/events?after-revision=1"))
        .await
        .assert_status(200);
    assert_eq!(revs(&rest), [2]);

    let details = api
        .get(&format!("/streams/{ty}/{id}/details"))
        .await
        .assert_status(200);
    assert_eq!(details["stream"]["revision"], 2);
    assert_eq!(details["stream"]["streamId"], id.as_str());
    assert_eq!(details["stream"]["createdAt"], stream["createdAt"]);

    // Listing by type, with and without updated-after.
    let listed = t
        .settled(
            &format!("/streams/{ty}?updated-after=2020-01-01T00:00:00Z"),
            |b| b["streamPage"]["streams"][0]["revision"] == 2,
        )
        .await;
    assert_eq!(listed_ids(&listed), std::slice::from_ref(&id));
    assert_eq!(listed["streamPage"]["hasMore"], false);
    assert_eq!(
        listed["streamPage"]["streams"][0]["updatedAt"],
        details["stream"]["updatedAt"]
    );
    let updated = details["stream"]["updatedAt"].as_str().unwrap();
    let later = api
        .get(&format!(
            "/streams/{ty}?updated-after={}",
            updated.replace('+', "%2B")
        ))
        .await
        .assert_status(200);
    assert_eq!(later["streamPage"]["streams"], json!([]));
    let all = api.get(&format!("/streams/{ty}")).await.assert_status(200);
    assert_eq!(listed_ids(&all), std::slice::from_ref(&id));
    let other = api
        .get(&format!("/streams/{}", t.ty("other")))
        .await
        .assert_status(200);
    assert_eq!(
        other["streamPage"],
        json!({"streams": [], "hasMore": false})
    );

    // The type feed and the global feed: both events, in revision order.
    let typed = t
        .settled(&format!("/streams/{ty}/events"), |b| {
            b["eventPage"]["events"]
                .as_array()
                .is_some_and(|a| a.len() == 2)
        })
        .await;
    let fe = page_events(&typed);
    let pos = positions(&fe);
    assert!(pos[0] >= 1 && pos[0] < pos[1], "{pos:?}");
    assert_eq!(ids_of(&fe), ids_of(&events));
    assert_eq!(typed["eventPage"]["lastPosition"], json!(pos[1]));
    for (f, e) in fe.iter().zip(&events) {
        let mut e = e.clone();
        e["position"] = f["position"].clone();
        assert_eq!(
            f, &e,
            "a feed event is the stream's event with its position"
        );
    }
    let global = read_feed(api, "/events", pos[0] - 1, 1000).await;
    let mine: Vec<Value> = global
        .into_iter()
        .filter(|e| e["streamType"] == ty.as_str())
        .collect();
    assert_eq!(mine, fe, "the global feed holds the same events");
    let after_first = api
        .get(&format!("/streams/{ty}/events?after-position={}", pos[0]))
        .await
        .assert_status(200);
    assert_eq!(positions(&page_events(&after_first)), [pos[1]]);

    // Unknown streams.
    for path in [
        format!("/streams/{ty}/no-such-stream/details"),
        format!("/streams/{ty}/no-such-stream/events"),
    ] {
        api.get(&path).await.assert_error(404, "not-found");
    }
    api.put(
        &format!("/streams/{ty}/no-such-stream/events/2"),
        &json!({"event": event(1)}),
    )
    .await
    .assert_error(404, "not-found");
}

/// `PUT …/events/{revision}` appends only to existing streams, at current
/// + 1, and recognises its retry.
pub async fn put_appends_only_to_existing_streams(t: &Target) {
    let api = &t.api;
    let ty = t.ty("put");
    let put = json!({"event": {"eventType": "x", "payload": {}}});
    // Revision 1 on a missing stream would create it: 404, nothing created.
    for rev in [1, 7] {
        api.put(&format!("/streams/{ty}/nope/events/{rev}"), &put)
            .await
            .assert_error(404, "not-found");
    }
    api.get(&format!("/streams/{ty}/nope/details"))
        .await
        .assert_error(404, "not-found");
    let id = api.create(&ty, json!({})).await;
    // Revision 1 again, or beyond current + 1: conflicts.
    let c = api
        .put(&format!("/streams/{ty}/{id}/events/1"), &put)
        .await
        .assert_error(409, "wrong-expected-revision");
    assert_eq!(c["details"]["actualRevision"], 1);
    let c = api
        .put(&format!("/streams/{ty}/{id}/events/5"), &put)
        .await
        .assert_error(409, "wrong-expected-revision");
    assert_eq!(
        c["details"],
        json!({"expectedRevision": 4, "actualRevision": 1})
    );
    assert_eq!(api.events(&ty, &id).await.len(), 1);
    // A retry with the same event id, even after another append: 200.
    let event_id = uuid::Uuid::now_v7().to_string();
    let with_id = json!({"event": {"eventType": "x", "payload": 1, "eventId": event_id}});
    let path = format!("/streams/{ty}/{id}/events/2");
    let first = api.put(&path, &with_id).await.assert_status(201);
    assert_eq!(first["stream"]["revision"], 2);
    let retry = api.put(&path, &with_id).await.assert_status(200);
    assert_eq!(retry["stream"]["streamId"], id.as_str());
    api.put(&format!("/streams/{ty}/{id}/events/3"), &put)
        .await
        .assert_status(201);
    api.put(&path, &with_id).await.assert_status(200);
    let events = api.events(&ty, &id).await;
    assert_eq!(events.len(), 3);
    assert_eq!(events[1]["eventId"], event_id.as_str());
}

/// The batch append's expectations: an integer, `no-stream`, `exists`,
/// `any`; the 409 details; a duplicate event id; types are namespaces.
pub async fn batch_expectations(t: &Target) {
    let api = &t.api;
    let ty = t.ty("account");
    let path = format!("/streams/{ty}/acc-1/events");
    let (e1, e2) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let batch = json!({"expectedRevision": "no-stream", "events": [
        {"eventType": "opened", "payload": {"owner": "ann"}, "eventId": e1, "metadata": {"by": "test"}},
        {"eventType": "deposited", "payload": 10, "eventId": e2},
    ]});
    let first = api.post(&path, &batch).await.assert_status(201);
    assert_eq!(
        (
            &first["firstRevision"],
            &first["lastRevision"],
            &first["stream"]["revision"]
        ),
        (&json!(1), &json!(2), &json!(2))
    );
    assert_eq!(first["stream"]["streamId"], "acc-1");
    assert_eq!(first["stream"]["streamType"], ty.as_str());
    let events = api.events(&ty, "acc-1").await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["metadata"], json!({"by": "test"}));
    assert_eq!(events[0]["eventId"], e1.to_string());
    assert_eq!(events[1]["eventId"], e2.to_string());

    let third = api
        .post(
            &path,
            &json!({"expectedRevision": 2, "events": [{"eventType": "withdrawn", "payload": 3}]}),
        )
        .await
        .assert_status(201);
    assert_eq!(
        (&third["firstRevision"], &third["lastRevision"]),
        (&json!(3), &json!(3))
    );

    let cases = [
        (
            json!(1),
            &path,
            json!({"expectedRevision": 1, "actualRevision": 3}),
        ),
        (
            json!(0),
            &path,
            json!({"expectedRevision": 0, "actualRevision": 3}),
        ),
        (
            json!(9),
            &path,
            json!({"expectedRevision": 9, "actualRevision": 3}),
        ),
        (
            json!("no-stream"),
            &path,
            json!({"expectedRevision": "no-stream", "actualRevision": 3}),
        ),
    ];
    for (expected, p, details) in cases {
        let c = api
            .post(
                p,
                &json!({"expectedRevision": expected, "events": [event(0)]}),
            )
            .await
            .assert_error(409, "wrong-expected-revision");
        assert_eq!(c["details"], details);
    }
    let missing = format!("/streams/{ty}/missing/events");
    for expected in [json!("exists"), json!(1)] {
        let c = api
            .post(
                &missing,
                &json!({"expectedRevision": expected, "events": [event(0)]}),
            )
            .await
            .assert_error(409, "wrong-expected-revision");
        assert_eq!(
            c["details"],
            json!({"expectedRevision": expected, "actualRevision": 0})
        );
    }
    api.get(&format!("/streams/{ty}/missing/details"))
        .await
        .assert_error(404, "not-found");

    // An event id already in the stream, in another arrangement.
    let dup = api
        .post(
            &path,
            &json!({"expectedRevision": "any", "events": [
                event(0), {"eventType": "again", "payload": 0, "eventId": e1}]}),
        )
        .await
        .assert_error(409, "duplicate-event");
    assert_eq!(dup["details"]["eventId"], e1.to_string());

    let any = api
        .post(
            &path,
            &json!({"expectedRevision": "any", "events": [{"eventType": "x", "payload": null}]}),
        )
        .await
        .assert_status(201);
    assert_eq!(any["firstRevision"], 4);
    let exists = api
        .post(
            &path,
            &json!({"expectedRevision": "exists", "events": [event(1), event(2)]}),
        )
        .await
        .assert_status(201);
    assert_eq!(
        (&exists["firstRevision"], &exists["lastRevision"]),
        (&json!(5), &json!(6))
    );
    let new = api
        .post(
            &format!("/streams/{ty}/acc-2/events"),
            &json!({"expectedRevision": "any", "events": [event(1)]}),
        )
        .await
        .assert_status(201);
    assert_eq!(new["firstRevision"], 1);
    assert_eq!(api.events(&ty, "acc-1").await.len(), 6);

    // The same id under another type is another stream.
    let other = t.ty("other");
    api.post(
        &format!("/streams/{other}/acc-1/events"),
        &json!({"expectedRevision": 0, "events": [event(0)]}),
    )
    .await
    .assert_status(201);
    assert_eq!(api.events(&other, "acc-1").await.len(), 1);
    assert_eq!(api.events(&ty, "acc-1").await.len(), 6);
}

/// A retry (the same event ids) is answered 200 with the original
/// revisions, whatever its expectation and however many appends came
/// between; an id in another arrangement is a `duplicate-event`.
pub async fn retries_are_answered_with_the_original_revisions(t: &Target) {
    let api = &t.api;
    let ty = t.ty("retry");
    let path = format!("/streams/{ty}/r/events");
    let with_ids = |expected: Value, n: usize| {
        let events: Vec<Value> = (0..n)
            .map(|i| json!({"eventType": "e", "payload": i, "eventId": uuid::Uuid::now_v7()}))
            .collect();
        json!({"expectedRevision": expected, "events": events})
    };
    let mut total = 0u64;
    let mut requests = Vec::new();
    // `null` stands for the stream's current revision (an integer).
    for expected in [
        json!("no-stream"),
        Value::Null,
        json!("any"),
        json!("exists"),
        Value::Null,
    ] {
        let expected = if expected.is_null() {
            json!(total)
        } else {
            expected
        };
        let body = with_ids(expected.clone(), 2);
        let a = api.post(&path, &body).await.assert_status(201);
        assert_eq!(a["firstRevision"], total + 1, "{expected}: {a}");
        assert_eq!(a["lastRevision"], total + 2);
        requests.push((body, total + 1));
        total += 2;
        // Another writer appends in between.
        api.post(
            &path,
            &json!({"expectedRevision": "any", "events": [event(total)]}),
        )
        .await
        .assert_status(201);
        total += 1;
        // Every retry so far is still recognised.
        for (body, first) in &requests {
            let r = api.post(&path, body).await.assert_status(200);
            assert_eq!(
                (&r["firstRevision"], &r["lastRevision"]),
                (&json!(first), &json!(first + 1)),
                "retry of {body}: {r}"
            );
            assert_eq!(r["stream"]["revision"], total, "{r}");
        }
    }
    let events = api.events(&ty, "r").await;
    assert_eq!(events.len() as u64, total, "nothing was stored twice");
    let rs: Vec<u64> = events
        .iter()
        .map(|e| e["revision"].as_u64().unwrap())
        .collect();
    assert_eq!(rs, (1..=total).collect::<Vec<_>>());

    // Part of a request, the ids reordered, or an old id with a new one:
    // another arrangement, so a duplicate.
    let (old, _) = &requests[1];
    let ids: Vec<Value> = old["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventId"].clone())
        .collect();
    let base = old["expectedRevision"].clone();
    let arrangements = [
        json!({"expectedRevision": base, "events": [old["events"][1]]}),
        json!({"expectedRevision": base, "events": [old["events"][1], old["events"][0]]}),
        json!({"expectedRevision": "any", "events": [old["events"][0], event(0)]}),
    ];
    for body in arrangements {
        let d = api
            .post(&path, &body)
            .await
            .assert_error(409, "duplicate-event");
        assert!(ids.contains(&d["details"]["eventId"]), "{d}");
    }
    assert_eq!(api.events(&ty, "r").await.len() as u64, total);
}

/// Of concurrent appends expecting the same revision exactly one wins;
/// concurrent `any` appends are all stored, each one contiguous.
pub async fn concurrent_writers_race(t: &Target) {
    let ty = t.ty("race");
    let api = Arc::new(t.api.clone());
    let id = api.create(&ty, json!(0)).await;
    let writers = 8;
    let racing: Vec<_> = (0..writers)
        .map(|w| {
            let (api, ty, id) = (api.clone(), ty.clone(), id.clone());
            tokio::spawn(async move {
                let a = api
                    .post(
                        &format!("/streams/{ty}/{id}/events"),
                        &json!({"expectedRevision": 1, "events": [
                            {"eventType": "won", "payload": {"w": w, "i": 0}},
                            {"eventType": "won", "payload": {"w": w, "i": 1}}]}),
                    )
                    .await;
                (w, a.status.as_u16(), a.json())
            })
        })
        .collect();
    let mut winners = Vec::new();
    for r in racing {
        let (w, status, body) = r.await.unwrap();
        match status {
            201 => winners.push(w),
            409 => {
                assert_eq!(body["code"], "wrong-expected-revision");
                assert_eq!(
                    body["details"],
                    json!({"expectedRevision": 1, "actualRevision": 3})
                );
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one writer wins: {winners:?}");
    let events = api.events(&ty, &id).await;
    assert_eq!(events.len(), 3);
    assert_eq!(events[1]["payload"], json!({"w": winners[0], "i": 0}));
    assert_eq!(events[2]["payload"], json!({"w": winners[0], "i": 1}));

    let any: Vec<_> = (0..writers)
        .map(|w| {
            let (api, ty, id) = (api.clone(), ty.clone(), id.clone());
            tokio::spawn(async move {
                api.post(
                    &format!("/streams/{ty}/{id}/events"),
                    &json!({"expectedRevision": "any", "events": [
                        {"eventType": "any", "payload": {"w": w, "i": 0}},
                        {"eventType": "any", "payload": {"w": w, "i": 1}}]}),
                )
                .await
                .assert_status(201)
            })
        })
        .collect();
    let mut firsts = Vec::new();
    for a in any {
        let body = a.await.unwrap();
        let first = body["firstRevision"].as_u64().unwrap();
        assert_eq!(body["lastRevision"], first + 1);
        firsts.push(first);
    }
    firsts.sort();
    assert_eq!(firsts, (0..writers).map(|i| 4 + 2 * i).collect::<Vec<_>>());
    let events = api.events(&ty, &id).await;
    assert_eq!(events.len() as u64, 3 + 2 * writers);
    for pair in events[3..].chunks(2) {
        assert_eq!(pair[0]["payload"]["w"], pair[1]["payload"]["w"], "atomic");
        assert_eq!(pair[0]["payload"]["i"], 0);
    }
}

/// Stream reads: forward pages by `lastEvaluatedRevision`, the empty page
/// past the end, backward reads from the end and before a revision.
pub async fn stream_reads_page_both_ways(t: &Target) {
    let api = &t.api;
    let ty = t.ty("log");
    let id = api.create(&ty, json!(0)).await;
    api.append_n(&ty, &id, 9).await;
    let mut after = 0;
    let mut seen = vec![];
    let mut pages = 0;
    loop {
        let page = api
            .get(&format!(
                "/streams/{ty}/{id}/events?after-revision={after}&limit=4"
            ))
            .await
            .assert_status(200);
        pages += 1;
        seen.extend(revs(&page));
        after = page["eventPage"]["lastEvaluatedRevision"].as_u64().unwrap();
        if page["eventPage"]["hasMore"] == false {
            break;
        }
    }
    assert_eq!(seen, (1..=10).collect::<Vec<_>>());
    assert_eq!(pages, 3);
    let exact = api
        .get(&format!("/streams/{ty}/{id}/events?limit=10"))
        .await
        .assert_status(200);
    assert_eq!(revs(&exact), (1..=10).collect::<Vec<_>>());
    assert_eq!(exact["eventPage"]["hasMore"], false);
    let one = api
        .get(&format!(
            "/streams/{ty}/{id}/events?after-revision=9&limit=1"
        ))
        .await
        .assert_status(200);
    assert_eq!(revs(&one), [10]);
    assert_eq!(one["eventPage"]["hasMore"], false);
    for past in [10, 11, 1000] {
        let empty = api
            .get(&format!("/streams/{ty}/{id}/events?after-revision={past}"))
            .await
            .assert_status(200);
        assert_eq!(
            empty["eventPage"],
            json!({"events": [], "hasMore": false, "lastEvaluatedRevision": past})
        );
    }
    let back = api
        .get(&format!(
            "/streams/{ty}/{id}/events?direction=backward&limit=3"
        ))
        .await
        .assert_status(200);
    assert_eq!(revs(&back), [10, 9, 8]);
    assert_eq!(back["eventPage"]["hasMore"], true);
    assert_eq!(back["eventPage"]["lastEvaluatedRevision"], 8);
    let mut before = 8;
    let mut seen = vec![];
    loop {
        let page = api
            .get(&format!(
                "/streams/{ty}/{id}/events?direction=backward&before-revision={before}&limit=3"
            ))
            .await
            .assert_status(200);
        seen.extend(revs(&page));
        before = page["eventPage"]["lastEvaluatedRevision"].as_u64().unwrap();
        if page["eventPage"]["hasMore"] == false {
            break;
        }
    }
    assert_eq!(seen, (1..=7).rev().collect::<Vec<_>>());
    let head = api
        .get(&format!(
            "/streams/{ty}/{id}/events?direction=backward&before-revision=1"
        ))
        .await
        .assert_status(200);
    assert_eq!(revs(&head), Vec::<u64>::new());
    assert_eq!(head["eventPage"]["hasMore"], false);
    let beyond = api
        .get(&format!(
            "/streams/{ty}/{id}/events?direction=backward&before-revision=50&limit=2"
        ))
        .await
        .assert_status(200);
    assert_eq!(revs(&beyond), [10, 9]);
    let forward = api
        .get(&format!(
            "/streams/{ty}/{id}/events?direction=forward&after-revision=8"
        ))
        .await
        .assert_status(200);
    assert_eq!(revs(&forward), [9, 10]);
    // A stream id that looks like a route word.
    api.post(
        &format!("/streams/{ty}/events/events"),
        &json!({"expectedRevision": "no-stream", "events": [event(0)]}),
    )
    .await
    .assert_status(201);
    assert_eq!(api.events(&ty, "events").await.len(), 1);
    api.get(&format!("/streams/{ty}/events/details"))
        .await
        .assert_status(200);
}

/// A type's streams page by `nextPageKey` in `updatedAt` order, each once;
/// `updated-after` combines with paging; a key of another listing is a 400.
pub async fn listings_page_in_update_order(t: &Target) {
    let api = &t.api;
    let ty = t.ty("pageme");
    let mut ids = vec![];
    for i in 0..7 {
        ids.push(api.create(&ty, json!(i)).await);
    }
    api.create(&t.ty("elsewhere"), json!(0)).await;
    // Touch the first one: it moves to the end of the order.
    api.append_n(&ty, &ids[0], 1).await;
    t.settled(&format!("/streams/{ty}?limit=1000"), |b| {
        b["streamPage"]["streams"].as_array().is_some_and(|s| {
            s.len() == 7 && s[6]["streamId"] == ids[0].as_str() && s[6]["revision"] == 2
        })
    })
    .await;

    let mut key: Option<String> = None;
    let mut seen = vec![];
    let mut pages = 0;
    loop {
        let path = match &key {
            Some(k) => format!("/streams/{ty}?limit=3&next-page-key={k}"),
            None => format!("/streams/{ty}?limit=3"),
        };
        let page = api.get(&path).await.assert_status(200);
        pages += 1;
        let streams = page["streamPage"]["streams"].as_array().unwrap();
        assert!(streams.len() <= 3);
        seen.extend(streams.iter().cloned());
        match page["streamPage"]["nextPageKey"].as_str() {
            Some(k) => {
                assert_eq!(page["streamPage"]["hasMore"], true);
                key = Some(k.to_owned());
            }
            None => {
                assert_eq!(page["streamPage"]["hasMore"], false);
                break;
            }
        }
    }
    assert_eq!(pages, 3);
    let seen_ids: Vec<&str> = seen
        .iter()
        .map(|s| s["streamId"].as_str().unwrap())
        .collect();
    assert_eq!(seen_ids.iter().collect::<HashSet<_>>().len(), 7);
    assert_eq!(seen_ids.last().copied(), Some(ids[0].as_str()));
    let mut expected: Vec<&str> = ids[1..].iter().map(String::as_str).collect();
    expected.push(&ids[0]);
    assert_eq!(seen_ids, expected, "update order");
    let times: Vec<&str> = seen
        .iter()
        .map(|s| s["updatedAt"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    for s in &seen {
        assert_eq!(s["streamType"], ty.as_str());
        assert!(s["createdAt"].as_str().is_some(), "{s}");
    }

    let cut = seen[3]["updatedAt"].as_str().unwrap().replace('+', "%2B");
    let after = api
        .get(&format!("/streams/{ty}?updated-after={cut}&limit=2"))
        .await
        .assert_status(200);
    assert_eq!(listed_ids(&after), seen_ids[4..6].to_vec());
    let k = after["streamPage"]["nextPageKey"].as_str().unwrap();
    let rest = api
        .get(&format!(
            "/streams/{ty}?updated-after={cut}&limit=2&next-page-key={k}"
        ))
        .await
        .assert_status(200);
    assert_eq!(listed_ids(&rest), seen_ids[6..].to_vec());
    assert_eq!(rest["streamPage"]["hasMore"], false);
    assert!(rest["streamPage"].get("nextPageKey").is_none(), "{rest}");

    // Keys that are no position in this listing.
    let other = t.ty("other");
    api.get(&format!("/streams/{other}?next-page-key={k}"))
        .await
        .assert_error(400, "bad-request");
    // Well-formed keys of this listing that are no position in it (they
    // reach the backend), and of another listing.
    let forged = |ty: &str, micros: i64| {
        eventstore_api::StreamPageKey {
            stream_type: eventstore_core::StreamType::parse(ty).unwrap(),
            cursor: eventstore_core::StreamCursor {
                updated_at: eventstore_core::Timestamp::from_micros(micros),
                stream_id: eventstore_core::StreamId::parse(&ids[0]).unwrap(),
            },
        }
        .encode()
    };
    api.get(&format!(
        "/streams/{ty}?next-page-key={}",
        forged(&other, 1_700_000_000_000_000)
    ))
    .await
    .assert_error(400, "bad-request");
    // A key before 1970 is no key the server gave: 400 on every backend.
    for micros in [-5, i64::MIN] {
        api.get(&format!(
            "/streams/{ty}?next-page-key={}",
            forged(&ty, micros)
        ))
        .await
        .assert_error(400, "bad-request");
    }
    let fine = forged(&ty, 1_700_000_000_000_000);
    let from_2023 = api
        .get(&format!("/streams/{ty}?next-page-key={fine}"))
        .await
        .assert_status(200);
    assert_eq!(
        listed_ids(&from_2023).len(),
        7,
        "a key before every stream: {from_2023}"
    );
    for bad in ["garbage!", "", "AAAA", "eyJ0IjoxfQ"] {
        api.get(&format!("/streams/{ty}?next-page-key={bad}"))
            .await
            .assert_error(400, "bad-request");
    }
}

/// The global and the type feeds page in position order, revision order
/// within a stream, and carry exactly their events.
pub async fn feeds_page_in_order_and_filter_by_type(t: &Target) {
    let api = &t.api;
    let (alpha, beta) = (t.ty("alpha"), t.ty("beta"));
    let a = api.create(&alpha, json!(0)).await;
    let b = api.create(&beta, json!(0)).await;
    api.append_n(&alpha, &a, 4).await;
    api.append_n(&beta, &b, 2).await;
    api.append_n(&alpha, &a, 3).await;
    let count = |n: usize| {
        move |v: &Value| {
            v["eventPage"]["events"]
                .as_array()
                .is_some_and(|a| a.len() == n)
        }
    };
    t.settled(&format!("/streams/{alpha}/events?limit=1000"), count(8))
        .await;
    t.settled(&format!("/streams/{beta}/events?limit=1000"), count(3))
        .await;

    let alpha_events = read_feed(api, &format!("/streams/{alpha}/events"), 0, 3).await;
    let beta_events = read_feed(api, &format!("/streams/{beta}/events"), 0, 2).await;
    assert_eq!(alpha_events.len(), 8);
    assert_eq!(beta_events.len(), 3);
    assert!(
        alpha_events
            .iter()
            .all(|e| e["streamType"] == alpha.as_str())
    );
    assert!(beta_events.iter().all(|e| e["streamType"] == beta.as_str()));
    for events in [&alpha_events, &beta_events] {
        let p = positions(events);
        assert!(p.windows(2).all(|w| w[0] < w[1]), "{p:?}");
        let r: Vec<u64> = events
            .iter()
            .map(|e| e["revision"].as_u64().unwrap())
            .collect();
        assert_eq!(r, (1..=events.len() as u64).collect::<Vec<_>>());
    }
    let start = positions(&alpha_events)[0].min(positions(&beta_events)[0]) - 1;
    let global: Vec<Value> = read_feed(api, "/events", start, 3)
        .await
        .into_iter()
        .filter(|e| e["streamType"] == alpha.as_str() || e["streamType"] == beta.as_str())
        .collect();
    let mut merged: Vec<Value> = alpha_events.iter().chain(&beta_events).cloned().collect();
    merged.sort_by_key(|e| e["position"].as_u64());
    assert_eq!(global, merged, "the global feed is the type feeds merged");

    // Resume in the middle of a type feed.
    let mid = positions(&beta_events)[1];
    let rest = api
        .get(&format!("/streams/{beta}/events?after-position={mid}"))
        .await
        .assert_status(200);
    assert_eq!(page_events(&rest), beta_events[2..].to_vec());
    assert_eq!(rest["eventPage"]["hasMore"], false);
    let page = api
        .get(&format!("/streams/{alpha}/events?limit=8"))
        .await
        .assert_status(200);
    assert_eq!(page_events(&page).len(), 8);
    // A type without streams: an empty feed, not an error.
    let none = api
        .get(&format!("/streams/{}/events", t.ty("nobody")))
        .await
        .assert_status(200);
    assert_eq!(
        none["eventPage"],
        json!({"events": [], "hasMore": false, "lastPosition": 0})
    );
}

/// `wait` holds a feed request until an event of its feed arrives or the
/// time is up; more than 30 s is a 400.
pub async fn long_polls_wake_and_time_out(t: &Target) {
    let api = Arc::new(t.api.clone());
    let (wanted, other) = (t.ty("wanted"), t.ty("other"));
    let waiter = {
        let (api, wanted) = (api.clone(), wanted.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let page = api
                .get(&format!("/streams/{wanted}/events?wait=20"))
                .await
                .assert_status(200);
            (page, started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    api.create(&other, json!(1)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiter.is_finished(),
        "events of another type do not answer the request"
    );
    let id = api.create(&wanted, json!(2)).await;
    let (page, elapsed) = tokio::time::timeout(Duration::from_secs(25), waiter)
        .await
        .expect("the waiting request answers")
        .unwrap();
    assert!(
        elapsed < Duration::from_secs(19),
        "answered by the append, not the timeout: {elapsed:?}"
    );
    let events = page_events(&page);
    assert_eq!(events.len(), 1, "{page}");
    assert_eq!(events[0]["streamId"], id.as_str());
    let p = events[0]["position"].as_u64().unwrap();
    assert_eq!(page["eventPage"]["lastPosition"], p);

    // The global feed, waiting after the last event.
    let global_waiter = {
        let api = api.clone();
        tokio::spawn(async move {
            api.get(&format!("/events?after-position={p}&wait=20&limit=1000"))
                .await
                .assert_status(200)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    api.append_n(&wanted, &id, 1).await;
    let page = tokio::time::timeout(Duration::from_secs(25), global_waiter)
        .await
        .expect("the waiting request answers")
        .unwrap();
    let events = page_events(&page);
    assert!(!events.is_empty(), "{page}");
    assert!(positions(&events).iter().all(|&q| q > p), "{page}");

    // Nothing there: no wait answers at once, wait=1 after about a second.
    let empty = t.ty("empty");
    let started = Instant::now();
    let page = api
        .get(&format!("/streams/{empty}/events?after-position=5"))
        .await
        .assert_status(200);
    assert!(started.elapsed() < Duration::from_millis(2000));
    assert_eq!(
        page["eventPage"],
        json!({"events": [], "hasMore": false, "lastPosition": 5})
    );
    let started = Instant::now();
    let page = api
        .get(&format!("/streams/{empty}/events?wait=1"))
        .await
        .assert_status(200);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    assert!(waited < Duration::from_secs(8), "{waited:?}");
    assert_eq!(page["eventPage"]["events"], json!([]));
    for path in [
        "/events?wait=31".to_owned(),
        format!("/streams/{empty}/events?wait=31"),
        "/events?wait=-1".to_owned(),
        "/events?wait=1.5".to_owned(),
    ] {
        api.get(&path).await.assert_error(400, "bad-request");
    }
}

/// `GET /streams` counts each type's streams; liveness; request ids are
/// kept when sane and made otherwise.
pub async fn stream_types_liveness_and_request_ids(t: &Target) {
    let api = &t.api;
    let live = api.get("/liveness-check").await.assert_status(200);
    assert_eq!(live["status"], "ok");
    assert!(eventstore_core::Timestamp::parse(live["at"].as_str().unwrap()).is_ok());

    let (a, b) = (t.ty("ta"), t.ty("tb"));
    api.create(&b, json!({})).await;
    api.create(&a, json!({})).await;
    api.create(&b, json!({})).await;
    let body = type_counts(t, &[(&a, 1), (&b, 2)]).await;
    assert!(body["streamTypes"].as_array().unwrap().len() >= 2);

    let kept = api
        .request(
            Method::GET,
            "/liveness-check",
            None,
            &[("x-request-id", "abc-123")],
        )
        .await;
    assert_eq!(kept.header("x-request-id"), Some("abc-123"));
    let err = api
        .request(Method::GET, "/nope", None, &[("x-request-id", "abc-124")])
        .await;
    assert_eq!(err.assert_error(404, "not-found")["requestId"], "abc-124");
    let made = api
        .request(
            Method::GET,
            "/liveness-check",
            None,
            &[("x-request-id", "bad id{}")],
        )
        .await;
    let id = made.header("x-request-id").unwrap();
    assert_ne!(id, "bad id{}");
    assert!(uuid::Uuid::parse_str(id).is_ok());
}

/// With an API key every data route needs it (401 `unauthorized`), and
/// liveness and the pages do not; where the host authenticates (a
/// Function URL), the router serves every request.
pub async fn authentication(t: &Target) {
    let anonymous = t.api.without_bearer();
    let ty = t.ty("auth");
    anonymous.get("/liveness-check").await.assert_status(200);
    assert_eq!(
        anonymous.get("/openapi/openapi-spec.json").await.status,
        200
    );
    let create = json!({"initialEvent": event(0)});
    match &t.profile.api_key {
        Some(key) => {
            let wrong = anonymous.clone().with_bearer(&format!("{key}x"));
            for api in [&anonymous, &wrong] {
                for path in [
                    "/streams".to_owned(),
                    "/events".to_owned(),
                    format!("/streams/{ty}"),
                    format!("/streams/{ty}/events"),
                    format!("/streams/{ty}/s/details"),
                    format!("/streams/{ty}/s/events"),
                ] {
                    let a = api.get(&path).await;
                    a.assert_error(401, "unauthorized");
                    assert_eq!(a.header("www-authenticate"), Some("Bearer"));
                }
                api.post(&format!("/streams/{ty}"), &create)
                    .await
                    .assert_error(401, "unauthorized");
                api.post(
                    &format!("/streams/{ty}/s/events"),
                    &json!({"expectedRevision": "any", "events": [event(0)]}),
                )
                .await
                .assert_error(401, "unauthorized");
            }
            let listed = t
                .api
                .get(&format!("/streams/{ty}"))
                .await
                .assert_status(200);
            assert_eq!(
                listed["streamPage"]["streams"],
                json!([]),
                "nothing created"
            );
        }
        None => {
            anonymous
                .post(&format!("/streams/{ty}"), &create)
                .await
                .assert_status(201);
            anonymous.get("/streams").await.assert_status(200);
        }
    }
}

/// A stream `T/s1` with two events, and the snapshot to compare with.
async fn setup_two(t: &Target) -> (String, Vec<Value>) {
    let ty = t.ty("order");
    t.api
        .post(
            &format!("/streams/{ty}/s1/events"),
            &json!({"expectedRevision": "no-stream", "events": [
                {"eventType": "a", "payload": {"n": 1}}, {"eventType": "b", "payload": "two"}]}),
        )
        .await
        .assert_status(201);
    let events = t.api.events(&ty, "s1").await;
    (ty, events)
}

async fn unchanged(t: &Target, ty: &str, events: &[Value]) {
    let now = t.api.events(ty, "s1").await;
    // Positions may have arrived meanwhile on a relayed target.
    let strip = |v: &[Value]| -> Vec<Value> {
        v.iter()
            .map(|e| {
                let mut e = e.clone();
                e.as_object_mut().unwrap().remove("position");
                e
            })
            .collect()
    };
    assert_eq!(strip(&now), strip(events), "the stream changed");
    let listed = t
        .api
        .get(&format!("/streams/{ty}"))
        .await
        .assert_status(200);
    assert!(listed["streamPage"]["streams"].as_array().unwrap().len() <= 1);
}

/// Unknown routes are 404, known routes with another method 405 (with
/// `Allow`), bodies that are not JSON 415; nothing changes.
pub async fn unknown_routes_methods_and_media_types(t: &Target) {
    let api = &t.api;
    let (ty, events) = setup_two(t).await;
    api.get("/nope").await.assert_error(404, "not-found");
    let get_stream = api.get(&format!("/streams/{ty}/s1")).await;
    get_stream.assert_error(405, "method-not-allowed");
    assert_eq!(
        get_stream.header("allow"),
        Some("DELETE"),
        "a stream's own path only deletes"
    );
    api.get(&format!("/streams/{ty}/s1/events/1/x"))
        .await
        .assert_error(404, "not-found");
    api.post("/liveness-check", &json!({}))
        .await
        .assert_error(405, "method-not-allowed");
    let del = api
        .request(Method::DELETE, &format!("/streams/{ty}"), None, &[])
        .await;
    del.assert_error(405, "method-not-allowed");
    assert!(del.header("allow").is_some(), "405 keeps the Allow header");
    api.get(&format!("/streams/{ty}/s1/events/3"))
        .await
        .assert_error(405, "method-not-allowed");
    api.request(
        Method::PATCH,
        &format!("/streams/{ty}/s1/events"),
        Some(&json!({})),
        &[],
    )
    .await
    .assert_error(405, "method-not-allowed");

    let path = format!("/streams/{ty}/s1/events");
    let good =
        serde_json::to_vec(&json!({"expectedRevision": "any", "events": [event(0)]})).unwrap();
    api.raw(Method::POST, &path, None, good.clone())
        .await
        .assert_error(415, "unsupported-media-type");
    api.raw(Method::POST, &path, Some("text/plain"), good.clone())
        .await
        .assert_error(415, "unsupported-media-type");
    api.raw(
        Method::POST,
        &format!("/streams/{ty}"),
        Some("application/x-www-form-urlencoded"),
        b"a=b".to_vec(),
    )
    .await
    .assert_error(415, "unsupported-media-type");
    api.raw(
        Method::PUT,
        &format!("/streams/{ty}/s1/events/3"),
        None,
        good,
    )
    .await
    .assert_error(415, "unsupported-media-type");
    unchanged(t, &ty, &events).await;
}

/// Bodies that are not the expected JSON are 400 with a message; nothing
/// changes.
pub async fn malformed_bodies(t: &Target) {
    let api = &t.api;
    let (ty, events) = setup_two(t).await;
    let path = format!("/streams/{ty}/s1/events");
    let create = format!("/streams/{ty}");
    let dup = r#"{"expectedRevision": "any", "events": [{"eventType":"x","payload":1,"eventId":"0195a3c4-7f5e-7b1a-9c1d-2e3f4a5b6c7d"},{"eventType":"x","payload":1,"eventId":"0195a3c4-7f5e-7b1a-9c1d-2e3f4a5b6c7d"}]}"#;
    let long_type = format!(
        r#"{{"expectedRevision": "any", "events": [{{"eventType":"{}","payload":1}}]}}"#,
        "x".repeat(201)
    );
    let bodies: Vec<(&str, &str)> = vec![
        (&path, "{"),
        (&path, ""),
        (&path, "[]"),
        (&path, "null"),
        (&path, r#"{"events": []}"#),
        (&path, r#"{"expectedRevision": "any"}"#),
        (&path, r#"{"expectedRevision": "any", "events": []}"#),
        (
            &path,
            r#"{"expectedRevision": "sometimes", "events": [{"eventType":"x","payload":1}]}"#,
        ),
        (
            &path,
            r#"{"expectedRevision": -1, "events": [{"eventType":"x","payload":1}]}"#,
        ),
        (
            &path,
            r#"{"expectedRevision": 1.5, "events": [{"eventType":"x","payload":1}]}"#,
        ),
        (
            &path,
            r#"{"expectedRevision": "any", "events": [{"payload":1}]}"#,
        ),
        (
            &path,
            r#"{"expectedRevision": "any", "events": [{"eventType":"x"}]}"#,
        ),
        (
            &path,
            r#"{"expectedRevision": "any", "events": [{"eventType":"","payload":1}]}"#,
        ),
        (
            &path,
            r#"{"expectedRevision": "any", "events": [{"eventType":" x","payload":1}]}"#,
        ),
        (
            &path,
            r#"{"expectedRevision": "any", "events": [{"eventType":"a\nb","payload":1}]}"#,
        ),
        (&path, &long_type),
        (
            &path,
            r#"{"expectedRevision": "any", "events": [{"eventType":"x","payload":1,"eventId":"nope"}]}"#,
        ),
        (
            &path,
            r#"{"expectedRevision": "any", "events": [{"eventType":"x","payload":1,"metadata":[1]}]}"#,
        ),
        (&path, dup),
        (&create, r#"{"event": {"eventType":"x","payload":1}}"#),
        (&create, r#"{"initialEvent": {"eventType":"x"}}"#),
        (
            &create,
            r#"{"initialEvent": {"eventType":"x","payload":1} "#,
        ),
    ];
    for (p, body) in bodies {
        let a = api
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
    let missing = api
        .raw(
            Method::POST,
            &create,
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
        api.raw(
            Method::PUT,
            &format!("/streams/{ty}/s1/events/3"),
            Some("application/json"),
            body.as_bytes().to_vec(),
        )
        .await
        .assert_error(400, "bad-request");
    }
    unchanged(t, &ty, &events).await;
}

/// Invalid stream types, ids, revisions and query values are 400 on every
/// endpoint, before any lookup; nothing changes.
pub async fn invalid_path_segments_and_queries(t: &Target) {
    let api = &t.api;
    let (ty, events) = setup_two(t).await;
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
    let append = json!({"expectedRevision": "any", "events": [event(0)]});
    for bad in bad_types {
        api.post(
            &format!("/streams/{bad}"),
            &json!({"initialEvent": event(0)}),
        )
        .await
        .assert_error(400, "bad-request");
        for path in [
            format!("/streams/{bad}"),
            format!("/streams/{bad}/events"),
            format!("/streams/{bad}/s1/details"),
            format!("/streams/{bad}/s1/events"),
        ] {
            api.get(&path).await.assert_error(400, "bad-request");
        }
        api.post(&format!("/streams/{bad}/s1/events"), &append)
            .await
            .assert_error(400, "bad-request");
        api.put(
            &format!("/streams/{bad}/s1/events/3"),
            &json!({"event": event(0)}),
        )
        .await
        .assert_error(400, "bad-request");
    }
    for bad in bad_ids {
        for path in [
            format!("/streams/{ty}/{bad}/details"),
            format!("/streams/{ty}/{bad}/events"),
        ] {
            api.get(&path).await.assert_error(400, "bad-request");
        }
        api.post(&format!("/streams/{ty}/{bad}/events"), &append)
            .await
            .assert_error(400, "bad-request");
        api.put(
            &format!("/streams/{ty}/{bad}/events/3"),
            &json!({"event": event(0)}),
        )
        .await
        .assert_error(400, "bad-request");
    }
    api.raw(
        Method::POST,
        "/streams/-bad",
        Some("application/json"),
        b"{".to_vec(),
    )
    .await
    .assert_error(400, "bad-request");
    for rev in [
        "0",
        "abc",
        "-1",
        "1.5",
        "+3",
        "99999999999999999999999",
        "9223372036854775808",
        "%20",
    ] {
        api.put(
            &format!("/streams/{ty}/s1/events/{rev}"),
            &json!({"event": event(0)}),
        )
        .await
        .assert_error(400, "bad-request");
    }
    let queries = [
        "/streams/T/s1/events?after-revision=x",
        "/streams/T/s1/events?after-revision=-1",
        "/streams/T/s1/events?after-revision=9223372036854775808",
        "/streams/T/s1/events?limit=0",
        "/streams/T/s1/events?limit=1001",
        "/streams/T/s1/events?limit=ten",
        "/streams/T/s1/events?direction=sideways",
        "/streams/T/s1/events?direction=backward&after-revision=1",
        "/streams/T/s1/events?before-revision=1",
        "/streams/T/s1/events?after-revision=1&after-revision=2",
        "/streams/T/s1/events?before-revision=x&direction=backward",
        "/streams/T?updated-after=yesterday",
        "/streams/T?updated-after=2025-13-01T00:00:00Z",
        "/streams/T?next-page-key=garbage!",
        "/streams/T?next-page-key=",
        "/streams/T?limit=0",
        "/events?after-position=-1",
        "/events?after-position=abc",
        "/events?after-position=9223372036854775808",
        "/events?limit=5000",
        "/events?limit=0",
        "/events?wait=31",
        "/events?limit=%FF",
        "/streams/T/events?after-position=x",
        "/streams/T/events?wait=31",
        "/streams/T/events?limit=1001",
        "/streams/-bad/events?wait=1",
    ];
    for q in queries {
        let path = q.replace("/T", &format!("/{ty}"));
        let body = api.get(&path).await.assert_error(400, "bad-request");
        assert!(!body["message"].as_str().unwrap().is_empty(), "{path}");
    }
    unchanged(t, &ty, &events).await;
}

/// 100 events per append, 256 KiB of payload plus metadata per event,
/// 1 MiB per body; beyond: 413. The largest accepted values come back
/// unchanged.
pub async fn limits(t: &Target) {
    let api = &t.api;
    let ty = t.ty("bulk");
    let path = format!("/streams/{ty}/b1/events");
    let many: Vec<Value> = (0..101).map(event).collect();
    api.post(&path, &json!({"expectedRevision": "any", "events": many}))
        .await
        .assert_error(413, "payload-too-large");
    let big = format!(
        r#"{{"expectedRevision":"any","events":[{{"eventType":"x","payload":"{}"}}]}}"#,
        "a".repeat(1024 * 1024 + 10)
    );
    api.raw(
        Method::POST,
        &path,
        Some("application/json"),
        big.into_bytes(),
    )
    .await
    .assert_error(413, "payload-too-large");
    // One event's payload + metadata over 256 KiB (the body under 1 MiB).
    let fat = json!({"eventType": "x", "payload": "p".repeat(200 * 1024), "metadata": {"m": "q".repeat(60 * 1024)}});
    api.post(
        &path,
        &json!({"expectedRevision": "any", "events": [fat.clone()]}),
    )
    .await
    .assert_error(413, "payload-too-large");
    api.put(
        &format!("/streams/{ty}/b1/events/2"),
        &json!({"event": fat.clone()}),
    )
    .await
    .assert_error(413, "payload-too-large");
    api.post(&format!("/streams/{ty}"), &json!({"initialEvent": fat}))
        .await
        .assert_error(413, "payload-too-large");
    api.get(&format!("/streams/{ty}/b1/details"))
        .await
        .assert_error(404, "not-found");

    // Exactly 100 events.
    let hundred: Vec<Value> = (0..100).map(event).collect();
    let a = api
        .post(
            &path,
            &json!({"expectedRevision": "no-stream", "events": hundred}),
        )
        .await
        .assert_status(201);
    assert_eq!(a["lastRevision"], 100);
    let events = api.events(&ty, "b1").await;
    assert_eq!(events.len(), 100);
    assert_eq!(events[99]["payload"], json!({"n": 99}));

    // Events of the largest size, four in one body just under 1 MiB.
    let max_event = |i: usize| {
        // payload `"…"` (n + 2 bytes) + metadata `{"i":"I"}` = 256 KiB.
        let meta = json!({"i": i.to_string()});
        let n = 256 * 1024 - 2 - meta.to_string().len();
        json!({"eventType": "big", "payload": "🦀".repeat(n / 4) + &"z".repeat(n % 4), "metadata": meta})
    };
    let one = json!({"expectedRevision": "any", "events": [max_event(0)]});
    api.post(&path, &one).await.assert_status(201);
    let three: Vec<Value> = (1..4).map(max_event).collect();
    let body = json!({"expectedRevision": 101, "events": three});
    assert!(serde_json::to_vec(&body).unwrap().len() < 1024 * 1024);
    let a = api.post(&path, &body).await.assert_status(201);
    assert_eq!(
        (&a["firstRevision"], &a["lastRevision"]),
        (&json!(102), &json!(104))
    );
    let back = api
        .get(&format!("/streams/{ty}/b1/events?after-revision=100"))
        .await
        .assert_status(200);
    let got = page_events(&back);
    assert_eq!(got.len(), 4);
    for (i, e) in got.iter().enumerate() {
        let want = max_event(i);
        assert_eq!(e["payload"], want["payload"], "event {i}");
        assert_eq!(e["metadata"], want["metadata"], "event {i}");
    }
    // One byte more is refused.
    let mut over = max_event(9);
    over["metadata"]["x"] = json!("");
    api.post(&path, &json!({"expectedRevision": "any", "events": [over]}))
        .await
        .assert_error(413, "payload-too-large");
    t.settled(
        &format!("/streams/{ty}/events?after-position=0&limit=1000"),
        |v| {
            v["eventPage"]["events"]
                .as_array()
                .is_some_and(|a| a.len() == 104)
        },
    )
    .await;
}

/// The longest names and the oddest values the API admits (4-byte UTF-8,
/// JSON of every kind) come back unchanged from every read.
pub async fn extreme_values_round_trip(t: &Target) {
    let api = &t.api;
    let prefix = t.ty("x");
    let ty: String = format!("{prefix}{}", "Z-._".repeat(30))
        .chars()
        .take(100)
        .collect();
    let id: String = "aZ09_.-:@".repeat(15).chars().take(128).collect();
    let deep = format!("{}{{\"deep\":[]}}{}", "[".repeat(40), "]".repeat(40));
    let odd_payloads = [
        r#"{"z":1,"a":[1.50,"x"],"":{"":null}}"#,
        r#""\ud83d\ude00 \u0000 \u001f \"quoted\" \\ \u2028""#,
        "12345678901234567890",
        "-9223372036854775808",
        "-0",
        "1e300",
        "0.1",
        "null",
        "true",
        "[]",
        "{}",
        r#""""#,
        deep.as_str(),
        r#"{"b":1,"a":2,"b2":{"é":"😀𝄞"}}"#,
    ];
    let event_types = [
        "😀".repeat(200),
        "𝄞é a".repeat(50),
        "x".repeat(200),
        "a b".to_owned(),
    ];
    let mut sent = Vec::new();
    for (i, payload) in odd_payloads.iter().enumerate() {
        let event_type = &event_types[i % event_types.len()];
        let metadata = format!(r#"{{"k":"{}","n":[1,2.5,-0],"i":{i}}}"#, "🦀".repeat(i));
        sent.push((event_type.clone(), payload.to_string(), metadata));
    }
    let body = format!(
        r#"{{"expectedRevision":"no-stream","events":[{}]}}"#,
        sent.iter()
            .map(|(ty, p, m)| format!(
                r#"{{"eventType":{},"payload":{p},"metadata":{m}}}"#,
                json!(ty)
            ))
            .collect::<Vec<_>>()
            .join(",")
    );
    api.raw(
        Method::POST,
        &format!("/streams/{ty}/{id}/events"),
        Some("application/json"),
        body.into_bytes(),
    )
    .await
    .assert_status(201);
    let check = |events: &[Value], what: &str| {
        assert_eq!(events.len(), sent.len(), "{what}");
        for (e, (et, p, m)) in events.iter().zip(&sent) {
            assert_eq!(e["streamType"], ty.as_str(), "{what}");
            assert_eq!(e["streamId"], id.as_str(), "{what}");
            assert_eq!(e["eventType"], et.as_str(), "{what}");
            let p: Value = serde_json::from_str(p).unwrap();
            let m: Value = serde_json::from_str(m).unwrap();
            assert_eq!(e["payload"], p, "{what}");
            assert_eq!(e["metadata"], m, "{what}");
        }
    };
    let forward = api.events(&ty, &id).await;
    check(&forward, "forward read");
    let back = api
        .get(&format!(
            "/streams/{ty}/{id}/events?direction=backward&limit=1000"
        ))
        .await
        .assert_status(200);
    let mut back = page_events(&back);
    back.reverse();
    check(&back, "backward read");
    let details = api
        .get(&format!("/streams/{ty}/{id}/details"))
        .await
        .assert_status(200);
    assert_eq!(details["stream"]["revision"], sent.len());
    let feed = t
        .settled(&format!("/streams/{ty}/events?limit=1000"), |v| {
            v["eventPage"]["events"]
                .as_array()
                .is_some_and(|a| a.len() == sent.len())
        })
        .await;
    check(&page_events(&feed), "type feed");
    let listed = t
        .settled(&format!("/streams/{ty}"), |v| {
            v["streamPage"]["streams"][0]["revision"] == sent.len()
        })
        .await;
    assert_eq!(listed_ids(&listed), std::slice::from_ref(&id));
    type_counts(t, &[(&ty, 1)]).await;
    // A retry of the whole batch with ids, then with the same odd values.
    let with_ids = json!({"expectedRevision": sent.len(), "events": [
        {"eventType": "😀".repeat(200), "payload": "𝄞", "eventId": uuid::Uuid::now_v7()}]});
    let path = format!("/streams/{ty}/{id}/events");
    api.post(&path, &with_ids).await.assert_status(201);
    api.post(&path, &with_ids).await.assert_status(200);
}

/// The OpenAPI document, the API page, the web UI and the redirects.
pub async fn documents_and_pages(t: &Target) {
    let api = &t.api;
    let root = api.get("/").await;
    assert!(root.status.is_redirection(), "{}", root.status);
    let location = root.header("location").unwrap().to_owned();
    assert!(location == "ui/" || location == "openapi/", "{location}");
    let spec = api
        .get("/openapi/openapi-spec.json")
        .await
        .assert_status(200);
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/streams/{streamType}",
        "/streams/{streamType}/{streamId}/events",
        "/events",
        "/liveness-check",
    ] {
        assert!(spec["paths"].get(path).is_some(), "{path} is documented");
    }
    let page = api.get("/openapi/").await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text.to_lowercase().contains("swagger"));
    let ui = api.get("/ui/").await;
    assert_eq!(ui.status, 200);
    assert!(ui.text.contains("<html"));
    let bare = api.get("/openapi").await;
    assert!(bare.status.is_redirection());
    assert_eq!(bare.header("location"), Some("openapi/"));
}

/// A stream's lifecycle answers: `DELETE` at the wrong revision, of an
/// unknown stream or with a bad query, and `POST …/truncate` with a bad
/// bound or body change nothing (a sibling of the same type included);
/// a deletion answers 204 (again 204), then every read, detail, append
/// and truncation of the stream is 410, it leaves its listing and counts,
/// and the feeds carry exactly one `$stream-deleted` entry for it instead
/// of its events; a truncation answers the stream with its `firstRevision`,
/// reads start there, appends go on at the current revision and the
/// removed events leave the feeds.
pub async fn deletion_and_truncation(t: &Target) {
    let api = &t.api;
    let (ty, tty) = (t.ty("doomed"), t.ty("trimmed"));
    // The kept stream first: its first position precedes every event of
    // the deleted one in the global feed.
    let kept = api.create(&ty, json!({"kept": 0})).await;
    api.append_n(&ty, &kept, 2).await;
    let gone = api.create(&ty, json!({"gone": 0})).await;
    api.post(
        &format!("/streams/{ty}/{gone}/events"),
        &json!({"expectedRevision": 1, "events": [
            {"eventType": "gone", "payload": {"gone": 1}},
            {"eventType": "gone", "payload": {"gone": 2}}]}),
    )
    .await
    .assert_status(201);
    let kept_events = api.events(&ty, &kept).await;
    let gone_events = api.events(&ty, &gone).await;
    assert_eq!(gone_events.len(), 3);
    let path = format!("/streams/{ty}/{gone}");
    let delete = |path: String| async move { api.request(Method::DELETE, &path, None, &[]).await };

    // Refused deletions change nothing.
    delete(format!("{path}?expected-revision=2"))
        .await
        .assert_error(409, "wrong-expected-revision");
    delete(format!("{path}?expected-revision=4"))
        .await
        .assert_error(409, "wrong-expected-revision");
    for query in ["x", "-1", "1.5", "", "3&expected-revision=3"] {
        delete(format!("{path}?expected-revision={query}"))
            .await
            .assert_error(400, "bad-request");
    }
    delete(format!("/streams/{ty}/never"))
        .await
        .assert_error(404, "not-found");
    delete(format!("/streams/{tty}/{gone}"))
        .await
        .assert_error(404, "not-found");
    delete(format!("/streams/bad%20type/{gone}"))
        .await
        .assert_error(400, "bad-request");
    delete(format!("/streams/{ty}"))
        .await
        .assert_error(405, "method-not-allowed");
    assert_same_events(&api.events(&ty, &gone).await, &gone_events);
    assert_same_events(&api.events(&ty, &kept).await, &kept_events);
    let listed = t
        .settled(&format!("/streams/{ty}"), |b| {
            let mut ids = listed_ids(b);
            ids.sort();
            let mut want = vec![kept.clone(), gone.clone()];
            want.sort();
            ids == want
        })
        .await;
    assert_eq!(listed_ids(&listed).len(), 2);
    type_counts(t, &[(&ty, 2)]).await;

    let a = delete(format!("{path}?expected-revision=3")).await;
    assert_eq!(a.status.as_u16(), 204, "{}", a.text);
    assert!(a.text.is_empty(), "a 204 has no body: {:?}", a.text);
    let again = delete(path.clone()).await;
    assert_eq!(again.status.as_u16(), 204, "deleting again: {}", again.text);

    for read in [
        format!("{path}/details"),
        format!("{path}/events"),
        format!("{path}/events?direction=backward"),
    ] {
        api.get(&read).await.assert_error(410, "stream-deleted");
    }
    api.put(
        &format!("{path}/events/4"),
        &json!({"event": {"eventType": "late", "payload": 1}}),
    )
    .await
    .assert_error(410, "stream-deleted");
    for expected in [json!("any"), json!(3), json!("exists"), json!("no-stream")] {
        api.post(
            &format!("{path}/events"),
            &json!({"expectedRevision": expected, "events": [{"eventType": "late", "payload": 1}]}),
        )
        .await
        .assert_error(410, "stream-deleted");
    }
    api.post(&format!("{path}/truncate"), &json!({"beforeRevision": 2}))
        .await
        .assert_error(410, "stream-deleted");
    // A retry of an acknowledged append (the same event ids) is 410 too.
    api.post(
        &format!("{path}/events"),
        &json!({"expectedRevision": 1, "events": retry_of(&gone_events[1..])}),
    )
    .await
    .assert_error(410, "stream-deleted");
    assert_same_events(&api.events(&ty, &kept).await, &kept_events);
    t.settled(&format!("/streams/{ty}"), |b| {
        listed_ids(b) == [kept.clone()]
    })
    .await;
    type_counts(t, &[(&ty, 1)]).await;

    // The feeds: the kept stream's events and one deletion entry.
    let type_feed = settled_feed(t, &format!("/streams/{ty}/events"), 0, |entries| {
        entries.iter().any(|e| e["streamId"] == gone.as_str())
            && entries
                .iter()
                .filter(|e| e["streamId"] == kept.as_str())
                .count()
                == 3
    })
    .await;
    let start = type_feed[0]["position"].as_u64().unwrap() - 1;
    let global: Vec<Value> = settled_feed(t, "/events", start, |entries| {
        entries
            .iter()
            .any(|e| e["streamId"] == gone.as_str() && e["streamType"] == ty.as_str())
    })
    .await
    .into_iter()
    .filter(|e| e["streamType"] == ty.as_str())
    .collect();
    assert_eq!(global, type_feed, "the global feed holds the type feed");
    for (name, entries) in [("type feed", &type_feed), ("global feed", &global)] {
        let of_gone: Vec<&Value> = entries
            .iter()
            .filter(|e| e["streamId"] == gone.as_str())
            .collect();
        assert_eq!(of_gone.len(), 1, "{name}: {of_gone:?}");
        assert_eq!(of_gone[0]["eventType"], "$stream-deleted", "{name}");
        assert_eq!(of_gone[0]["revision"], 4, "{name}: last revision + 1");
        assert_eq!(of_gone[0]["streamType"], ty.as_str(), "{name}");
        assert!(
            !entries.iter().any(|e| e["payload"].get("gone").is_some()),
            "{name}: a deleted payload is still served: {entries:?}"
        );
        let kept_in_feed: Vec<Value> = entries
            .iter()
            .filter(|e| e["streamId"] == kept.as_str())
            .map(|e| e["payload"].clone())
            .collect();
        let kept_payloads: Vec<Value> = kept_events.iter().map(|e| e["payload"].clone()).collect();
        assert_eq!(kept_in_feed, kept_payloads, "{name}");
    }
    let p = positions(&type_feed);
    assert!(p.windows(2).all(|w| w[0] < w[1]), "{p:?}");
    assert!(
        *p.last().unwrap()
            == of_stream(&type_feed, &gone)[0]["position"]
                .as_u64()
                .unwrap(),
        "the deletion entry comes after every event acknowledged before it: {type_feed:?}"
    );

    // Truncation: refusals change nothing.
    let id = api.create(&tty, json!({"n": 0})).await;
    api.append_n(&tty, &id, 9).await;
    let sibling = api.create(&tty, json!({"sibling": 0})).await;
    api.append_n(&tty, &sibling, 1).await;
    let (events, sibling_events) = (
        api.events(&tty, &id).await,
        api.events(&tty, &sibling).await,
    );
    assert_eq!(events.len(), 10);
    let tpath = format!("/streams/{tty}/{id}/truncate");
    for body in [
        json!({"beforeRevision": 0}),
        json!({"beforeRevision": 11}),
        json!({"beforeRevision": -1}),
        json!({"beforeRevision": 1.5}),
        json!({"beforeRevision": "3"}),
        json!({"beforeRevision": null}),
        json!({"before": 3}),
        json!({}),
        json!({"beforeRevision": 3, "extra": true}),
        json!([]),
        json!(3),
    ] {
        api.post(&tpath, &body)
            .await
            .assert_error(400, "bad-request");
    }
    for raw in ["{", "", "null", "{\"beforeRevision\": 3,}"] {
        api.raw(
            Method::POST,
            &tpath,
            Some("application/json"),
            raw.as_bytes().to_vec(),
        )
        .await
        .assert_error(400, "bad-request");
    }
    api.raw(
        Method::POST,
        &tpath,
        Some("text/plain"),
        br#"{"beforeRevision": 3}"#.to_vec(),
    )
    .await
    .assert_error(415, "unsupported-media-type");
    api.post(
        &format!("{tpath}?expected-revision=9"),
        &json!({"beforeRevision": 3}),
    )
    .await
    .assert_error(409, "wrong-expected-revision");
    api.post(
        &format!("{tpath}?expected-revision=x"),
        &json!({"beforeRevision": 3}),
    )
    .await
    .assert_error(400, "bad-request");
    api.post(
        &format!("/streams/{tty}/never/truncate"),
        &json!({"beforeRevision": 1}),
    )
    .await
    .assert_error(404, "not-found");
    api.post(
        &format!("/streams/{ty}/{id}/truncate"),
        &json!({"beforeRevision": 1}),
    )
    .await
    .assert_error(404, "not-found");
    assert_same_events(&api.events(&tty, &id).await, &events);
    assert_same_events(&api.events(&tty, &sibling).await, &sibling_events);
    let details = api
        .get(&format!("/streams/{tty}/{id}/details"))
        .await
        .assert_status(200);
    assert_eq!(details["stream"]["firstRevision"], 1, "{details}");

    let truncated = api
        .post(
            &format!("{tpath}?expected-revision=10"),
            &json!({"beforeRevision": 4}),
        )
        .await
        .assert_status(200);
    assert_eq!(truncated["stream"]["firstRevision"], 4, "{truncated}");
    assert_eq!(truncated["stream"]["revision"], 10, "{truncated}");
    assert_eq!(truncated["stream"]["streamId"], id.as_str());
    let read = api.events(&tty, &id).await;
    assert_same_events(&read, &events[3..]);
    let from_start = api
        .get(&format!(
            "/streams/{tty}/{id}/events?after-revision=1&limit=2"
        ))
        .await
        .assert_status(200);
    assert_eq!(revs(&from_start), vec![4, 5], "{from_start}");
    let backward = api
        .get(&format!(
            "/streams/{tty}/{id}/events?direction=backward&limit=1000"
        ))
        .await
        .assert_status(200);
    assert_eq!(revs(&backward), (4..=10).rev().collect::<Vec<_>>());
    let details = api
        .get(&format!("/streams/{tty}/{id}/details"))
        .await
        .assert_status(200);
    assert_eq!(details["stream"]["firstRevision"], 4, "{details}");
    assert_eq!(details["stream"]["revision"], 10, "{details}");
    // A retry of the batch across the bound (revisions 2 to 10, the same
    // event ids) is recognised: its original revisions, nothing stored.
    let retry = api
        .post(
            &format!("/streams/{tty}/{id}/events"),
            &json!({"expectedRevision": "any", "events": retry_of(&events[1..])}),
        )
        .await
        .assert_status(200);
    assert_eq!(
        (&retry["firstRevision"], &retry["lastRevision"]),
        (&json!(2), &json!(10)),
        "{retry}"
    );
    assert_same_events(&api.events(&tty, &id).await, &events[3..]);
    // A lower bound than the current one changes nothing.
    let lower = api
        .post(&tpath, &json!({"beforeRevision": 2}))
        .await
        .assert_status(200);
    assert_eq!(lower["stream"]["firstRevision"], 4, "{lower}");
    // Appends go on at the current revision; the bound can reach the last one.
    api.put(
        &format!("/streams/{tty}/{id}/events/11"),
        &json!({"event": {"eventType": "next", "payload": {"n": 11}}}),
    )
    .await
    .assert_status(201);
    api.post(&tpath, &json!({"beforeRevision": 13}))
        .await
        .assert_error(400, "bad-request");
    assert_eq!(api.events(&tty, &id).await.len(), 8, "nothing changed");
    assert_same_events(&api.events(&tty, &sibling).await, &sibling_events);
    t.settled(&format!("/streams/{tty}"), |b| {
        b["streamPage"]["streams"].as_array().is_some_and(|s| {
            s.iter().any(|s| {
                s["streamId"] == id.as_str() && s["firstRevision"] == 4 && s["revision"] == 11
            }) && s.len() == 2
        })
    })
    .await;
    type_counts(t, &[(&tty, 2)]).await;
    let feed = settled_feed(t, &format!("/streams/{tty}/events"), 0, |entries| {
        of_stream(entries, &id).len() == 8 && of_stream(entries, &sibling).len() == 2
    })
    .await;
    let kept_revisions: Vec<u64> = of_stream(&feed, &id)
        .iter()
        .map(|e| e["revision"].as_u64().unwrap())
        .collect();
    assert_eq!(kept_revisions, (4..=11).collect::<Vec<_>>(), "{feed:?}");
    let removed = ids_of(&events[..3]);
    assert!(
        !feed.iter().any(|e| removed.contains(&e["eventId"])),
        "a removed event is still in the feed: {feed:?}"
    );
    let last = api
        .post(&tpath, &json!({"beforeRevision": 11}))
        .await
        .assert_status(200);
    assert_eq!(last["stream"]["firstRevision"], 11, "{last}");
    assert_eq!(
        revs(
            &api.get(&format!("/streams/{tty}/{id}/events"))
                .await
                .assert_status(200)
        ),
        vec![11]
    );
}

/// An append body's events repeating `events` as read (same ids).
fn retry_of(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .map(|e| {
            json!({"eventType": e["eventType"], "payload": e["payload"], "eventId": e["eventId"]})
        })
        .collect()
}

/// The events of `id` among feed entries, in feed order.
fn of_stream(entries: &[Value], id: &str) -> Vec<Value> {
    entries
        .iter()
        .filter(|e| e["streamId"] == id)
        .cloned()
        .collect()
}

/// Asserts two stream reads hold the same events, ignoring `position`
/// (a relayed target may add it between the reads).
#[track_caller]
fn assert_same_events(now: &[Value], before: &[Value]) {
    let strip = |v: &[Value]| -> Vec<Value> {
        v.iter()
            .map(|e| {
                let mut e = e.clone();
                e.as_object_mut().unwrap().remove("position");
                e
            })
            .collect()
    };
    assert_eq!(strip(now), strip(before), "the stream changed");
}

/// A whole feed after `after` ([`read_feed`], pages of 7) once `done`
/// holds for it: at once on a consistent target, within
/// [`super::Profile::settle`] on a relayed one.
async fn settled_feed(
    t: &Target,
    path: &str,
    after: u64,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + t.profile.settle;
    loop {
        let entries = read_feed(&t.api, path, after, 7).await;
        if done(&entries) {
            return entries;
        }
        assert!(
            Instant::now() < deadline,
            "{}: {path} after {after} did not reach the expected state: {entries:?}",
            t.profile.name
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Several clients append to a stream while two delete it: every append
/// answers 201 (before) or 410 (after), never anything else; the stream is
/// 410 for good afterwards, its deletion entry follows its last
/// acknowledged revision, the feeds hold that one entry and none of its
/// events, and a sibling appended meanwhile has every acknowledged event
/// in the feeds, in order, once.
pub async fn deletion_races_appends(t: &Target) {
    let ty = t.ty("contested");
    let api = Arc::new(t.api.clone());
    // The sibling first: its first position precedes the victim's events.
    let sibling = api.create(&ty, json!({"sibling": 0})).await;
    let victim = api.create(&ty, json!({"victim": 0})).await;
    let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let (api, ty, victim, acked) = (api.clone(), ty.clone(), victim.clone(), acked.clone());
            tokio::spawn(async move {
                let path = format!("/streams/{ty}/{victim}/events");
                let mut revisions = Vec::new();
                let mut gone = 0;
                for i in 0..400u64 {
                    let a = api
                        .post(
                            &path,
                            &json!({"expectedRevision": "any", "events": [
                                {"eventType": "doomed", "payload": {"victim": 1, "w": w, "i": i}}]}),
                        )
                        .await;
                    match a.status.as_u16() {
                        201 => {
                            assert_eq!(gone, 0, "an append after a 410 was stored: {}", a.text);
                            revisions.push(a.json()["lastRevision"].as_u64().unwrap());
                            acked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                        410 => {
                            a.assert_error(410, "stream-deleted");
                            gone += 1;
                            if gone == 3 {
                                return revisions;
                            }
                        }
                        other => panic!("an append racing a deletion answered {other}: {}", a.text),
                    }
                }
                panic!("the deletion never took effect for writer {w}");
            })
        })
        .collect();
    let sibling_writer = {
        let (api, ty, sibling) = (api.clone(), ty.clone(), sibling.clone());
        tokio::spawn(async move {
            let mut payloads = vec![json!({"sibling": 0})];
            for i in 1..=12u64 {
                let payload = json!({"sibling": i});
                api.put(
                    &format!("/streams/{ty}/{sibling}/events/{}", i + 1),
                    &json!({"event": {"eventType": "alive", "payload": payload}}),
                )
                .await
                .assert_status(201);
                payloads.push(payload);
            }
            payloads
        })
    };
    while acked.load(std::sync::atomic::Ordering::SeqCst) < 6 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Two clients delete at once: both 204, one deletion.
    let victim_path = format!("/streams/{ty}/{victim}");
    let (a, b) = tokio::join!(
        api.request(Method::DELETE, &victim_path, None, &[]),
        api.request(Method::DELETE, &victim_path, None, &[])
    );
    for d in [a, b] {
        assert_eq!(d.status.as_u16(), 204, "{}", d.text);
    }
    let mut acked_revisions = vec![1];
    for w in writers {
        acked_revisions.extend(w.await.unwrap());
    }
    let sibling_payloads = sibling_writer.await.unwrap();
    acked_revisions.sort();
    let last = *acked_revisions.last().unwrap();
    eprintln!(
        "{}: {} appends acknowledged before the deletion at revision {last}",
        t.profile.name,
        acked_revisions.len() - 1
    );
    assert_eq!(
        acked_revisions,
        (1..=last).collect::<Vec<_>>(),
        "acknowledged appends are sequential"
    );

    let path = format!("/streams/{ty}/{victim}");
    api.get(&format!("{path}/details"))
        .await
        .assert_error(410, "stream-deleted");
    api.get(&format!("{path}/events"))
        .await
        .assert_error(410, "stream-deleted");
    api.put(
        &format!("{path}/events/{}", last + 1),
        &json!({"event": {"eventType": "late", "payload": 1}}),
    )
    .await
    .assert_error(410, "stream-deleted");
    let again = api.request(Method::DELETE, &path, None, &[]).await;
    assert_eq!(again.status.as_u16(), 204, "{}", again.text);

    let n = sibling_payloads.len();
    let type_feed = settled_feed(t, &format!("/streams/{ty}/events"), 0, |entries| {
        !of_stream(entries, &victim).is_empty() && of_stream(entries, &sibling).len() >= n
    })
    .await;
    let start = type_feed[0]["position"].as_u64().unwrap() - 1;
    let global: Vec<Value> = settled_feed(t, "/events", start, |entries| {
        entries
            .iter()
            .filter(|e| e["streamType"] == ty.as_str())
            .count()
            == type_feed.len()
    })
    .await
    .into_iter()
    .filter(|e| e["streamType"] == ty.as_str())
    .collect();
    assert_eq!(global, type_feed, "the global feed holds the type feed");
    let p = positions(&type_feed);
    assert!(p.windows(2).all(|w| w[0] < w[1]), "{p:?}");
    let of_victim = of_stream(&type_feed, &victim);
    assert_eq!(
        of_victim.len(),
        1,
        "one deletion entry, no events: {of_victim:?}"
    );
    assert_eq!(of_victim[0]["eventType"], "$stream-deleted");
    assert_eq!(of_victim[0]["revision"], last + 1, "{of_victim:?}");
    assert!(
        !type_feed
            .iter()
            .any(|e| e["payload"].get("victim").is_some()),
        "a deleted payload is still served: {type_feed:?}"
    );
    let of_sibling = of_stream(&type_feed, &sibling);
    let got: Vec<(u64, Value)> = of_sibling
        .iter()
        .map(|e| (e["revision"].as_u64().unwrap(), e["payload"].clone()))
        .collect();
    let want: Vec<(u64, Value)> = (1..).zip(sibling_payloads).collect();
    assert_eq!(got, want, "the sibling's events, in order, once");
}

/// A reader pages through a type feed (pages of 3) while another stream of
/// the type is deleted: it neither misses nor repeats an entry of the
/// other streams; a reader resuming after any position, a deleted event's
/// included, neither.
pub async fn deletion_during_a_feed_read(t: &Target) {
    let ty = t.ty("paged");
    let api = Arc::new(t.api.clone());
    let (a, victim, b) = (
        api.create(&ty, json!({"a": 0})).await,
        api.create(&ty, json!({"victim": 0})).await,
        api.create(&ty, json!({"b": 0})).await,
    );
    for round in 1..=4 {
        for (id, key) in [(&a, "a"), (&victim, "victim"), (&b, "b")] {
            api.post(
                &format!("/streams/{ty}/{id}/events"),
                &json!({"expectedRevision": "any", "events": [
                    {"eventType": "x", "payload": {key: round, "i": 0}},
                    {"eventType": "x", "payload": {key: round, "i": 1}}]}),
            )
            .await
            .assert_status(201);
        }
    }
    let feed = format!("/streams/{ty}/events");
    let before = settled_feed(t, &feed, 0, |entries| entries.len() == 27).await;
    let victim_positions = positions(&of_stream(&before, &victim));
    let others = |entries: &[Value]| -> Vec<Value> {
        entries
            .iter()
            .filter(|e| e["streamId"] != victim.as_str())
            .cloned()
            .collect()
    };

    let mut after = 0;
    let mut seen = Vec::new();
    let mut deletion = None;
    let mut deleted = false;
    let mut pages = 0;
    loop {
        let page = api
            .get(&format!("{feed}?after-position={after}&limit=3"))
            .await
            .assert_status(200);
        pages += 1;
        let events = page_events(&page);
        let last = page["eventPage"]["lastPosition"].as_u64().unwrap();
        assert!(events.len() <= 3, "{page}");
        for e in &events {
            let p = e["position"].as_u64().unwrap();
            assert!(after < p && p <= last, "after {after}: {page}");
        }
        assert!(last >= after, "{page}");
        seen.extend(events);
        after = last;
        if pages == 3 {
            let (api, path) = (api.clone(), format!("/streams/{ty}/{victim}"));
            deletion = Some(tokio::spawn(async move {
                api.request(Method::DELETE, &path, None, &[]).await
            }));
        }
        if page["eventPage"]["hasMore"] == false {
            // At the end: once the deletion is answered, read on once more.
            match deletion.take() {
                Some(d) => {
                    let a = d.await.unwrap();
                    assert_eq!(a.status.as_u16(), 204, "{}", a.text);
                    deleted = true;
                }
                None if deleted => break,
                None => panic!("the feed ended before the deletion: {seen:?}"),
            }
        }
    }
    let p = positions(&seen);
    assert!(p.windows(2).all(|w| w[0] < w[1]), "no entry twice: {p:?}");
    let full = settled_feed(t, &feed, 0, |entries| {
        of_stream(entries, &victim).len() == 1
    })
    .await;
    assert_eq!(
        full.len(),
        19,
        "18 events of the others and the deletion entry: {full:?}"
    );
    assert_eq!(
        others(&seen),
        others(&full),
        "the reader saw every other entry once"
    );
    assert_eq!(
        others(&before),
        others(&full),
        "the others' entries did not change"
    );

    // Resuming after any earlier position, the deleted events' included.
    for &from in victim_positions.iter().step_by(3) {
        let rest = read_feed(&api, &feed, from, 3).await;
        let want: Vec<Value> = others(&full)
            .into_iter()
            .filter(|e| e["position"].as_u64().unwrap() > from)
            .collect();
        assert_eq!(others(&rest), want, "resuming after {from}");
    }
}

/// Appends race truncations: every append is stored (201) at sequential
/// revisions, each batch contiguous; the truncations answer 200 with their
/// bound; reads that start after a truncation is acknowledged begin at its
/// bound or later, every read is contiguous; appends go on at the current
/// revision and the feed holds the kept events only.
pub async fn truncation_races_appends(t: &Target) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let ty = t.ty("trimmed");
    let api = Arc::new(t.api.clone());
    let id = api.create(&ty, json!({"w": 99, "i": 0})).await;
    api.append_n(&ty, &id, 9).await;
    let path = format!("/streams/{ty}/{id}");
    let bound = Arc::new(AtomicU64::new(1));
    let done = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    const BATCHES: u64 = 8;
    let writers: Vec<_> = (0..3u64)
        .map(|w| {
            let (api, path, acked) = (api.clone(), path.clone(), acked.clone());
            tokio::spawn(async move {
                let mut batches = Vec::new();
                for i in 0..BATCHES {
                    let body = api
                        .post(
                            &format!("{path}/events"),
                            &json!({"expectedRevision": "any", "events": [
                                {"eventType": "x", "payload": {"w": w, "i": 2 * i}},
                                {"eventType": "x", "payload": {"w": w, "i": 2 * i + 1}}]}),
                        )
                        .await
                        .assert_status(201);
                    let first = body["firstRevision"].as_u64().unwrap();
                    assert_eq!(body["lastRevision"], first + 1, "{body}");
                    batches.push((first, w, 2 * i));
                    acked.fetch_add(1, Ordering::SeqCst);
                }
                batches
            })
        })
        .collect();
    let reader = {
        let (api, path, bound, done) = (api.clone(), path.clone(), bound.clone(), done.clone());
        tokio::spawn(async move {
            let mut reads = 0;
            while !done.load(Ordering::SeqCst) {
                let at_least = bound.load(Ordering::SeqCst);
                let page = api
                    .get(&format!("{path}/events?limit=1000"))
                    .await
                    .assert_status(200);
                let r = revs(&page);
                assert!(
                    r.first().is_some_and(|&f| f >= at_least),
                    "a read from before the bound {at_least}: {r:?}"
                );
                assert!(r.first() == Some(&1) || r[0] >= 4, "{r:?}");
                assert!(r.windows(2).all(|w| w[1] == w[0] + 1), "{r:?}");
                assert!(*r.last().unwrap() >= 10, "{r:?}");
                reads += 1;
            }
            reads
        })
    };
    let truncate = |before: u64| {
        let (api, path) = (api.clone(), path.clone());
        async move {
            api.post(
                &format!("{path}/truncate"),
                &json!({"beforeRevision": before}),
            )
            .await
            .assert_status(200)
        }
    };
    // Truncate once some batches are in, while the others are on their way.
    while acked.load(Ordering::SeqCst) < 3 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let first = truncate(4).await;
    assert_eq!(first["stream"]["firstRevision"], 4, "{first}");
    bound.store(4, Ordering::SeqCst);
    let at = first["stream"]["revision"].as_u64().unwrap();
    assert!(at >= 10, "{first}");
    let second = truncate(at).await;
    assert_eq!(second["stream"]["firstRevision"], at, "{second}");
    assert!(
        second["stream"]["revision"].as_u64().unwrap() >= at,
        "{second}"
    );
    bound.store(at, Ordering::SeqCst);

    let mut batches: Vec<(u64, u64, u64)> = Vec::new();
    for w in writers {
        batches.extend(w.await.unwrap());
    }
    done.store(true, Ordering::SeqCst);
    let reads = reader.await.unwrap();
    assert!(reads > 0);
    batches.sort();
    let firsts: Vec<u64> = batches.iter().map(|b| b.0).collect();
    assert_eq!(
        firsts,
        (0..3 * BATCHES).map(|i| 11 + 2 * i).collect::<Vec<_>>(),
        "sequential revisions, each batch contiguous"
    );
    let end = 10 + 6 * BATCHES;
    eprintln!(
        "{}: truncated before 4 at revision {at}, before {at} at revision {}, of {end}; {reads} racing reads",
        t.profile.name, second["stream"]["revision"]
    );
    let events = api.events(&ty, &id).await;
    let r: Vec<u64> = events
        .iter()
        .map(|e| e["revision"].as_u64().unwrap())
        .collect();
    assert_eq!(
        r,
        (at..=end).collect::<Vec<_>>(),
        "reads start at the bound"
    );
    for e in &events {
        let rev = e["revision"].as_u64().unwrap();
        if rev > 10 {
            let &(first, w, i) = batches
                .iter()
                .find(|b| b.0 == rev || b.0 + 1 == rev)
                .unwrap();
            assert_eq!(e["payload"], json!({"w": w, "i": i + rev - first}), "{e}");
        }
    }
    let details = api.get(&format!("{path}/details")).await.assert_status(200);
    assert_eq!(details["stream"]["firstRevision"], at, "{details}");
    assert_eq!(details["stream"]["revision"], end, "{details}");
    api.put(
        &format!("{path}/events/{}", end + 1),
        &json!({"event": {"eventType": "next", "payload": {"w": 7}}}),
    )
    .await
    .assert_status(201);
    let feed = settled_feed(t, &format!("/streams/{ty}/events"), 0, |entries| {
        entries.last().is_some_and(|e| e["revision"] == end + 1)
            && entries.first().is_some_and(|e| e["revision"] == at)
    })
    .await;
    let r: Vec<u64> = feed
        .iter()
        .map(|e| e["revision"].as_u64().unwrap())
        .collect();
    assert_eq!(
        r,
        (at..=end + 1).collect::<Vec<_>>(),
        "the feed holds the kept events"
    );
}
