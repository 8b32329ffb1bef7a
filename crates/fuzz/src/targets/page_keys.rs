//! The opaque `next-page-key` of stream listings ([`StreamPageKey`]).
//!
//! An input is a stream type, a newline, and the key text. Checked,
//! besides "no panic": a key that decodes names a cursor that encodes to
//! a key decoding to the same cursor, and that no other type's listing
//! accepts; and a key built from the input's own fields (when they are
//! valid) decodes to them.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use eventstore_api::StreamPageKey;
use eventstore_core::{StreamCursor, StreamId, StreamType, Timestamp};

use crate::engine::Target;

/// The target.
pub const TARGET: Target = Target {
    name: "page_keys",
    seeds,
    dictionary: &[
        b"s1",
        b"czE",
        b"Cm9yZGVy",
        b"\n",
        b"=",
        b"-9223372036854775808",
        b"9223372036854775807",
        b"+1",
        b"_",
        b"-",
    ],
    fixup: None,
    check,
    default_iters: 20_000,
};

fn key(t: &str, micros: i64, id: &str) -> String {
    StreamPageKey {
        stream_type: StreamType::parse(t).expect("type"),
        cursor: StreamCursor {
            updated_at: Timestamp::from_micros(micros),
            stream_id: StreamId::parse(id).expect("id"),
        },
    }
    .encode()
}

fn seeds() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = [
        (
            "order",
            1_700_000_000_123_456,
            "019a0000-0000-7000-8000-000000000001",
        ),
        ("cart", 0, "s-1"),
        ("order", -1, "a@b:c.d_e-f"),
    ]
    .iter()
    .map(|(t, m, id)| format!("{t}\n{}", key(t, *m, id)).into_bytes())
    .collect();
    // The raw form, for the field check below.
    out.push(b"order\ns1\norder\n42\ns-9".to_vec());
    out
}

fn check(input: &[u8]) {
    let text = String::from_utf8_lossy(input);
    let (t, rest) = text.split_once('\n').unwrap_or(("order", &text));
    let stream_type =
        StreamType::parse(t).unwrap_or_else(|_| StreamType::parse("order").expect("type"));
    let prefix: String = stream_type.as_str().chars().take(90).collect();
    let other = StreamType::parse(format!("{prefix}x")).expect("another type");
    if let Ok(cursor) = StreamPageKey::decode(rest, &stream_type) {
        let again = StreamPageKey {
            stream_type: stream_type.clone(),
            cursor: cursor.clone(),
        }
        .encode();
        assert_eq!(
            StreamPageKey::decode(&again, &stream_type).expect("a re-encoded key decodes"),
            cursor
        );
        assert!(
            StreamPageKey::decode(rest, &other).is_err(),
            "another listing's key"
        );
    }
    // The input's fields as a key: `s1\nTYPE\nMICROS\nID` decodes to them.
    let mut parts = rest.split('\n');
    if let (Some("s1"), Some(t), Some(m), Some(id), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) && let (Ok(t), Ok(m), Ok(id)) =
        (StreamType::parse(t), m.parse::<i64>(), StreamId::parse(id))
    {
        let encoded = URL_SAFE_NO_PAD.encode(rest);
        if m < 0 {
            // No stream was updated before 1970: never a key the server gave.
            assert!(
                StreamPageKey::decode(&encoded, &t).is_err(),
                "a key before 1970 is refused"
            );
        } else {
            let cursor =
                StreamPageKey::decode(&encoded, &t).expect("a key of valid fields decodes");
            assert_eq!(cursor.updated_at, Timestamp::from_micros(m));
            assert_eq!(cursor.stream_id, id);
        }
    }
}
