//! Item keys and attribute helpers shared by the store and the relay.
//!
//! Every key is built here from validated values, so no request can make
//! the backend read or write outside the partition it names.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

use eventstore_core::{StreamKey, StreamType};

use crate::error::DynamoError;

/// An item as the SDK holds it.
pub type Item = HashMap<String, AttributeValue>;

/// Partition key attribute.
pub const PK: &str = "p";
/// Sort key attribute.
pub const SK: &str = "s";
/// Sort key of a stream's tip item.
pub const TIP_SK: &str = "tip";
/// Partition of the feed pages.
pub const FEED_PK: &str = "F";
/// Partition of the stream-type registry.
pub const TYPES_PK: &str = "T";
/// Partition of the relay's feed checkpoints (sort key: the shard): `q`
/// the last stream record of the shard in the feed, `a` the position of
/// the page that holds it.
pub const CHECKPOINT_PK: &str = "C";
/// Partition key prefix of the per-type feed index: one item per feed page
/// and stream type (sort key: the position of the type's first event on
/// the page), written with the page.
pub const TYPE_FEED_PREFIX: &str = "X#";

/// Partition key of a stream type's feed index.
pub fn type_feed_pk(stream_type: &StreamType) -> String {
    format!("{TYPE_FEED_PREFIX}{stream_type}")
}

/// Partition of the relay's announcement marks (sort key: the shard).
pub const ANNOUNCED_PK: &str = "A";

/// Partition key of a stream's items.
pub fn stream_pk(stream: &StreamKey) -> String {
    format!("S#{}#{}", stream.stream_type, stream.stream_id)
}

/// Sort-key prefix of a stream's append-id items: one per `any`/`exists`
/// append, keyed by a hash of its event ids, so that a retry of it is
/// recognised however many appends followed (promise 6).
pub const APPEND_ID_PREFIX: &str = "i#";

/// Sort key of the append-id item of an append with these event ids, in
/// order (digits never start with `i`, so chunk queries never meet it).
pub fn append_id_sk(ids: &[eventstore_core::EventId]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for id in ids {
        h.update(id.as_uuid().as_bytes());
    }
    let digest = h.finalize();
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{APPEND_ID_PREFIX}{hex}")
}

/// Partition key of a type's listing.
pub fn listing_pk(stream_type: &StreamType) -> String {
    format!("L#{stream_type}")
}

/// A number as a sort key that orders like the number (20 digits).
pub fn pad(n: u64) -> String {
    format!("{n:020}")
}

/// Sort key of a listing entry.
pub fn listing_sk(updated_micros: u64, stream_id: &str) -> String {
    format!("{}#{}", pad(updated_micros), stream_id)
}

/// `S` value.
pub fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// `N` value.
pub fn n(v: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// `B` value.
pub fn b(v: impl Into<Vec<u8>>) -> AttributeValue {
    AttributeValue::B(Blob::new(v.into()))
}

/// The key of an item.
pub fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([(PK.to_string(), s(pk)), (SK.to_string(), s(sk))])
}

/// Reads a number attribute (absent: `None`).
pub fn get_u64(item: &Item, name: &str) -> Result<Option<u64>, DynamoError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(v)) => v
            .parse()
            .map(Some)
            .map_err(|_| DynamoError::Corrupt(format!("attribute {name} is not a count"))),
        Some(_) => Err(DynamoError::Corrupt(format!(
            "attribute {name} is not a number"
        ))),
    }
}

/// Reads a number attribute that must be there.
pub fn req_u64(item: &Item, name: &str) -> Result<u64, DynamoError> {
    get_u64(item, name)?.ok_or_else(|| DynamoError::Corrupt(format!("attribute {name} missing")))
}

/// Reads a string attribute.
pub fn get_str<'a>(item: &'a Item, name: &str) -> Result<&'a str, DynamoError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(DynamoError::Corrupt(format!(
            "attribute {name} is not a string"
        ))),
    }
}

/// Reads a list of binaries (absent: empty).
pub fn get_blobs(item: &Item, name: &str) -> Result<Vec<Vec<u8>>, DynamoError> {
    match item.get(name) {
        None => Ok(Vec::new()),
        Some(AttributeValue::L(list)) => list
            .iter()
            .map(|v| match v {
                AttributeValue::B(blob) => Ok(blob.as_ref().to_vec()),
                _ => Err(DynamoError::Corrupt(format!("{name} holds a non-binary"))),
            })
            .collect(),
        Some(_) => Err(DynamoError::Corrupt(format!(
            "attribute {name} is not a list"
        ))),
    }
}

/// A list of binaries.
pub fn blob_list(blobs: impl IntoIterator<Item = Vec<u8>>) -> AttributeValue {
    AttributeValue::L(blobs.into_iter().map(b).collect())
}
