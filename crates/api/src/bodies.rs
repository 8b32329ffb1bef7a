use serde::{Deserialize, Serialize};

use eventstore_core::{
    EventId, EventType, Expectation, JsonObject, JsonValue, NewEvent, Position, RecordedEvent,
    Revision, StreamInfo, StreamType, Timestamp,
};

/// An event as a client sends it: `eventId` and `metadata` are optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = NewEvent))]
#[serde(rename_all = "camelCase")]
pub struct NewEventBody {
    /// The event's type.
    pub event_type: EventType,
    /// Any JSON value.
    pub payload: JsonValue,
    /// The event's id; the server makes one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<EventId>,
    /// A JSON object; `{}` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<JsonObject>,
}

impl NewEventBody {
    /// The event to store, with a fresh id when the client sent none.
    pub fn into_new_event(self) -> NewEvent {
        NewEvent {
            event_id: self.event_id.unwrap_or_else(EventId::generate),
            event_type: self.event_type,
            payload: self.payload,
            metadata: self.metadata.unwrap_or_else(JsonObject::empty),
        }
    }
}

impl From<NewEvent> for NewEventBody {
    fn from(e: NewEvent) -> Self {
        Self {
            event_type: e.event_type,
            payload: e.payload,
            event_id: Some(e.event_id),
            metadata: Some(e.metadata),
        }
    }
}

/// Body of `POST /streams/{streamType}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CreateStreamBody {
    /// The stream's first event.
    pub initial_event: NewEventBody,
}

/// Body of `PUT /streams/{streamType}/{streamId}/events/{streamRevision}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppendEventBody {
    /// The event to append.
    pub event: NewEventBody,
}

/// The `expectedRevision` of a batch append: an integer, `"no-stream"`,
/// `"exists"` or `"any"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedRevision(pub Expectation);

impl Serialize for ExpectedRevision {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Expectation::Exact(r) => s.serialize_u64(r.get()),
            Expectation::NoStream => s.serialize_str("no-stream"),
            Expectation::Exists => s.serialize_str("exists"),
            Expectation::Any => s.serialize_str("any"),
        }
    }
}

impl<'de> Deserialize<'de> for ExpectedRevision {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            // JSON has one number type: `3.0` is the integer 3 (as JSON
            // Schema's `integer` says), so an integral float is accepted.
            Float(f64),
            Text(String),
        }
        let expected = "an integer >= 0, \"no-stream\", \"exists\" or \"any\"";
        let invalid = || serde::de::Error::custom(format!("expectedRevision must be {expected}"));
        match Raw::deserialize(d).map_err(|_| invalid())? {
            Raw::Number(n) => Ok(Self(Expectation::Exact(Revision::new(n)))),
            // Below 2^64, so the cast is exact for every integral value.
            Raw::Float(f)
                if f.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&f) =>
            {
                Ok(Self(Expectation::Exact(Revision::new(f as u64))))
            }
            Raw::Float(_) => Err(invalid()),
            Raw::Text(t) => match t.as_str() {
                "no-stream" => Ok(Self(Expectation::NoStream)),
                "exists" => Ok(Self(Expectation::Exists)),
                "any" => Ok(Self(Expectation::Any)),
                other => Err(serde::de::Error::custom(format!(
                    "expectedRevision {other:?} is not {expected}"
                ))),
            },
        }
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ExpectedRevision {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type,
        };
        OneOfBuilder::new()
            .description(Some(
                "The stream's current revision (0: the stream must not exist yet), \"no-stream\", \"exists\" or \"any\".",
            ))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                    .minimum(Some(0.0)),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["no-stream", "exists", "any"])),
            )
            .examples([serde_json::json!(3)])
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ExpectedRevision {}

/// Body of `POST /streams/{streamType}/{streamId}/events` (batch append).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BatchAppendBody {
    /// What the stream's revision must be.
    pub expected_revision: ExpectedRevision,
    /// 1–100 events (more than 100: 413).
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 100))]
    pub events: Vec<NewEventBody>,
}

/// Body of `POST /streams/{streamType}/{streamId}/truncate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TruncateBody {
    /// The first revision to keep: every event below it is removed
    /// (1 to the stream's revision).
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = u64, minimum = 1, maximum = 9223372036854775807u64)
    )]
    #[serde(deserialize_with = "before_revision")]
    pub before_revision: Revision,
}

