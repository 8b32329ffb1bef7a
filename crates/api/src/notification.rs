use serde::{Deserialize, Serialize};

use eventstore_core::{EventType, Position, Revision, StreamId, StreamType};

/// The message published after every committed append (SNS on AWS, live
/// subscribers locally). Revisions and the position are strings, as in the
/// original service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Notification {
    /// The stream's id.
    pub stream_id: StreamId,
    /// The stream's type.
    pub stream_type: StreamType,
    /// The stream's revision after the append.
    #[serde(with = "as_string")]
    pub stream_revision: Revision,
    /// Revision of the append's first event.
    #[serde(with = "as_string")]
    pub first_revision: Revision,
    /// The appended events' types, in order.
    pub event_types: Vec<EventType>,
    /// Feed position of the append's first event, when known.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_position"
    )]
    pub position: Option<Position>,
}

mod as_string {
    use eventstore_core::Revision;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(r: &Revision, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&r.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Revision, D::Error> {
        let s = String::deserialize(d)?;
        Revision::parse(&s).map_err(serde::de::Error::custom)
    }
}

mod opt_position {
    use eventstore_core::Position;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &Option<Position>, s: S) -> Result<S::Ok, S::Error> {
        match p {
            Some(p) => s.serialize_str(&p.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Position>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| Position::parse(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_shape_matches_the_original() {
        let n = Notification {
            stream_id: StreamId::parse("s-1").unwrap(),
            stream_type: StreamType::parse("order").unwrap(),
            stream_revision: Revision::new(18),
            first_revision: Revision::new(16),
            event_types: vec![EventType::parse("a").unwrap()],
            position: Some(Position::new(7)),
        };
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"StreamId":"s-1","StreamType":"order","StreamRevision":"18",
                "FirstRevision":"16","EventTypes":["a"],"Position":"7"})
        );
        assert_eq!(serde_json::from_value::<Notification>(v).unwrap(), n);
    }
}
