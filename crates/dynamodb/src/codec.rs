//! The compact binary form of an append's events, and event-id fingerprints.
//!
//! One append's events are stored as one Binary attribute value (a "blob"),
//! so DynamoDB's per-attribute overhead is paid once per append, not once per
//! field of every event:
//!
//! ```text
//! blob   := created_at:i64 (µs, big endian) flags_count:u16 event*
//! event  := id:[u8;16] type_len type payload_len:u32 payload meta_len:u32 meta
//! ```
//!
//! `meta` is empty when the metadata is `{}`. The top bit of `flags_count`
//! ([`V2`]) says how `type_len` is written: set (every blob written now),
//! a LEB128 varint (one byte below 128 bytes, two up to the 800 bytes of a
//! 200-character type of 4-byte characters); clear (blobs of earlier
//! versions), one byte. The one-byte form could not hold a type over 255
//! bytes — such a type made its stream unreadable — so it is only read.

use sha2::{Digest, Sha256};

use eventstore_core::{
    EventId, EventType, JsonObject, JsonValue, NewEvent, RecordedEvent, Revision, StreamKey,
    Timestamp,
};

use crate::error::DynamoError;

/// Bytes of a blob's header.
pub const BLOB_HEADER: usize = 10;
/// The flag in a blob's count field that marks varint type lengths.
pub const V2: u16 = 0x8000;
/// Most events in one blob (the count field's other bits).
pub const MAX_COUNT: usize = (V2 - 1) as usize;
/// Most bytes of an event type: 200 characters of at most 4 bytes.
pub const MAX_TYPE_BYTES: usize = 200 * 4;

const _: () = assert!(
    MAX_TYPE_BYTES < 1 << 14,
    "a type length fits two varint bytes"
);
const _: () = assert!(
    eventstore_core::Limits::MAX_EVENTS_PER_APPEND <= MAX_COUNT,
    "an append's events fit one blob's count"
);
const _: () = assert!(
    eventstore_core::Limits::MAX_EVENT_DATA_BYTES <= u32::MAX as usize,
    "payload and metadata lengths fit u32"
);

/// Bytes of `n` as a LEB128 varint.
fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Size in bytes of one event inside a blob.
pub fn encoded_len(event: &NewEvent) -> usize {
    let meta = if event.metadata.get() == "{}" {
        0
    } else {
        event.metadata.len()
    };
    let t = event.event_type.as_str().len();
    16 + varint_len(t) + t + 4 + event.payload.len() + 4 + meta
}

/// Encodes events appended together at `created_at` into one blob.
///
/// Panics if there are more than [`MAX_COUNT`] events (an append has at
/// most [`Limits::MAX_EVENTS_PER_APPEND`](eventstore_core::Limits)).
pub fn encode(created_at: Timestamp, events: &[NewEvent]) -> Vec<u8> {
    assert!(events.len() <= MAX_COUNT, "too many events for one blob");
    let len = BLOB_HEADER + events.iter().map(encoded_len).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&created_at.as_micros().to_be_bytes());
    out.extend_from_slice(&(events.len() as u16 | V2).to_be_bytes());
    for e in events {
        out.extend_from_slice(e.event_id.as_uuid().as_bytes());
        let t = e.event_type.as_str().as_bytes();
        put_varint(&mut out, t.len());
        out.extend_from_slice(t);
        out.extend_from_slice(&(e.payload.len() as u32).to_be_bytes());
        out.extend_from_slice(e.payload.get().as_bytes());
        let meta = if e.metadata.get() == "{}" {
            ""
        } else {
            e.metadata.get()
        };
        out.extend_from_slice(&(meta.len() as u32).to_be_bytes());
        out.extend_from_slice(meta.as_bytes());
    }
    debug_assert_eq!(out.len(), len);
    out
}

/// An event decoded from a blob, before it is given its stream and revision.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Commit time of its append.
    pub created_at: Timestamp,
    /// Its id.
    pub event_id: EventId,
    /// Its type.
    pub event_type: EventType,
    /// Payload JSON text.
    pub payload: JsonValue,
    /// Metadata object.
    pub metadata: JsonObject,
}

impl StoredEvent {
    /// The event as the store answers it.
    pub fn into_recorded(self, stream: &StreamKey, revision: Revision) -> RecordedEvent {
        RecordedEvent {
            stream_id: stream.stream_id.clone(),
            stream_type: stream.stream_type.clone(),
            revision,
            event_type: self.event_type,
            payload: self.payload,
            created_at: self.created_at,
            event_id: self.event_id,
            metadata: self.metadata,
            position: None,
        }
    }
}

