//! JSON request bodies: `NewEvent` and the create, append and batch-append
//! bodies of `eventstore_api`.
//!
//! The first byte of an input picks the body type, the rest is the JSON
//! text. Checked, besides "no panic": a body that parses serializes to
//! JSON that parses to the same body, payload and metadata text byte for
//! byte; turning its events into an append request either succeeds or is
//! refused with an error.

use eventstore_api::{AppendEventBody, BatchAppendBody, CreateStreamBody, NewEventBody};
use eventstore_core::{AppendRequest, Expectation, StreamId, StreamKey, StreamType};

use crate::engine::Target;

/// The target.
pub const TARGET: Target = Target {
    name: "json_bodies",
    seeds,
    dictionary: &[
        b"\"eventType\":",
        b"\"payload\":",
        b"\"eventId\":",
        b"\"metadata\":",
        b"\"initialEvent\":",
        b"\"event\":",
        b"\"events\":",
        b"\"expectedRevision\":",
        b"\"no-stream\"",
        b"\"exists\"",
        b"\"any\"",
        b"18446744073709551616",
        b"-1",
        b"1e999",
        b"\"\\ud800\"",
        b"\"\\u0000\"",
        b"\"019a0000-0000-7000-8000-000000000000\"",
        b"[[[[[[[[[[[[[[[[",
        b"null",
        b"{}",
        "😀".as_bytes(),
    ],
    fixup: None,
    check,
    default_iters: 20_000,
};

fn seeds() -> Vec<Vec<u8>> {
    let with = |kind: u8, json: &str| {
        let mut v = vec![kind];
        v.extend_from_slice(json.as_bytes());
        v
    };
    vec![
        with(0, r#"{"eventType":"OrderPlaced","payload":{"total":12.5}}"#),
        with(
            0,
            r#"{"eventType":"𝄞 ✓","payload":"😀","eventId":"019a0000-0000-7000-8000-000000000001","metadata":{"by":"me"}}"#,
        ),
        with(
            1,
            r#"{"initialEvent":{"eventType":"OrderPlaced","payload":[1, 2.50, {"a":null}]}}"#,
        ),
        with(2, r#"{"event":{"eventType":"Shipped","payload":true}}"#),
        with(
            3,
            r#"{"expectedRevision":3,"events":[{"eventType":"A","payload":1},{"eventType":"B","payload":{"x":"y"},"metadata":{}}]}"#,
        ),
        with(3, r#"{"expectedRevision":"no-stream","events":[]}"#),
        with(
            3,
            r#"{"expectedRevision":"any","events":[{"eventType":"A","payload":0}]}"#,
        ),
    ]
}

fn check(input: &[u8]) {
    let Some((&kind, json)) = input.split_first() else {
        return;
    };
    match kind % 4 {
        0 => {
            if let Ok(body) = serde_json::from_slice::<NewEventBody>(json) {
                check_events(Expectation::Any, vec![round_trip(&body)]);
            }
        }
        1 => {
            if let Ok(body) = serde_json::from_slice::<CreateStreamBody>(json) {
                let again: CreateStreamBody = reparse(&body);
                assert_eq!(again.initial_event, body.initial_event);
                check_events(Expectation::NoStream, vec![round_trip(&body.initial_event)]);
            }
        }
        2 => {
            if let Ok(body) = serde_json::from_slice::<AppendEventBody>(json) {
                let again: AppendEventBody = reparse(&body);
                assert_eq!(again.event, body.event);
                check_events(Expectation::Any, vec![round_trip(&body.event)]);
            }
        }
        _ => {
            if let Ok(body) = serde_json::from_slice::<BatchAppendBody>(json) {
                let again: BatchAppendBody = reparse(&body);
                assert_eq!(again.expected_revision, body.expected_revision);
                assert_eq!(again.events, body.events);
                let events = body.events.iter().map(round_trip).collect();
                check_events(body.expected_revision.0, events);
            }
        }
    }
}

fn reparse<T: serde::Serialize + serde::de::DeserializeOwned>(body: &T) -> T {
    let text = serde_json::to_string(body).expect("a parsed body serializes");
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("a serialized body does not parse again ({e}): {text}"))
}

/// The body survives a round trip, its JSON text unchanged.
fn round_trip(body: &NewEventBody) -> NewEventBody {
    let again: NewEventBody = reparse(body);
    assert_eq!(&again, body);
    assert_eq!(again.payload.get(), body.payload.get());
    if let (Some(a), Some(b)) = (&again.metadata, &body.metadata) {
        assert_eq!(a.get(), b.get());
        assert!(a.as_value().is_object(), "metadata is an object");
    }
    again
}

fn check_events(expectation: Expectation, events: Vec<NewEventBody>) {
    let stream = StreamKey::new(
        StreamType::parse("order").expect("type"),
        StreamId::parse("s-1").expect("id"),
    );
    let events = events
        .into_iter()
        .map(NewEventBody::into_new_event)
        .collect();
    let _ = AppendRequest::new(stream, expectation, events);
}
