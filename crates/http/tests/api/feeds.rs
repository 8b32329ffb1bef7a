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
