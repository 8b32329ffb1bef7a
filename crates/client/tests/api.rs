//! The client against the real router, served on a loopback port with a
//! fresh in-memory store per test.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use eventstore_client::{
    Client, Direction, Error, EventId, EventType, Expectation, FeedOptions, JsonObject, JsonValue,
    NewEvent, RetryPolicy, Revision, StreamId, StreamRead, StreamType,
};
use eventstore_core::MemoryStore;
use eventstore_http::{AppState, router};

async fn serve(state: AppState) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router(state)).await.unwrap();
    });
    format!("http://{addr}")
}

async fn server() -> String {
    serve(AppState::new(Arc::new(MemoryStore::new()))).await
}

fn client(url: &str) -> Client {
    Client::builder(url)
        .retry(RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
        })
        .build()
        .unwrap()
}

fn st(s: &str) -> StreamType {
    StreamType::parse(s).unwrap()
}

fn sid(s: &str) -> StreamId {
    StreamId::parse(s).unwrap()
}

fn event(n: usize) -> NewEvent {
    let mut e = NewEvent::new(
        EventType::parse(format!("happened-{}", n % 3)).unwrap(),
        JsonValue::from_text(format!(r#"{{"n":{n},"keep":"as is",  "x":1.50}}"#)).unwrap(),
    );
    e.metadata = JsonObject::from_text(format!(r#"{{"seq":{n}}}"#)).unwrap();
    e
}

#[tokio::test]
async fn every_endpoint_round_trips() {
    let url = server().await;
    let c = client(&url);
    assert_eq!(c.liveness().await.unwrap().status, "ok");

    // Create a stream with a server-made id, then append with PUT.
    let order = st("order");
    let first = event(0);
    let created = c.create_stream(&order, first.clone()).await.unwrap();
    assert_eq!(created.revision, Revision::new(1));
    let id = created.stream_id.clone();
    let second = event(1);
    let put = c
        .append_at(&order, &id, Revision::new(2), second.clone())
        .await
        .unwrap();
    assert!(!put.already_appended);
    assert_eq!(put.stream.revision, Revision::new(2));
    // The same PUT again (same event id) is recognised as a retry.
    let again = c
        .append_at(&order, &id, Revision::new(2), second.clone())
        .await
        .unwrap();
    assert!(again.already_appended);
    let details = c.stream_details(&order, &id).await.unwrap();
    assert_eq!(details.revision, Revision::new(2));

    // Batch append with an exact expectation.
    let batch: Vec<_> = (2..10).map(event).collect();
    let out = c
        .append(
            &order,
            &id,
            Expectation::Exact(Revision::new(2)),
            batch.clone(),
        )
        .await
        .unwrap();
    assert_eq!((out.first_revision.get(), out.last_revision.get()), (3, 10));
    assert!(!out.already_appended);

    // Forward read in pages of 3: every event once, in order, payload kept.
    let events: Vec<_> = c
        .read_stream(&order, &id, StreamRead::forward_after(Revision::ZERO, 3))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(events.len(), 10);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.revision.get(), i as u64 + 1);
        let sent = [&first, &second]
            .into_iter()
            .chain(batch.iter())
            .nth(i)
            .unwrap();
        assert_eq!(e.event_id, sent.event_id);
        assert_eq!(e.payload, sent.payload);
        assert_eq!(e.metadata, sent.metadata);
        assert_eq!(e.event_type, sent.event_type);
    }
    // From a revision.
    let tail: Vec<_> = c
        .read_stream(&order, &id, StreamRead::forward_after(Revision::new(7), 2))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        tail.iter().map(|e| e.revision.get()).collect::<Vec<_>>(),
        [8, 9, 10]
    );
    // Backward, from the end and before a revision.
    let back: Vec<_> = c
        .read_stream(&order, &id, StreamRead::backward(None, 4))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        back.iter().map(|e| e.revision.get()).collect::<Vec<_>>(),
        (1..=10).rev().collect::<Vec<_>>()
    );
    let back: Vec<_> = c
        .read_stream(&order, &id, StreamRead::backward(Some(Revision::new(4)), 2))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        back.iter().map(|e| e.revision.get()).collect::<Vec<_>>(),
        [3, 2, 1]
    );
    assert_eq!(
        StreamRead::backward(None, 1).direction,
        Direction::Backward,
        "sanity of the read options"
    );

    // Another type, and the type listing.
    let invoice = st("invoice");
    for i in 0..3 {
        c.append(
            &invoice,
            &sid(&format!("inv-{i}")),
            Expectation::NoStream,
            vec![event(i)],
        )
        .await
        .unwrap();
    }
    let types: Vec<_> = c.stream_types().try_collect().await.unwrap();
    let counts: Vec<_> = types
        .iter()
        .map(|t| (t.stream_type.as_str().to_owned(), t.streams))
        .collect();
    assert_eq!(counts, [("invoice".to_owned(), 3), ("order".to_owned(), 1)]);

    // Global feed: all 13 events, positions strictly increasing; type feed.
    let feed: Vec<_> = c
        .feed(FeedOptions::from_start().page_size(4))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(feed.len(), 13);
    assert!(feed.windows(2).all(|w| w[0].position < w[1].position));
    let invoices: Vec<_> = c
        .type_feed(&invoice, FeedOptions::from_start().page_size(2))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(invoices.len(), 3);
    assert!(invoices.iter().all(|e| e.stream_type == invoice));
    // Resuming after a position yields exactly the rest.
    let cut = feed[5].position.unwrap();
    let rest: Vec<_> = c
        .feed(FeedOptions::from_start().after(cut))
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        feed[6..].iter().map(|e| e.event_id).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn listing_streams_follows_page_keys() {
    let url = server().await;
    let c = client(&url);
    let t = st("user");
    for i in 0..230 {
        c.append(
            &t,
            &sid(&format!("u-{i:03}")),
            Expectation::NoStream,
            vec![event(i)],
        )
        .await
        .unwrap();
    }
    let first = c
        .list_streams_page(&t, None, None, Some(100))
        .await
        .unwrap();
    assert!(first.has_more && first.next_page_key.is_some());
    let all: Vec<_> = c.list_streams(&t, None).try_collect().await.unwrap();
    assert_eq!(all.len(), 230);
    let mut ids: Vec<_> = all
        .iter()
        .map(|s| s.stream_id.as_str().to_owned())
        .collect();
    assert!(all.windows(2).all(|w| w[0].updated_at <= w[1].updated_at));
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 230, "no stream listed twice");
    // updated-after cuts the listing.
    let after = all[199].updated_at;
    let later: Vec<_> = c.list_streams(&t, Some(after)).try_collect().await.unwrap();
    assert!(later.iter().all(|s| s.updated_at > after));
    assert!(later.len() <= 30 && !later.is_empty());
    // A page key the server cannot decode is invalid input.
    let err = c
        .list_streams_page(&t, None, Some("garbage"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidInput {
                request_id: Some(_),
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn follow_mode_delivers_concurrent_appends_once_in_order() {
    let url = server().await;
    let c = client(&url);
    let t = st("live");
    // Something before the reader starts, which it must skip.
    c.append(&t, &sid("old"), Expectation::Any, vec![event(0)])
        .await
        .unwrap();
    let start = c
        .feed(FeedOptions::from_start())
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .last()
        .unwrap()
        .position
        .unwrap();

    let reader = c.clone();
    let expected_count = 40;
    let follower = tokio::spawn(async move {
        reader
            .feed(
                FeedOptions::from_start()
                    .after(start)
                    .page_size(7)
                    .follow_with_wait(Duration::from_secs(2)),
            )
            .take(expected_count)
            .try_collect::<Vec<_>>()
            .await
    });
    let mut written = Vec::new();
    for round in 0..10 {
        let id = sid(&format!("s-{}", round % 3));
        let events: Vec<_> = (0..4).map(|i| event(round * 4 + i)).collect();
        written.extend(events.iter().map(|e| e.event_id));
        c.append(&t, &id, Expectation::Any, events).await.unwrap();
        tokio::time::sleep(Duration::from_millis(if round % 2 == 0 { 5 } else { 300 })).await;
    }
    let got = tokio::time::timeout(Duration::from_secs(30), follower)
        .await
        .expect("the follower got every event")
        .unwrap()
        .unwrap();
    let got_ids: Vec<EventId> = got.iter().map(|e| e.event_id).collect();
    assert_eq!(got_ids, written, "each event once, in the order appended");
    assert!(got.windows(2).all(|w| w[0].position < w[1].position));
}

#[tokio::test]
async fn typed_errors_carry_what_the_server_said() {
    let url = server().await;
    let c = client(&url);
    let (t, id) = (st("acct"), sid("a-1"));
    c.append(&t, &id, Expectation::NoStream, vec![event(1), event(2)])
        .await
        .unwrap();

    // 409 with expected and actual revision.
    let err = c
        .append(
            &t,
            &id,
            Expectation::Exact(Revision::new(5)),
            vec![event(3)],
        )
        .await
        .unwrap_err();
    match err {
        Error::WrongExpectedRevision {
            expected,
            actual,
            request_id,
            ..
        } => {
            assert_eq!(expected, Some(Expectation::Exact(Revision::new(5))));
            assert_eq!(actual, Some(Revision::new(2)));
            assert!(request_id.is_some());
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = c
        .append(&t, &id, Expectation::NoStream, vec![event(3)])
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::WrongExpectedRevision { actual: Some(r), .. } if r.get() == 2),
        "{err:?}"
    );
    // PUT at the wrong revision.
    let err = c
        .append_at(&t, &id, Revision::new(9), event(4))
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err:?}");

    // An event id already in the stream, in another arrangement.
    let first = c
        .read_stream(&t, &id, StreamRead::forward())
        .try_collect::<Vec<_>>()
        .await
        .unwrap()[0]
        .clone();
    // (With a new event beside it, so that it is not a retry: a retry is
    // recognised by its ids wherever they sit.)
    let mut dup = event(5);
    dup.event_id = first.event_id;
    let err = c
        .append(&t, &id, Expectation::Any, vec![dup, event(7)])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DuplicateEvent { .. }), "{err:?}");

    // 404.
    let err = c.stream_details(&t, &sid("nope")).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = c
        .append_at(&t, &sid("nope"), Revision::new(1), event(6))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");

    // 413: too many events, and an event too large.
    let err = c
        .append(
            &t,
            &sid("big"),
            Expectation::Any,
            (0..101).map(event).collect(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err:?}");
    let huge = NewEvent::new(
        EventType::parse("huge").unwrap(),
        JsonValue::from_serialize(&"x".repeat(300 * 1024)).unwrap(),
    );
    let err = c
        .append(&t, &sid("big"), Expectation::Any, vec![huge])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err:?}");
    // Nothing of the rejected appends was written.
    assert_eq!(
        c.stream_details(&t, &id).await.unwrap().revision,
        Revision::new(2)
    );
    assert!(matches!(
        c.stream_details(&t, &sid("big")).await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn api_keys_are_sent_and_their_absence_is_unauthorized() {
    let url = serve(AppState::new(Arc::new(MemoryStore::new())).with_api_keys(["k-1"])).await;
    let anonymous = client(&url);
    let err = anonymous
        .stream_types()
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    let wrong = Client::builder(&url).api_key("k-2").build().unwrap();
    let err = wrong.stream_details(&st("a"), &sid("b")).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
    let right = Client::builder(&url).api_key("k-1").build().unwrap();
    right
        .append(&st("a"), &sid("b"), Expectation::NoStream, vec![event(1)])
        .await
        .unwrap();
    assert_eq!(
        right
            .stream_details(&st("a"), &sid("b"))
            .await
            .unwrap()
            .revision
            .get(),
        1
    );
}

#[tokio::test]
async fn unreachable_server_is_a_transport_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let c = Client::builder(format!("http://{addr}"))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let err = c.liveness().await.unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
    assert!(err.is_transient());
}

/// A TCP proxy in front of `upstream` that, for its first `drop_first`
/// connections, forwards the request but throws the answer away and closes
/// the connection, as a network failure after the server committed would.
async fn lossy_proxy(upstream: String, drop_first: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let upstream = upstream.trim_start_matches("http://").to_owned();
    let dropped = Arc::new(AtomicUsize::new(0));
    let counter = dropped.clone();
    tokio::spawn(async move {
        let mut n = 0;
        loop {
            let (mut client, _) = listener.accept().await.unwrap();
            let mut server = TcpStream::connect(&upstream).await.unwrap();
            n += 1;
            if n <= drop_first {
                let counter = counter.clone();
                tokio::spawn(async move {
                    // Forward the request bytes until the server starts answering.
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut answer = [0u8; 1];
                    loop {
                        tokio::select! {
                            r = client.read(&mut buf) => {
                                let k = r.unwrap_or(0);
                                if k == 0 { break; }
                                server.write_all(&buf[..k]).await.unwrap();
                            }
                            r = server.read(&mut answer) => {
                                let _ = r;
                                break;
                            }
                        }
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    drop(client);
                });
            } else {
                tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        }
    });
    (format!("http://{addr}"), dropped)
}

#[tokio::test]
async fn a_retry_after_a_lost_answer_reuses_the_ids_and_writes_nothing_twice() {
    let url = server().await;
    let direct = client(&url);
    let (t, id) = (st("pay"), sid("p-1"));
    direct
        .append(&t, &id, Expectation::NoStream, vec![event(0)])
        .await
        .unwrap();

    let (proxy, dropped) = lossy_proxy(url.clone(), 1).await;
    let through = client(&proxy);
    let events: Vec<_> = (1..4).map(event).collect();
    let out = through
        .append(
            &t,
            &id,
            Expectation::Exact(Revision::new(1)),
            events.clone(),
        )
        .await
        .unwrap();
    assert_eq!(
        dropped.load(Ordering::SeqCst),
        1,
        "the first answer was lost"
    );
    assert!(out.already_appended, "the retry was recognised (200)");
    assert_eq!((out.first_revision.get(), out.last_revision.get()), (2, 4));
    let stored: Vec<_> = direct
        .read_stream(&t, &id, StreamRead::forward())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(stored.len(), 4, "no duplicate");
    assert_eq!(
        stored[1..].iter().map(|e| e.event_id).collect::<Vec<_>>(),
        events.iter().map(|e| e.event_id).collect::<Vec<_>>()
    );

    // The same through PUT: the lost answer's retry is recognised too.
    let (proxy, dropped) = lossy_proxy(url.clone(), 1).await;
    let through = client(&proxy);
    let out = through
        .append_at(&t, &id, Revision::new(5), event(9))
        .await
        .unwrap();
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
    assert!(out.already_appended);
    assert_eq!(
        direct.stream_details(&t, &id).await.unwrap().revision,
        Revision::new(5)
    );

    // Without retries the lost answer is a transport error.
    let (proxy, _) = lossy_proxy(url, 1).await;
    let once = Client::builder(&proxy)
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let err = once
        .append(&t, &id, Expectation::Any, vec![event(10)])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transport(_)), "{err:?}");
}

#[tokio::test]
async fn streams_are_deleted_and_truncated_with_typed_errors() {
    let url = serve(
        AppState::new(Arc::new(MemoryStore::new()))
            .with_api_keys(["user"])
            .with_admin_api_keys(["admin"]),
    )
    .await;
    let user = Client::builder(&url).api_key("user").build().unwrap();
    let admin = Client::builder(&url).api_key("admin").build().unwrap();
    let (t, id) = (st("ledger"), sid("l-1"));
    user.append(&t, &id, Expectation::NoStream, (0..5).map(event).collect())
        .await
        .unwrap();

    match user.delete_stream(&t, &id, None).await {
        Err(Error::Forbidden { .. }) => {}
        other => panic!("a user key may not delete: {other:?}"),
    }
    match admin
        .truncate_stream(&t, &id, Revision::new(3), Some(Revision::new(4)))
        .await
    {
        Err(Error::WrongExpectedRevision { actual, .. }) => {
            assert_eq!(actual, Some(Revision::new(5)));
        }
        other => panic!("a wrong expectation: {other:?}"),
    }
    match admin.truncate_stream(&t, &id, Revision::new(9), None).await {
        Err(Error::InvalidInput { .. }) => {}
        other => panic!("beyond the end: {other:?}"),
    }
    let info = admin
        .truncate_stream(&t, &id, Revision::new(3), Some(Revision::new(5)))
        .await
        .unwrap();
    assert_eq!(info.first_revision, Revision::new(3));
    let kept: Vec<_> = user
        .read_stream(&t, &id, StreamRead::forward())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(kept.first().map(|e| e.revision), Some(Revision::new(3)));

    admin
        .delete_stream(&t, &id, Some(Revision::new(5)))
        .await
        .unwrap();
    admin.delete_stream(&t, &id, None).await.unwrap();
    match user.stream_details(&t, &id).await {
        Err(Error::StreamDeleted { request_id, .. }) => assert!(request_id.is_some()),
        other => panic!("details of a deleted stream: {other:?}"),
    }
    match user.append(&t, &id, Expectation::Any, vec![event(9)]).await {
        Err(Error::StreamDeleted { .. }) => {}
        other => panic!("an append to a deleted stream: {other:?}"),
    }
    match admin.delete_stream(&t, &sid("never"), None).await {
        Err(Error::NotFound { .. }) => {}
        other => panic!("an unknown stream: {other:?}"),
    }
}

/// A server whose feed requests (`GET /events`) are counted; the n-th
/// (from 1) is answered 503 when `refuse(n)`. Returns its URL and the
/// count.
async fn feed_counting_server(
    refuse: impl Fn(usize) -> bool + Clone + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>) {
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = asked.clone();
    let app = router(AppState::new(Arc::new(MemoryStore::new()))).layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let (counter, refuse) = (counter.clone(), refuse.clone());
            async move {
                if req.uri().path() == "/events" {
                    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    if refuse(n) {
                        return axum::response::IntoResponse::into_response(
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        );
                    }
                }
                next.run(req).await
            }
        },
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, asked)
}

