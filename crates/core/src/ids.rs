//! Validated identifiers and numbers.
//!
//! Every type here has private fields and one fallible constructor; serde
//! deserialization goes through that constructor, so an invalid value can
//! never be held.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why an identifier or number was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// A stream type that breaks the rules of [`StreamType`].
    #[error(
        "invalid stream type {0:?}: 1-100 characters of A-Z a-z 0-9 _ . -, the first one alphanumeric"
    )]
    StreamType(String),
    /// A stream id that breaks the rules of [`StreamId`].
    #[error("invalid stream id {0:?}: 1-128 characters of A-Z a-z 0-9 _ . - : @")]
    StreamId(String),
    /// An event type that breaks the rules of [`EventType`].
    #[error(
        "invalid event type {0:?}: 1-200 characters, no control characters, no leading or trailing space"
    )]
    EventType(String),
    /// An event id that is not a UUID.
    #[error("invalid event id {0:?}: expected a UUID")]
    EventId(String),
    /// A revision that is not a non-negative integer.
    #[error("invalid revision {0:?}: expected an integer >= 0")]
    Revision(String),
    /// A position that is not a non-negative integer.
    #[error("invalid position {0:?}: expected an integer >= 0")]
    Position(String),
}

macro_rules! string_newtype {
    ($(#[$meta:meta])* $name:ident, $check:ident, $err:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `value` and wraps it.
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                if $check(&value) {
                    Ok(Self(value))
                } else {
                    Err(IdError::$err(value))
                }
            }

            /// The validated string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(value: &str) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

fn valid_stream_type(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && s.len() <= 100
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn valid_stream_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':' | '@'))
}

fn valid_event_type(s: &str) -> bool {
    !s.is_empty() && s.chars().count() <= 200 && !s.chars().any(char::is_control) && s.trim() == s
}

string_newtype!(
    /// The type of a stream: 1–100 characters of `A-Z a-z 0-9 _ . -`, the
    /// first one alphanumeric.
    ///
    /// ```
    /// use eventstore_core::StreamType;
    /// assert!(StreamType::parse("order").is_ok());
    /// assert!(StreamType::parse("-order").is_err());
    /// ```
    StreamType,
    valid_stream_type,
    StreamType
);

string_newtype!(
    /// The id of a stream within its type: 1–128 characters of
    /// `A-Z a-z 0-9 _ . - : @`. Ids the server makes are UUIDv7 strings.
    ///
    /// ```
    /// use eventstore_core::StreamId;
    /// assert!(StreamId::parse("customer@example.com").is_ok());
    /// assert!(StreamId::parse("a/b").is_err());
    /// assert_eq!(StreamId::generate().as_str().len(), 36);
    /// ```
    StreamId,
    valid_stream_id,
    StreamId
);

string_newtype!(
    /// The type of an event: 1–200 characters, no control characters, no
    /// leading or trailing whitespace.
    EventType,
    valid_event_type,
    EventType
);

impl StreamId {
    /// A new time-ordered id (UUIDv7).
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }
}

/// A stream's identity: its type and its id. The same id under another type
/// is another stream.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamKey {
    /// The stream's type.
    pub stream_type: StreamType,
    /// The stream's id within the type.
    pub stream_id: StreamId,
}

impl StreamKey {
    /// Pairs a type and an id.
    pub fn new(stream_type: StreamType, stream_id: StreamId) -> Self {
        Self {
            stream_type,
            stream_id,
        }
    }
}

impl fmt::Display for StreamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.stream_type, self.stream_id)
    }
}

/// The unique id of an event, used for idempotent retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventId(uuid::Uuid);

impl EventId {
    /// A new random, time-ordered id (UUIDv7).
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7())
    }

    /// Parses a UUID in any of its usual text forms.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        uuid::Uuid::parse_str(value)
            .map(Self)
            .map_err(|_| IdError::EventId(value.to_owned()))
    }

    /// The UUID.
    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

impl From<uuid::Uuid> for EventId {
    fn from(value: uuid::Uuid) -> Self {
        Self(value)
    }
}

impl TryFrom<String> for EventId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        Self::parse(&value)
    }
}

impl FromStr for EventId {
    type Err = IdError;
    fn from_str(value: &str) -> Result<Self, IdError> {
        Self::parse(value)
    }
}

