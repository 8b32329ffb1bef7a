//! The DynamoDB item codec: event blobs ([`codec::decode`], [`codec::count`])
//! and feed page items ([`items::page_slots`], gaps included).
//!
//! The first byte of an input picks the decoder (even: a blob, odd: a
//! feed page), the rest is its input. Checked, besides "no panic":
//!
//! - a blob that decodes has as many events as its header counts, and the
//!   events encode again into a blob that decodes to the same events
//!   (blobs of the first format come back in the current one);
//! - a feed page that parses gives entries at consecutive positions from
//!   the page's key, each with at least one event, ending at the page's
//!   `l` attribute when it has one.
//!
//! A feed page input is text: its first line is the sort key, a second
//! line `l=N` the last position, every other line one entry.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use eventstore_core::{EventType, JsonObject, JsonValue, NewEvent, Timestamp};
use eventstore_dynamodb::{codec, items, relay};

use crate::engine::Target;

/// The target.
pub const TARGET: Target = Target {
    name: "dynamodb_codec",
    seeds,
    dictionary: &[
        b"|",
        b"\n",
        b"\nl=",
        b"18446744073709551615",
        b"0",
        b"{}",
        b"\"\\ud800\"",
        &[0x80, 0x01],
        &[0xff, 0xff, 0xff, 0x7f],
        &[0x80, 0x00],
    ],
    fixup: None,
    check,
    default_iters: 20_000,
};

fn event(t: &str, payload: &str, metadata: Option<&str>) -> NewEvent {
    let mut e = NewEvent::new(
        EventType::parse(t).expect("event type"),
        JsonValue::from_text(payload).expect("payload"),
    );
    if let Some(m) = metadata {
        e.metadata = JsonObject::from_text(m).expect("metadata");
    }
    e
}

fn seeds() -> Vec<Vec<u8>> {
    let blob = |events: &[NewEvent]| {
        let mut input = vec![0];
        input.extend(codec::encode(
            Timestamp::from_micros(1_700_000_000_000_000),
            events,
        ));
        input
    };
    let mut v1 = vec![0];
    v1.extend_from_slice(&7i64.to_be_bytes());
    v1.extend_from_slice(&1u16.to_be_bytes());
    v1.extend_from_slice(&[0x11; 16]);
    v1.push(3);
    v1.extend_from_slice(b"Abc");
    v1.extend_from_slice(&2u32.to_be_bytes());
    v1.extend_from_slice(b"{}");
    v1.extend_from_slice(&0u32.to_be_bytes());
    vec![
        blob(&[event("OrderPlaced", r#"{"total":12.5}"#, None)]),
        blob(&[
            event("✓".repeat(86).as_str(), r#""😀""#, Some(r#"{"by":"me"}"#)),
            event("x", "[1,2,{}]", None),
            event(&"𝄞".repeat(200), "null", Some("{}")),
        ]),
        v1,
        b"\x0100000000000000000001\nl=3\norder|s-1|1|2\ncart|s-2|1|1".to_vec(),
        b"\x0100000000000000000010\norder|s-1|3|1".to_vec(),
    ]
}

fn check(input: &[u8]) {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        check_blob(rest);
    } else {
        check_page(rest);
    }
}

fn check_blob(blob: &[u8]) {
    let Ok(events) = codec::decode(blob) else {
        return;
    };
    assert_eq!(
        codec::count(blob).expect("a decoded blob has a header"),
        events.len() as u64,
        "the header's count"
    );
    let Some(first) = events.first() else {
        return;
    };
    let created = first.created_at;
    let again: Vec<NewEvent> = events
        .iter()
        .map(|e| NewEvent {
            event_id: e.event_id,
            event_type: e.event_type.clone(),
            payload: e.payload.clone(),
            metadata: e.metadata.clone(),
        })
        .collect();
    let blob2 = codec::encode(created, &again);
    let back = codec::decode(&blob2).expect("a re-encoded blob decodes");
    assert_eq!(back.len(), events.len());
    for (a, b) in events.iter().zip(&back) {
        assert_eq!(a.created_at, b.created_at);
        assert_eq!(a.event_id, b.event_id);
        assert_eq!(a.event_type, b.event_type);
        assert_eq!(a.payload.get(), b.payload.get());
        assert_eq!(a.metadata.get(), b.metadata.get());
    }
}

fn check_page(text: &[u8]) {
    let text = String::from_utf8_lossy(text);
    let mut lines = text.split('\n');
    let sk = lines.next().unwrap_or_default();
    let mut item = HashMap::new();
    item.insert("p".to_owned(), AttributeValue::S("F".to_owned()));
    item.insert("s".to_owned(), AttributeValue::S(sk.to_owned()));
    let mut entries = Vec::new();
    for line in lines {
        match line.strip_prefix("l=") {
            Some(n) => {
                item.insert("l".to_owned(), AttributeValue::N(n.to_owned()));
            }
            None => entries.push(AttributeValue::S(line.to_owned())),
        }
    }
    item.insert("g".to_owned(), AttributeValue::L(entries));
    let Ok(parsed) = items::page_slots(&item) else {
        return;
    };
    let entries = relay::parse_page(&item).expect("a page whose slots parse parses");
    assert_eq!(
        entries.len(),
        parsed
            .iter()
            .filter(|s| matches!(s, items::PageSlot::Entry(_)))
            .count()
    );
    let mut next: u64 = sk.parse().expect("a parsed page's key is a number");
    for slot in &parsed {
        if let items::PageSlot::Entry(entry) = slot {
            assert_eq!(entry.position, next, "entries and gaps are consecutive");
            assert!(entry.first_revision > 0);
        }
        assert!(slot.count() > 0);
        next = next
            .checked_add(slot.count())
            .expect("positions stay below u64::MAX");
    }
    if let (Some(AttributeValue::N(l)), Some(_)) = (item.get("l"), parsed.last()) {
        let l: u64 = l.parse().expect("a checked l is a number");
        assert_eq!(l, next - 1, "the page's last position");
    }
}
