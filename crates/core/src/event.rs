//! Events and streams as the store holds them.
//!
//! The serde forms here are the JSON shapes of the HTTP API (camelCase), so
//! the server, the client and the backends share one definition.

use serde::{Deserialize, Serialize};

use crate::ids::{EventId, EventType, Position, Revision, StreamId, StreamKey, StreamType};
use crate::json::{JsonObject, JsonValue};
use crate::time::Timestamp;

/// An event to append. Its id is always set: the front end assigns a fresh
/// one when the client sent none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The event's id, unique within its stream; the key of idempotent retries.
    pub event_id: EventId,
    /// The event's type.
    pub event_type: EventType,
    /// Any JSON value, kept byte for byte.
    pub payload: JsonValue,
    /// A JSON object (`{}` when the client sent none).
    pub metadata: JsonObject,
}

impl NewEvent {
    /// An event with a fresh id and empty metadata.
    pub fn new(event_type: EventType, payload: JsonValue) -> Self {
        Self {
            event_id: EventId::generate(),
            event_type,
            payload,
            metadata: JsonObject::empty(),
        }
    }

    /// Bytes of payload plus metadata JSON, the figure the size limit applies to.
    pub fn data_len(&self) -> usize {
        self.payload.len() + self.metadata.len()
    }
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Event))]
#[serde(rename_all = "camelCase")]
pub struct RecordedEvent {
    /// The stream's id.
    pub stream_id: StreamId,
    /// The stream's type.
    pub stream_type: StreamType,
    /// The event's revision within its stream (1-based, gapless).
    pub revision: Revision,
    /// The event's type.
    pub event_type: EventType,
    /// The payload, unchanged.
    pub payload: JsonValue,
    /// When the event was committed.
    pub created_at: Timestamp,
    /// The event's id.
    pub event_id: EventId,
    /// The metadata object.
    pub metadata: JsonObject,
    /// The event's place in the global feed; absent where a backend assigns
    /// positions asynchronously and has not reached this event yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
}

impl RecordedEvent {
    /// The stream this event belongs to.
    pub fn stream_key(&self) -> StreamKey {
        StreamKey::new(self.stream_type.clone(), self.stream_id.clone())
    }
}

/// A stream's summary: identity, current revision, times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Stream))]
#[serde(rename_all = "camelCase")]
pub struct StreamInfo {
    /// The stream's id.
    pub stream_id: StreamId,
    /// The stream's type.
    pub stream_type: StreamType,
    /// The stream's current revision (the number of events appended to it).
    pub revision: Revision,
    /// The first revision a read returns: 1, or the `beforeRevision` of the
    /// stream's latest truncation.
    #[serde(default = "Revision::first")]
    pub first_revision: Revision,
    /// When the last event was committed.
    pub updated_at: Timestamp,
    /// When the first event was committed.
    pub created_at: Timestamp,
}

impl StreamInfo {
    /// The stream's identity.
    pub fn key(&self) -> StreamKey {
        StreamKey::new(self.stream_type.clone(), self.stream_id.clone())
    }
}