fn corrupt(what: &str) -> DynamoError {
    DynamoError::Corrupt(format!("event blob: {what}"))
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DynamoError> {
        if self.bytes.len() < n {
            return Err(corrupt("truncated"));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }
    fn u32(&mut self) -> Result<usize, DynamoError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize)
    }
    fn varint(&mut self) -> Result<usize, DynamoError> {
        let mut n = 0usize;
        for shift in [0, 7, 14] {
            let byte = self.take(1)?[0];
            n |= ((byte & 0x7f) as usize) << shift;
            if byte & 0x80 == 0 {
                return Ok(n);
            }
        }
        Err(corrupt("type length"))
    }
    fn text(&mut self, n: usize) -> Result<&'a str, DynamoError> {
        std::str::from_utf8(self.take(n)?).map_err(|_| corrupt("not UTF-8"))
    }
}

/// Number of events in a blob, read from its header.
pub fn count(blob: &[u8]) -> Result<u64, DynamoError> {
    if blob.len() < BLOB_HEADER {
        return Err(corrupt("no header"));
    }
    Ok(u64::from(u16::from_be_bytes([blob[8], blob[9]]) & !V2))
}

/// Decodes a blob.
pub fn decode(blob: &[u8]) -> Result<Vec<StoredEvent>, DynamoError> {
    let mut r = Reader { bytes: blob };
    let created =
        Timestamp::from_micros(i64::from_be_bytes(r.take(8)?.try_into().expect("8 bytes")));
    let flags_count = u16::from_be_bytes(r.take(2)?.try_into().expect("2 bytes"));
    let v2 = flags_count & V2 != 0;
    let n = (flags_count & !V2) as usize;
    let mut out = Vec::with_capacity(n.min(MAX_COUNT));
    for _ in 0..n {
        let id = uuid::Uuid::from_slice(r.take(16)?).map_err(|_| corrupt("event id"))?;
        let tl = if v2 {
            r.varint()?
        } else {
            r.take(1)?[0] as usize
        };
        let event_type = EventType::parse(r.text(tl)?).map_err(|_| corrupt("event type"))?;
        let pl = r.u32()?;
        let payload = JsonValue::from_text(r.text(pl)?).map_err(|_| corrupt("payload"))?;
        let ml = r.u32()?;
        let metadata = if ml == 0 {
            JsonObject::empty()
        } else {
            JsonObject::from_text(r.text(ml)?).map_err(|_| corrupt("metadata"))?
        };
        out.push(StoredEvent {
            created_at: created,
            event_id: EventId::from(id),
            event_type,
            payload,
            metadata,
        });
    }
    if !r.bytes.is_empty() {
        return Err(corrupt("trailing bytes"));
    }
    Ok(out)
}