/// Ten events in one stream of `t`; their ids in order.
async fn ten_events(c: &Client, t: &str) -> Vec<EventId> {
    let events: Vec<_> = (0..10).map(event).collect();
    let ids: Vec<_> = events.iter().map(|e| e.event_id).collect();
    c.append(
        &st(t),
        &sid(&format!("{t}-1")),
        Expectation::NoStream,
        events,
    )
    .await
    .unwrap();
    ids
}

/// The feed asks for the next page as soon as a page arrives, while the
/// consumer still works through its events; the events come out once each,
/// in order, all the same.
#[tokio::test]
async fn the_feed_asks_for_the_next_page_while_a_page_is_consumed() {
    let (url, asked) = feed_counting_server(|_| false).await;
    let c = client(&url);
    let ids = ten_events(&c, "prefetched").await;

    let mut feed = std::pin::pin!(c.feed(FeedOptions::from_start().page_size(2)));
    let first = feed.try_next().await.unwrap().unwrap();
    // The consumer holds the first page; the second is asked for already.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while asked.load(Ordering::SeqCst) < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        asked.load(Ordering::SeqCst),
        2,
        "the next page is asked for"
    );
    let mut got = vec![first.event_id];
    while let Some(e) = feed.try_next().await.unwrap() {
        got.push(e.event_id);
    }
    assert_eq!(got, ids);
}

