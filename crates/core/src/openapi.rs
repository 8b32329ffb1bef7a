//! OpenAPI schemas of the core types (feature `openapi`).
//!
//! The validated newtypes are described as the strings and integers they
//! are on the wire, with the same rules their constructors enforce, so the
//! published API document and the code cannot disagree.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::ids::{EventId, EventType, Position, Revision, StreamId, StreamType};
use crate::json::{JsonObject, JsonValue};
use crate::time::Timestamp;

fn string(description: &str, pattern: &str, max_length: usize, example: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .pattern(Some(pattern))
        .min_length(Some(1))
        .max_length(Some(max_length))
        .examples([example])
        .into()
}

fn counter(description: &str, minimum: u64, example: u64) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .description(Some(description))
        .minimum(Some(minimum as f64))
        .examples([example])
        .into()
}

macro_rules! schema {
    ($ty:ty, $body:expr) => {
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                $body
            }
        }
        impl ToSchema for $ty {}
    };
}

schema!(
    StreamType,
    string(
        "The type of a stream: 1-100 characters of A-Z a-z 0-9 _ . -, the first one alphanumeric.",
        r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$",
        100,
        "order"
    )
);

schema!(
    StreamId,
    string(
        "The id of a stream within its type: 1-128 characters of A-Z a-z 0-9 _ . - : @. Ids the server makes are UUIDv7 strings.",
        r"^[A-Za-z0-9_.:@\-]{1,128}$",
        128,
        "0195a3c4-7f5e-7b1a-9c1d-2e3f4a5b6c7d"
    )
);

/// The rule of [`EventType::parse`] as a regular expression (ECMA-262 and
/// Python `re` alike): no control character (`Cc`: U+0000-U+001F,
/// U+007F-U+009F) anywhere, and no Unicode white space (what
/// [`str::trim`] removes) at either end. The length (1-200 characters) is
/// in `minLength`/`maxLength`.
pub const EVENT_TYPE_PATTERN: &str = concat!(
    r"^[^\u0000-\u001f\u007f-\u009f \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]",
    r"(?:[^\u0000-\u001f\u007f-\u009f]{0,198}",
    r"[^\u0000-\u001f\u007f-\u009f \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?$",
);

schema!(
    EventType,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "The type of an event: 1-200 characters, no control characters, no leading or trailing whitespace."
        ))
        .pattern(Some(EVENT_TYPE_PATTERN))
        .min_length(Some(1))
        .max_length(Some(200))
        .examples(["order-placed"])
        .into()
);

schema!(
    EventId,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
        .description(Some(
            "The event's unique id (a UUID), the key of idempotent retries."
        ))
        .examples(["0195a3c4-7f5e-7b1a-9c1d-2e3f4a5b6c7e"])
        .into()
);

schema!(
    Revision,
    counter(
        "A stream revision: the first event is revision 1; a stream that does not exist has revision 0.",
        0,
        1
    )
);

schema!(
    Position,
    counter(
        "An event's place in the global feed: strictly increasing in feed order, gaps allowed; 0 is before the first event.",
        0,
        42
    )
);

schema!(
    Timestamp,
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .description(Some("RFC 3339, UTC, microsecond precision."))
        .examples(["2025-01-25T10:11:12.123456Z"])
        .into()
);

schema!(
    JsonValue,
    ObjectBuilder::new()
        .schema_type(SchemaType::AnyValue)
        .description(Some(
            "Any JSON value (object, string, number, ...), returned byte for byte as sent."
        ))
        .examples([serde_json::json!({"name": "test name"})])
        .into()
);

schema!(
    JsonObject,
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some("A JSON object, returned byte for byte as sent."))
        .examples([serde_json::json!({"correlationId": "abc"})])
        .into()
);
