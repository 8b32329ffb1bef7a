//! Feeds and long polls at the router's level (the contract suite covers
//! them on every target): a shutdown releases waiting requests.

use std::time::Duration;

use serde_json::json;

use crate::support::spawn;

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

/// Every feed page names the next one in a `Link` header (a reference made
/// of a query alone, resolved against the URL asked), known before the
/// body is read; following it continues the feed without a gap.
#[tokio::test]
async fn a_feed_page_links_the_next_one() {
    let s = spawn().await;
    s.append_n("linked", "a", 3).await;
    s.append_n("other", "b", 2).await;
    let page = s.get("/events?limit=2").await;
    assert_eq!(
        page.header("link"),
        Some(r#"<?after-position=2&limit=2>; rel="next""#)
    );
    let next = s
        .get("/events?after-position=2&limit=2")
        .await
        .assert_status(200);
    assert_eq!(next["eventPage"]["events"][0]["position"], 3);
    // The type feed: its own positions; `wait` is carried over.
    let page = s.get("/streams/linked/events?limit=10&wait=1").await;
    assert_eq!(
        page.header("link"),
        Some(r#"<?after-position=3&limit=10&wait=1>; rel="next""#)
    );
    page.assert_status(200);
    // Past the end: the next page starts where this one did.
    let page = s.get("/events?after-position=5").await;
    assert_eq!(
        page.header("link"),
        Some(r#"<?after-position=5&limit=100>; rel="next""#)
    );
}