/// In follow mode, a prefetched page whose request keeps failing (503
/// beyond the client's retries) is yielded as one error; the feed then
/// asks again from where it was, and every event still comes out once, in
/// order.
#[tokio::test]
async fn a_prefetched_page_that_fails_in_follow_mode_is_an_error_and_the_feed_goes_on() {
    // The client retries 3 times: feed requests 2 to 6 fail, so the
    // prefetched page fails for good once (requests 2–5) and its next
    // attempt (request 6) needs one retry.
    let (url, asked) = feed_counting_server(|n| (2..=6).contains(&n)).await;
    let c = client(&url);
    let ids = ten_events(&c, "flaky").await;

    let feed = c.feed(
        FeedOptions::from_start()
            .page_size(4)
            .follow_with_wait(Duration::from_secs(1)),
    );
    let mut feed = std::pin::pin!(feed);
    let (mut got, mut errors) = (Vec::new(), Vec::new());
    let collected = tokio::time::timeout(Duration::from_secs(30), async {
        while got.len() < ids.len() {
            match feed.next().await {
                Some(Ok(e)) => got.push(e.event_id),
                Some(Err(e)) => errors.push(e),
                None => break,
            }
        }
    })
    .await;
    assert!(collected.is_ok(), "every event came: {got:?} {errors:?}");
    assert_eq!(got, ids, "each event once, in order");
    assert_eq!(errors.len(), 1, "one failed page: {errors:?}");
    assert!(errors[0].is_transient(), "{:?}", errors[0]);
    assert!(
        asked.load(Ordering::SeqCst) >= 7,
        "the failed page was asked again"
    );
}
