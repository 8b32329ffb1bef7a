//! Paging through a type's streams.

use std::collections::HashSet;

use serde_json::json;

use crate::support::spawn;

#[tokio::test]
async fn listing_pages_visit_every_stream_once_in_update_order() {
    let s = spawn().await;
    let mut ids = vec![];
    for i in 0..7 {
        ids.push(s.create("pageme", json!(i)).await);
    }
    s.create("elsewhere", json!(0)).await;
    // Touch the first one: it moves to the end of the order.
    s.append_n("pageme", &ids[0], 1).await;

    let mut key: Option<String> = None;
    let mut seen = vec![];
    let mut pages = 0;
    loop {
        let path = match &key {
            Some(k) => format!("/streams/pageme?limit=3&next-page-key={k}"),
            None => "/streams/pageme?limit=3".to_owned(),
        };
        let page = s.get(&path).await.assert_status(200);
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
    assert_eq!(seen_ids.len(), 7);
    assert_eq!(seen_ids.iter().collect::<HashSet<_>>().len(), 7);
    assert_eq!(seen_ids.last().copied(), Some(ids[0].as_str()));
    let times: Vec<&str> = seen
        .iter()
        .map(|s| s["updatedAt"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");

    // updated-after combined with paging.
    let cut = seen[3]["updatedAt"].as_str().unwrap().replace('+', "%2B");
    let after = s
        .get(&format!("/streams/pageme?updated-after={cut}&limit=2"))
        .await
        .assert_status(200);
    let first: Vec<&str> = after["streamPage"]["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["streamId"].as_str().unwrap())
        .collect();
    assert_eq!(first, seen_ids[4..6].to_vec());
    let k = after["streamPage"]["nextPageKey"].as_str().unwrap();
    let rest = s
        .get(&format!(
            "/streams/pageme?updated-after={cut}&limit=2&next-page-key={k}"
        ))
        .await
        .assert_status(200);
    assert_eq!(rest["streamPage"]["streams"].as_array().unwrap().len(), 1);
    assert_eq!(rest["streamPage"]["hasMore"], false);
}