impl From<EventId> for String {
    fn from(value: EventId) -> String {
        value.0.to_string()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

macro_rules! number_newtype {
    ($(#[$meta:meta])* $name:ident, $err:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(u64);

        impl $name {
            /// Zero: before the first one.
            pub const ZERO: Self = Self(0);

            /// Wraps a number.
            pub const fn new(value: u64) -> Self {
                Self(value)
            }

            /// The number.
            pub const fn get(self) -> u64 {
                self.0
            }

            /// The number `n` after this one, or `None` on overflow.
            pub fn checked_add(self, n: u64) -> Option<Self> {
                self.0.checked_add(n).map(Self)
            }

            /// The next one.
            ///
            /// # Panics
            /// Never in practice: a store cannot hold 2^64 events.
            pub fn next(self) -> Self {
                Self(self.0.checked_add(1).expect("counter overflow"))
            }

            /// Parses a decimal number, as found in a path or query.
            pub fn parse(value: &str) -> Result<Self, IdError> {
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(IdError::$err(value.to_owned()));
                }
                value
                    .parse::<u64>()
                    .map(Self)
                    .map_err(|_| IdError::$err(value.to_owned()))
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(value: &str) -> Result<Self, IdError> {
                Self::parse(value)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

number_newtype!(
    /// A stream revision: the first event is revision 1, a stream that does
    /// not exist has revision 0. Revisions are gapless and never reused.
    Revision,
    Revision
);

impl Revision {
    /// Revision 1, a stream's first event.
    pub const FIRST: Self = Self(1);

    /// Revision 1 (for serde defaults).
    pub const fn first() -> Self {
        Self::FIRST
    }
}

number_newtype!(
    /// An event's place in the global feed: positive, strictly increasing in
    /// feed order; gaps are allowed. `Position::ZERO` means "before the
    /// first event".
    Position,
    Position
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn stream_type_rules() {
        assert!(StreamType::parse("a").is_ok());
        assert!(StreamType::parse("Order_v2.x-y").is_ok());
        assert!(StreamType::parse("a".repeat(100)).is_ok());
        assert!(StreamType::parse("a".repeat(101)).is_err());
        assert!(StreamType::parse("").is_err());
        assert!(StreamType::parse("_a").is_err());
        assert!(StreamType::parse("a b").is_err());
        assert!(StreamType::parse("a:b").is_err());
        assert!(StreamType::parse("é").is_err());
    }

    #[test]
    fn stream_id_rules() {
        assert!(StreamId::parse("x").is_ok());
        assert!(StreamId::parse("_:@.-").is_ok());
        assert!(StreamId::parse("a".repeat(128)).is_ok());
        assert!(StreamId::parse("a".repeat(129)).is_err());
        assert!(StreamId::parse("").is_err());
        assert!(StreamId::parse("a/b").is_err());
        assert!(StreamId::parse("a%20").is_err());
    }

    #[test]
    fn event_type_rules() {
        assert!(EventType::parse("order placed").is_ok());
        assert!(EventType::parse(" x").is_err());
        assert!(EventType::parse("x\n").is_err());
        assert!(EventType::parse("").is_err());
    }

    #[test]
    fn deserialization_goes_through_the_constructor() {
        assert!(serde_json::from_str::<StreamType>("\"-bad\"").is_err());
        assert!(serde_json::from_str::<StreamId>("\"a b\"").is_err());
        assert!(serde_json::from_str::<EventId>("\"nope\"").is_err());
        assert_eq!(
            serde_json::from_str::<StreamType>("\"ok\"")
                .unwrap()
                .as_str(),
            "ok"
        );
    }

    #[test]
    fn numbers_parse_strictly() {
        assert_eq!(Revision::parse("12").unwrap().get(), 12);
        assert!(Revision::parse("-1").is_err());
        assert!(Revision::parse("+1").is_err());
        assert!(Revision::parse("1.0").is_err());
        assert!(Revision::parse("").is_err());
        assert!(Revision::parse("99999999999999999999999").is_err());
        assert!(Position::parse(" 1").is_err());
    }

    proptest! {
        #[test]
        fn stream_type_accepts_exactly_the_documented_alphabet(s in "\\PC{0,120}") {
            let expected = !s.is_empty()
                && s.len() <= 100
                && s.chars().next().unwrap().is_ascii_alphanumeric()
                && s.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            prop_assert_eq!(StreamType::parse(s.clone()).is_ok(), expected);
        }

        #[test]
        fn stream_id_accepts_exactly_the_documented_alphabet(s in "[a-zA-Z0-9_.:@/ %-]{0,140}") {
            let expected = !s.is_empty()
                && s.len() <= 128
                && s.chars().all(|c| c.is_ascii_alphanumeric() || "_.-:@".contains(c));
            prop_assert_eq!(StreamId::parse(s.clone()).is_ok(), expected);
        }

        #[test]
        fn revision_round_trips_through_text(n in any::<u64>()) {
            prop_assert_eq!(Revision::parse(&n.to_string()).unwrap().get(), n);
        }
    }
}
