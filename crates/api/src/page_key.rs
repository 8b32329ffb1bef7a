use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use eventstore_core::{StreamCursor, StreamId, StreamType, Timestamp};

/// A page key that cannot be decoded as a position in the listing it is
/// used with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid page key")]
pub struct PageKeyError;

/// The opaque `nextPageKey` of a type's stream listing. It names the
/// listing it belongs to, so a key from another type's listing is rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPageKey {
    /// The listing's stream type.
    pub stream_type: StreamType,
    /// Where the next page starts.
    pub cursor: StreamCursor,
}

const VERSION: &str = "s1";

impl StreamPageKey {
    /// The opaque text form.
    pub fn encode(&self) -> String {
        let raw = format!(
            "{VERSION}\n{}\n{}\n{}",
            self.stream_type,
            self.cursor.updated_at.as_micros(),
            self.cursor.stream_id
        );
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// Decodes a key and checks that it belongs to `stream_type`'s listing.
    pub fn decode(text: &str, stream_type: &StreamType) -> Result<StreamCursor, PageKeyError> {
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| PageKeyError)?;
        let raw = String::from_utf8(bytes).map_err(|_| PageKeyError)?;
        let mut parts = raw.split('\n');
        let (Some(VERSION), Some(t), Some(micros), Some(id), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(PageKeyError);
        };
        if t != stream_type.as_str() {
            return Err(PageKeyError);
        }
        let micros: i64 = micros.parse().map_err(|_| PageKeyError)?;
        // Every stream was updated after 1970: a key before it is not one
        // the server gave, on any backend (DynamoDB's sort key has no room
        // for it), so it is refused alike everywhere.
        if micros < 0 {
            return Err(PageKeyError);
        }
        Ok(StreamCursor {
            updated_at: Timestamp::from_micros(micros),
            stream_id: StreamId::parse(id).map_err(|_| PageKeyError)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_before_1970_is_refused() {
        let t = StreamType::parse("order").unwrap();
        for micros in [-1, i64::MIN] {
            let key = StreamPageKey {
                stream_type: t.clone(),
                cursor: StreamCursor {
                    updated_at: Timestamp::from_micros(micros),
                    stream_id: StreamId::parse("o-1").unwrap(),
                },
            };
            assert_eq!(StreamPageKey::decode(&key.encode(), &t), Err(PageKeyError));
        }
    }

    #[test]
    fn round_trips_and_is_bound_to_its_listing() {
        let t = StreamType::parse("order").unwrap();
        let key = StreamPageKey {
            stream_type: t.clone(),
            cursor: StreamCursor {
                updated_at: Timestamp::now(),
                stream_id: StreamId::parse("abc").unwrap(),
            },
        };
        let text = key.encode();
        assert_eq!(StreamPageKey::decode(&text, &t).unwrap(), key.cursor);
        assert!(StreamPageKey::decode(&text, &StreamType::parse("other").unwrap()).is_err());
        assert!(StreamPageKey::decode("garbage!", &t).is_err());
        assert!(StreamPageKey::decode("", &t).is_err());
        assert!(StreamPageKey::decode(&URL_SAFE_NO_PAD.encode("s1\norder\nx\nabc"), &t).is_err());
    }
}
