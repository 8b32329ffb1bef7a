//! The compact binary form of an append's events, and event-id fingerprints.
//!
//! One append's events are stored as one Binary attribute value (a "blob"),
//! so DynamoDB's per-attribute overhead is paid once per append, not once per
//! field of every event:
//!
//! ```text
//! blob   := created_at:i64 (µs, big endian) count:u16 event*
//! event  := id:[u8;16] type_len:u8 type payload_len:u32 payload meta_len:u32 meta
//! ```
//!
//! `meta` is empty when the metadata is `{}`.

use sha2::{Digest, Sha256};

use eventstore_core::{
    EventId, EventType, JsonObject, JsonValue, NewEvent, RecordedEvent, Revision, StreamKey,
    Timestamp,
};

use crate::error::DynamoError;

/// Bytes of a blob's header.
pub const BLOB_HEADER: usize = 10;

/// Size in bytes of one event inside a blob.
pub fn encoded_len(event: &NewEvent) -> usize {
    let meta = if event.metadata.get() == "{}" {
        0
    } else {
        event.metadata.len()
    };
    16 + 1 + event.event_type.as_str().len() + 4 + event.payload.len() + 4 + meta
}

/// Encodes events appended together at `created_at` into one blob.
pub fn encode(created_at: Timestamp, events: &[NewEvent]) -> Vec<u8> {
    let len = BLOB_HEADER + events.iter().map(encoded_len).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&created_at.as_micros().to_be_bytes());
    out.extend_from_slice(&(events.len() as u16).to_be_bytes());
    for e in events {
        out.extend_from_slice(e.event_id.as_uuid().as_bytes());
        let t = e.event_type.as_str().as_bytes();
        out.push(t.len() as u8);
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
    fn text(&mut self, n: usize) -> Result<&'a str, DynamoError> {
        std::str::from_utf8(self.take(n)?).map_err(|_| corrupt("not UTF-8"))
    }
}

/// Number of events in a blob, read from its header.
pub fn count(blob: &[u8]) -> Result<u64, DynamoError> {
    if blob.len() < BLOB_HEADER {
        return Err(corrupt("no header"));
    }
    Ok(u16::from_be_bytes([blob[8], blob[9]]) as u64)
}

/// Decodes a blob.
pub fn decode(blob: &[u8]) -> Result<Vec<StoredEvent>, DynamoError> {
    let mut r = Reader { bytes: blob };
    let created =
        Timestamp::from_micros(i64::from_be_bytes(r.take(8)?.try_into().expect("8 bytes")));
    let n = u16::from_be_bytes(r.take(2)?.try_into().expect("2 bytes")) as usize;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let id = uuid::Uuid::from_slice(r.take(16)?).map_err(|_| corrupt("event id"))?;
        let tl = r.take(1)?[0] as usize;
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
}