/// The 4-byte fingerprint of an event id kept in the stream's tip, so a
/// condition expression can tell that a request's id may already be in the
/// stream. Collisions only cost a slower path (a read after the failed
/// write); they never decide anything.
pub fn fingerprint(id: &EventId) -> [u8; 4] {
    let digest = Sha256::digest(id.as_uuid().as_bytes());
    [digest[0], digest[1], digest[2], digest[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_round_trip() {
        let mut a = NewEvent::new(
            EventType::parse("ItemAdded").unwrap(),
            JsonValue::from_text(r#"{"sku":"A-1", "qty": 3}"#).unwrap(),
        );
        a.metadata = JsonObject::from_text(r#"{"by":"me"}"#).unwrap();
        let b = NewEvent::new(
            EventType::parse("x").unwrap(),
            JsonValue::from_text(r#""text""#).unwrap(),
        );
        let t = Timestamp::now();
        let blob = encode(t, &[a.clone(), b.clone()]);
        assert_eq!(blob.len(), BLOB_HEADER + encoded_len(&a) + encoded_len(&b));
        assert_eq!(count(&blob).unwrap(), 2);
        let back = decode(&blob).unwrap();
        assert_eq!(back[0].event_id, a.event_id);
        assert_eq!(back[0].payload.get(), a.payload.get());
        assert_eq!(back[0].metadata.get(), r#"{"by":"me"}"#);
        assert_eq!(back[1].metadata.get(), "{}");
        assert_eq!(back[1].created_at, t);
        assert!(decode(&blob[..blob.len() - 1]).is_err());
        assert!(decode(b"short").is_err());
    }

    /// A v1 blob (one-byte type lengths, no flag), as earlier versions
    /// wrote them, still decodes.
    #[test]
    fn blobs_of_the_first_format_still_decode() {
        let id = EventId::generate();
        let mut blob = 7i64.to_be_bytes().to_vec();
        blob.extend_from_slice(&1u16.to_be_bytes());
        blob.extend_from_slice(id.as_uuid().as_bytes());
        blob.push(3);
        blob.extend_from_slice(b"Abc");
        blob.extend_from_slice(&2u32.to_be_bytes());
        blob.extend_from_slice(b"{}");
        blob.extend_from_slice(&0u32.to_be_bytes());
        let back = decode(&blob).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].event_type.as_str(), "Abc");
        assert_eq!(back[0].event_id, id);
        assert_eq!(count(&blob).unwrap(), 1);
    }

    /// The case of issue 10: 86 × "✓" is 258 bytes, which the one-byte
    /// length stored as 2 and the stream could not be read any more.
    #[test]
    fn event_types_over_255_bytes_round_trip() {
        for t in [
            "✓".repeat(86),
            "𝄞".repeat(200),
            "é".repeat(200),
            "x".repeat(128),
        ] {
            let e = NewEvent::new(
                EventType::parse(t.clone()).unwrap(),
                JsonValue::from_text("1").unwrap(),
            );
            let blob = encode(Timestamp::from_micros(1), std::slice::from_ref(&e));
            assert_eq!(blob.len(), BLOB_HEADER + encoded_len(&e));
            let back = decode(&blob).unwrap();
            assert_eq!(back[0].event_type.as_str(), t);
        }
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// Characters of every UTF-8 width, 4-byte ones included.
        fn any_char() -> impl Strategy<Value = char> {
            prop_oneof![
                any::<char>(),
                prop::sample::select(vec!['✓', '𝄞', '😀', 'é', 'a', ' ', '"', '\\', '|', '#']),
            ]
            .prop_filter("no control characters", |c| !c.is_control())
        }

        /// Every valid event type: 1–200 characters (up to 800 bytes), no
        /// control characters, no leading or trailing space.
        fn event_type() -> impl Strategy<Value = EventType> {
            prop_oneof![
                prop::collection::vec(any_char(), 1..=200),
                // The maximum: 200 four-byte characters.
                Just(vec!['𝄞'; 200]),
                prop::collection::vec(prop::sample::select(vec!['✓', '😀']), 190..=200),
            ]
            .prop_map(|chars| {
                let s: String = chars.into_iter().collect();
                let s = s.trim();
                EventType::parse(if s.is_empty() { "x" } else { s }).expect("a valid event type")
            })
        }

        fn json_text(max_chars: usize) -> impl Strategy<Value = String> {
            prop::collection::vec(any_char(), 0..=max_chars).prop_map(|chars| {
                serde_json::to_string(&chars.into_iter().collect::<String>()).unwrap()
            })
        }

        /// A payload and metadata: small, or together at the 256 KiB limit.
        fn data() -> impl Strategy<Value = (String, Option<String>)> {
            prop_oneof![
                3 => (json_text(64), prop::option::of(json_text(32))),
                1 => (0usize..=64, any::<bool>()).prop_map(|(meta_chars, with_meta)| {
                    let meta = with_meta.then(|| format!(r#"{{"m":"{}"}}"#, "😀".repeat(meta_chars)));
                    let room = eventstore_core::Limits::MAX_EVENT_DATA_BYTES
                        - meta.as_ref().map_or(2, String::len); // `{}` counts
                    // A JSON string of 4-byte characters filling the rest.
                    let n = (room - 2) / 4;
                    let mut payload = format!("\"{}", "𝄞".repeat(n));
                    payload.push_str(&"x".repeat(room - 2 - 4 * n));
                    payload.push('"');
                    (payload, meta)
                }),
            ]
            .prop_map(|(payload, meta)| {
                let meta = meta.map(|m| {
                    if m.starts_with('{') { m } else { format!(r#"{{"k":{m}}}"#) }
                });
                (payload, meta)
            })
        }

        fn event() -> impl Strategy<Value = NewEvent> {
            (event_type(), data()).prop_map(|(t, (payload, meta))| {
                let mut e = NewEvent::new(t, JsonValue::from_text(payload).unwrap());
                if let Some(m) = meta {
                    e.metadata = JsonObject::from_text(m).unwrap();
                }
                assert!(e.data_len() <= eventstore_core::Limits::MAX_EVENT_DATA_BYTES);
                e
            })
        }

        fn events() -> impl Strategy<Value = Vec<NewEvent>> {
            prop_oneof![
                prop::collection::vec(event(), 1..=4),
                // The most events an append may hold.
                prop::collection::vec(
                    (event_type(), json_text(8))
                        .prop_map(|(t, p)| { NewEvent::new(t, JsonValue::from_text(p).unwrap()) }),
                    eventstore_core::Limits::MAX_EVENTS_PER_APPEND,
                ),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(48))]

            /// Every valid append round-trips through a blob.
            #[test]
            fn every_valid_append_round_trips(events in events(), at in any::<i64>()) {
                let created = Timestamp::from_micros(at);
                let blob = encode(created, &events);
                prop_assert_eq!(
                    blob.len(),
                    BLOB_HEADER + events.iter().map(encoded_len).sum::<usize>()
                );
                prop_assert_eq!(count(&blob).unwrap(), events.len() as u64);
                let back = decode(&blob).unwrap();
                prop_assert_eq!(back.len(), events.len());
                for (b, e) in back.iter().zip(&events) {
                    prop_assert_eq!(b.created_at, created);
                    prop_assert_eq!(b.event_id, e.event_id);
                    prop_assert_eq!(&b.event_type, &e.event_type);
                    prop_assert_eq!(b.payload.get(), e.payload.get());
                    prop_assert_eq!(b.metadata.get(), e.metadata.get());
                }
                // Any cut is an error, never a panic or another event.
                let cut = blob.len() / 2;
                prop_assert!(decode(&blob[..cut]).is_err());
            }
        }
    }
}
