//! Items never exceed DynamoDB's 400 KB limit, whatever the API allows;
//! forged listing cursors are refused as bad requests.

mod support;

use eventstore_core::{
    AppendRequest, EventStore, EventType, Expectation, JsonValue, Limits, NewEvent, Revision,
    StoreError, StreamCursor, StreamId, StreamKey, StreamRead, StreamType, Timestamp,
};
use eventstore_dynamodb::cost::Recorder;

fn big_event(fill: char) -> NewEvent {
    // Payload plus the empty metadata `{}`: exactly the per-event limit.
    let text = format!(
        "\"{}\"",
        fill.to_string().repeat(Limits::MAX_EVENT_DATA_BYTES - 4)
    );
    NewEvent::new(
        EventType::parse("Big").unwrap(),
        JsonValue::from_text(text).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maximum_size_events_are_split_across_items_under_400_kb() {
    let recorder = Recorder::new();
    let h = support::harness("limits", Some(&recorder), false).await;
    let key = StreamKey::new(
        StreamType::parse("blob").unwrap(),
        StreamId::parse("b-1").unwrap(),
    );
    // Four maximum-size events: a 1 MiB request body's worth.
    let events: Vec<NewEvent> = "abcd".chars().map(big_event).collect();
    let out = h
        .store
        .append(AppendRequest::new(key.clone(), Expectation::NoStream, events.clone()).unwrap())
        .await
        .unwrap();
    assert_eq!(out.last_revision, Revision::new(4));
    // A small event then a big one with `any`: the tip's events move out too.
    let small = NewEvent::new(
        EventType::parse("Small").unwrap(),
        JsonValue::from_text("1").unwrap(),
    );
    h.store
        .append(AppendRequest::new(key.clone(), Expectation::Any, vec![small]).unwrap())
        .await
        .unwrap();
    h.store
        .append(
            AppendRequest::new(
                key.clone(),
                Expectation::Exact(Revision::new(5)),
                vec![big_event('e')],
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let mut largest = 0;
    for r in recorder.requests() {
        for s in &r.written_sizes {
            largest = largest.max(*s);
        }
    }
    assert!(largest > 256 * 1024, "the big events were written");
    assert!(
        largest < 400 * 1024,
        "largest item {largest} bytes stays under 400 KB"
    );
    let read = h
        .store
        .read_stream(&key, StreamRead::forward())
        .await
        .unwrap();
    assert_eq!(read.events.len(), 6);
    assert_eq!(read.events[0].payload.get(), events[0].payload.get());
    assert_eq!(
        read.events[5].payload.len() + 2,
        Limits::MAX_EVENT_DATA_BYTES
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_listing_cursors_are_bad_requests_and_stay_in_their_listing() {
    let h = support::harness("cursor", None, true).await;
    let t = StreamType::parse("order").unwrap();
    let forged = StreamCursor {
        updated_at: Timestamp::from_micros(-5),
        stream_id: StreamId::parse("x").unwrap(),
    };
    assert!(matches!(
        h.store.list_streams(&t, None, Some(forged), 10).await,
        Err(StoreError::InvalidRequest(_))
    ));
    // A cursor is only ever a position inside the type's own listing.
    let key = StreamKey::new(
        StreamType::parse("other").unwrap(),
        StreamId::parse("o").unwrap(),
    );
    h.store
        .append(
            AppendRequest::new(
                key,
                Expectation::NoStream,
                vec![NewEvent::new(
                    EventType::parse("x").unwrap(),
                    JsonValue::from_text("1").unwrap(),
                )],
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let cursor = StreamCursor {
        updated_at: Timestamp::from_micros(0),
        stream_id: StreamId::parse("a").unwrap(),
    };
    let page = h
        .store
        .list_streams(&t, None, Some(cursor), 10)
        .await
        .unwrap();
    assert!(
        page.streams.is_empty(),
        "another type's streams never leak into a listing"
    );
}