/// `beforeRevision`: an integer from 1 to 2^63 − 1 (an integral float such
/// as `3.0` is the integer 3, as JSON Schema's `integer` says). Out of range
/// is refused here, as a malformed body, before the stream is looked at.
fn before_revision<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Revision, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(u64),
        Float(f64),
    }
    let invalid = || {
        serde::de::Error::custom("beforeRevision must be an integer from 1 to 9223372036854775807")
    };
    let n = match Raw::deserialize(d).map_err(|_| invalid())? {
        Raw::Number(n) => n,
        // Below 2^63, so the cast is exact for every integral value.
        Raw::Float(f) if f.fract() == 0.0 && (1.0..9_223_372_036_854_775_808.0).contains(&f) => {
            f as u64
        }
        Raw::Float(_) => return Err(invalid()),
    };
    if n == 0 || n > i64::MAX as u64 {
        return Err(invalid());
    }
    Ok(Revision::new(n))
}

/// `{"stream": Stream}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StreamEnvelope {
    /// The stream.
    pub stream: StreamInfo,
}

/// Answer to a batch append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct BatchAppendResponse {
    /// The stream after the append.
    pub stream: StreamInfo,
    /// Revision of the first appended event.
    pub first_revision: Revision,
    /// Revision of the last appended event.
    pub last_revision: Revision,
}

/// A page of a type's streams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct StreamPage {
    /// Streams ordered by `updatedAt` ascending.
    pub streams: Vec<StreamInfo>,
    /// Whether there is a next page.
    pub has_more: bool,
    /// Opaque key of the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_page_key: Option<String>,
}

/// `{"streamPage": StreamPage}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct StreamPageEnvelope {
    /// The page.
    pub stream_page: StreamPage,
}

/// A page of one stream's events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    /// Events in the direction read.
    pub events: Vec<RecordedEvent>,
    /// Whether more events lie beyond.
    pub has_more: bool,
    /// Revision to continue from.
    pub last_evaluated_revision: Revision,
}

/// `{"eventPage": EventPage}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct EventPageEnvelope {
    /// The page.
    pub event_page: EventPage,
}

/// A page of a feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct FeedPage {
    /// Events in feed order.
    pub events: Vec<RecordedEvent>,
    /// Whether more events are already past this page.
    pub has_more: bool,
    /// Position to continue after.
    pub last_position: Position,
}

/// `{"eventPage": FeedPage}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct FeedPageEnvelope {
    /// The page.
    pub event_page: FeedPage,
}

/// A stream type and its number of streams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct StreamTypeEntry {
    /// The type.
    pub stream_type: StreamType,
    /// How many streams it has.
    pub streams: u64,
}

/// Answer of `GET /streams`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct StreamTypesResponse {
    /// Every type, ordered by name.
    pub stream_types: Vec<StreamTypeEntry>,
}

/// Answer of `GET /liveness-check`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = SystemStatus))]
pub struct Liveness {
    /// Always `"ok"`.
    pub status: String,
    /// The server's time.
    pub at: Timestamp,
}

/// Machine-readable error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// 400.
    BadRequest,
    /// 404.
    NotFound,
    /// 409, the expectation did not hold.
    WrongExpectedRevision,
    /// 409, an event id is already in the stream.
    DuplicateEvent,
    /// 413.
    PayloadTooLarge,
    /// 415.
    UnsupportedMediaType,
    /// 401.
    Unauthorized,
    /// 403: the key may not do this (deletion and truncation need an admin
    /// key when admin keys are configured).
    Forbidden,
    /// 410: the stream was deleted; its id is never used again.
    StreamDeleted,
    /// 405.
    MethodNotAllowed,
    /// 503.
    Unavailable,
    /// 500.
    Internal,
}

/// Every error body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable message.
    pub message: String,
    /// The request's id (also in the `x-request-id` header).
    pub request_id: String,
    /// Structured details (for 409: `expectedRevision`, `actualRevision`).
    #[serde(default)]
    pub details: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(json: &str) -> Result<Expectation, String> {
        serde_json::from_str::<ExpectedRevision>(json)
            .map(|e| e.0)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn expected_revision_accepts_every_json_integer() {
        let exact = |n| Ok(Expectation::Exact(Revision::new(n)));
        assert_eq!(expected("3"), exact(3));
        assert_eq!(expected("143.0"), exact(143));
        assert_eq!(expected("1e2"), exact(100));
        assert_eq!(expected("-0.0"), exact(0));
        assert_eq!(expected("0"), exact(0));
        assert_eq!(expected("18446744073709551615"), exact(u64::MAX));
        assert_eq!(expected("\"any\""), Ok(Expectation::Any));
        for bad in ["-1", "1.5", "-1.0", "1e20", "\"3\"", "null", "true", "[]"] {
            let err = expected(bad).unwrap_err();
            assert!(err.contains("expectedRevision"), "{bad}: {err}");
        }
    }
}
