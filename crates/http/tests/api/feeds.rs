//! Feeds and long polling.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::spawn;

#[tokio::test]
async fn a_waiting_request_returns_the_event_appended_meanwhile() {
    let s = std::sync::Arc::new(spawn().await);
    let id = s.create("order", json!({"n": 0})).await;
    let head = s.get("/events").await.assert_status(200)["eventPage"]["lastPosition"]
        .as_u64()
        .unwrap();

    let waiter = {
        let s = s.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let a = s
                .get(&format!("/events?after-position={head}&wait=20"))
                .await;
            (a.assert_status(200), started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        !waiter.is_finished(),
        "the request is held while nothing is new"
    );
    s.append_n("order", &id, 1).await;
    let (page, elapsed) = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiting request answers soon after the append")
        .unwrap();
    assert!(elapsed < Duration::from_secs(10));
    let events = page["eventPage"]["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["revision"], 2);
    assert!(events[0]["position"].as_u64().unwrap() > head);
    assert_eq!(page["eventPage"]["lastPosition"], events[0]["position"]);
}

#[tokio::test]
async fn a_waiting_type_feed_ignores_other_types_and_wakes_for_its_own() {
    let s = std::sync::Arc::new(spawn().await);
    let waiter = {
        let s = s.clone();
        tokio::spawn(async move {
            s.get("/streams/wanted/events?wait=20")
                .await
                .assert_status(200)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.create("other", json!(1)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiter.is_finished(),
        "events of another type do not answer the request"
    );
    s.create("wanted", json!(2)).await;
    let page = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("answers after an event of its type")
        .unwrap();
    let events = page["eventPage"]["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["streamType"], "wanted");
}

#[tokio::test]
async fn wait_bounds_and_empty_pages() {
    let s = spawn().await;
    // Nothing there: wait=0 answers at once, wait=1 after about a second.
    let started = Instant::now();
    let page = s.get("/events?after-position=5").await.assert_status(200);
    assert!(started.elapsed() < Duration::from_millis(900));
    assert_eq!(
        page["eventPage"],
        json!({"events": [], "hasMore": false, "lastPosition": 5})
    );
    let started = Instant::now();
    let page = s.get("/events?wait=1").await.assert_status(200);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    assert_eq!(page["eventPage"]["events"], json!([]));
    assert_eq!(page["eventPage"]["lastPosition"], 0);
    s.get("/events?wait=31")
        .await
        .assert_error(400, "bad-request");
    s.get("/streams/x/events?wait=31")
        .await
        .assert_error(400, "bad-request");
}

#[tokio::test]
async fn shutdown_releases_waiting_requests() {
    let s = std::sync::Arc::new(spawn().await);
    let waiter = {
        let s = s.clone();
        tokio::spawn(async move { s.get("/events?wait=30").await.assert_status(200) })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.state.begin_shutdown();
    let page = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("a shutdown ends long polls")
        .unwrap();
    assert_eq!(page["eventPage"]["events"], json!([]));
}

#[tokio::test]
async fn feeds_page_in_global_order_and_filter_by_type() {
    let s = spawn().await;
    let a = s.create("alpha", json!(0)).await;
    let b = s.create("beta", json!(0)).await;
    s.append_n("alpha", &a, 4).await;
    s.append_n("beta", &b, 2).await;
    s.append_n("alpha", &a, 3).await;

    // All: 1 + 1 + 4 + 2 + 3 = 11 events, pages of 3.
    let mut after = 0;
    let mut seen = vec![];
    loop {
        let page = s
            .get(&format!("/events?after-position={after}&limit=3"))
            .await
            .assert_status(200);
        let events = page["eventPage"]["events"].as_array().unwrap().clone();
        assert!(events.len() <= 3);
        seen.extend(events);
        let last = page["eventPage"]["lastPosition"].as_u64().unwrap();
        assert!(last >= after);
        after = last;
        if page["eventPage"]["hasMore"] == false {
            break;
        }
    }
    assert_eq!(seen.len(), 11);
    let positions: Vec<u64> = seen
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    for t in ["alpha", "beta"] {
        let revs: Vec<u64> = seen
            .iter()
            .filter(|e| e["streamType"] == t)
            .map(|e| e["revision"].as_u64().unwrap())
            .collect();
        assert!(
            revs.windows(2).all(|w| w[0] + 1 == w[1]),
            "feed order is revision order"
        );
    }

    // The type feed carries only its type, same order.
    let alpha = s
        .get("/streams/alpha/events?limit=1000")
        .await
        .assert_status(200);
    let alpha_events = alpha["eventPage"]["events"].as_array().unwrap();
    assert_eq!(alpha_events.len(), 8);
    assert!(alpha_events.iter().all(|e| e["streamType"] == "alpha"));
    let first_page = s
        .get("/streams/beta/events?limit=2")
        .await
        .assert_status(200);
    let last = first_page["eventPage"]["lastPosition"].as_u64().unwrap();
    let rest = s
        .get(&format!("/streams/beta/events?after-position={last}"))
        .await
        .assert_status(200);
    assert_eq!(rest["eventPage"]["events"].as_array().unwrap().len(), 1);
    assert_eq!(rest["eventPage"]["hasMore"], false);
    // A type without streams: an empty feed, not an error.
    let none = s.get("/streams/nobody/events").await.assert_status(200);
    assert_eq!(none["eventPage"]["events"], json!([]));
}
