//! Item keys and attribute helpers shared by the store and the relay.
//!
//! Every key is built here from validated values, so no request can make
//! the backend read or write outside the partition it names.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

use eventstore_core::{StreamId, StreamKey, StreamType};

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

/// Partition key prefix of a stream's items (`S#{type}#{id}`).
pub const STREAM_PREFIX: &str = "S#";

/// Partition key of a stream's items.
pub fn stream_pk(stream: &StreamKey) -> String {
    format!("{STREAM_PREFIX}{}#{}", stream.stream_type, stream.stream_id)
}

/// The stream a partition key names: `Ok(None)` for a partition of
/// another kind, an error for a stream key that does not parse.
pub fn parse_stream_pk(pk: &str) -> Result<Option<StreamKey>, DynamoError> {
    let Some(rest) = pk.strip_prefix(STREAM_PREFIX) else {
        return Ok(None);
    };
    let Some((t, id)) = rest.split_once('#') else {
        return Err(DynamoError::Corrupt(format!("stream key {pk}")));
    };
    Ok(Some(StreamKey::new(
        StreamType::parse(t).map_err(|e| DynamoError::Corrupt(e.to_string()))?,
        StreamId::parse(id).map_err(|e| DynamoError::Corrupt(e.to_string()))?,
    )))
}

/// Key conditions and conditions on the key attributes, spelled with
/// [`PK`] and [`SK`] (checked by a test). Placeholders: `:p` the
/// partition, `:s` a sort key, `:lo` and `:hi` a range of sort keys.
pub mod cond {
    /// The whole partition `:p`.
    pub const PARTITION: &str = "p = :p";
    /// Partition `:p`, sort keys up to `:s`.
    pub const SORT_AT_MOST: &str = "p = :p AND s <= :s";
    /// Partition `:p`, sort keys after `:s`.
    pub const SORT_AFTER: &str = "p = :p AND s > :s";
    /// Partition `:p`, sort keys after `:lo`.
    pub const SORT_AFTER_LO: &str = "p = :p AND s > :lo";
    /// Partition `:p`, sort keys from `:lo` to `:hi`.
    pub const SORT_BETWEEN: &str = "p = :p AND s BETWEEN :lo AND :hi";
    /// The item does not exist (a `Put` that creates).
    pub const ABSENT: &str = "attribute_not_exists(p)";
    /// The item exists (an update that must not create it).
    pub const PRESENT: &str = "attribute_exists(p)";
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

/// Sort-key prefix of the append-id items of streams whose appends are
/// items of their own (see [`AppendItem`]): `#` sorts before the digits
/// of revisions, so a query of the partition's newest key up to
/// [`TIP_SK`] meets the stream's head, never one of these.
pub const CLAIM_PREFIX: &str = "#";

/// Sort key of an append-id item, for a stream of tip format (`i#…`) or
/// of append items (`#…`): the first 16 bytes of SHA-256 over the ids.
pub fn id_sk(per_append: bool, ids: &[eventstore_core::EventId]) -> String {
    let sk = append_id_sk(ids);
    match sk.strip_prefix(APPEND_ID_PREFIX) {
        Some(hash) if per_append => format!("{CLAIM_PREFIX}{hash}"),
        _ => sk,
    }
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

/// Attribute names, one module per item kind. Names are one letter: every
/// byte of an attribute name is paid on every write of the item. Only this
/// module spells them; expressions name them through these constants.
pub mod attr {
    /// A stream's tip item (`S#{type}#{id}` / `tip`).
    pub mod tip {
        /// The stream's revision.
        pub const REVISION: &str = "r";
        /// The revision before the tip's first event.
        pub const BASE: &str = "b";
        /// createdAt, µs.
        pub const CREATED: &str = "c";
        /// updatedAt, µs.
        pub const UPDATED: &str = "u";
        /// The previous updatedAt (the listing entry to delete).
        pub const PREVIOUS_UPDATE: &str = "v";
        /// Events in the last append.
        pub const LAST_COUNT: &str = "n";
        /// Event blobs, one per append.
        pub const EVENTS: &str = "e";
        /// Bytes in [`EVENTS`].
        pub const EVENT_BYTES: &str = "z";
        /// 4-byte fingerprints of recent event ids.
        pub const FINGERPRINTS: &str = "x";
        /// The first revision reads return (set by a truncation; absent: 1).
        pub const FIRST: &str = "f";
        /// Set when the stream is deleted: the deletion's time, µs (the
        /// tip is then a tombstone: revision, times, no events).
        pub const DELETED: &str = "d";
    }
    /// An append item (`S#{type}#{id}` / first revision): one append's
    /// events, written once with `attribute_not_exists` (the append's
    /// commit point), or a deletion's tombstone at the revision after the
    /// last. Its [`chunk`] attributes hold the events; a truncation may
    /// write its kept events again under a later key, without [`append::COUNT`].
    pub mod append {
        /// The append's event count, on the last item of an append only
        /// (most appends are one item): what marks the item as an append
        /// to the relay (append-id items have a count `k`; this is the
        /// tip's name for the last append's count). A tombstone has 1.
        pub const COUNT: &str = "n";
        /// The stream's createdAt, µs.
        pub const CREATED: &str = "c";
        /// The commit time, µs (the stream's updatedAt from then on).
        pub const UPDATED: &str = "u";
        /// The stream's updatedAt before this append (the listing entry
        /// to delete; absent on the first).
        pub const PREVIOUS_UPDATE: &str = "v";
        /// 4-byte fingerprints of the stream's last event ids (at least
        /// [`crate::append::ID_WINDOW`] and the whole append), one binary.
        pub const FINGERPRINTS: &str = "x";
        /// The stream's first kept revision as the writer knew it (absent:
        /// 1).
        pub const FIRST: &str = "f";
        /// On a tombstone: the deletion's time, µs.
        pub const DELETED: &str = "d";
    }
    /// A chunk item (`S#{type}#{id}` / first revision).
    pub mod chunk {
        /// Last revision.
        pub const LAST: &str = "l";
        /// Event blobs.
        pub const EVENTS: &str = "e";
    }
    /// An append-id item (`S#{type}#{id}` / `i#` + hash).
    pub mod append_id {
        /// First revision.
        pub const FIRST: &str = "f";
        /// Event count.
        pub const COUNT: &str = "k";
    }
    /// A feed page (`F` / first position).
    pub mod page {
        /// Last position.
        pub const LAST: &str = "l";
        /// Entries `type|id|firstRevision|count`, and gaps `count` where
        /// a deletion or truncation removed entries.
        pub const ENTRIES: &str = "g";
        /// The shard (or replay label) that wrote it.
        pub const SHARD: &str = "h";
        /// The last stream sequence number it covers.
        pub const COVERS: &str = "q";
        /// Written at, µs.
        pub const WRITTEN: &str = "w";
        /// How many times a cleanup rewrote `g` (absent: never); the
        /// condition of the next rewrite.
        pub const VERSION: &str = "y";
    }
    /// A type feed index item (`X#{type}` / first position).
    pub mod type_feed {
        /// Last position.
        pub const LAST: &str = "l";
        /// Entries `id|firstRevision|count|position`.
        pub const ENTRIES: &str = "g";
        /// Written at, µs (the page's time; absent on items written
        /// before it was kept).
        pub const WRITTEN: &str = "w";
        /// How many times a cleanup rewrote `g` (absent: never).
        pub const VERSION: &str = "y";
    }
    /// A listing entry (`L#{type}` / `{updatedAt}#{id}`).
    pub mod listing {
        /// Stream id.
        pub const STREAM_ID: &str = "i";
        /// Revision.
        pub const REVISION: &str = "r";
        /// createdAt, µs.
        pub const CREATED: &str = "c";
        /// updatedAt, µs.
        pub const UPDATED: &str = "u";
        /// The first revision reads return (absent: 1).
        pub const FIRST: &str = "f";
    }
    /// A feed checkpoint (`C` / shard).
    pub mod checkpoint {
        /// The last stream sequence number in the feed.
        pub const SEQUENCE: &str = "q";
        /// Position of the page holding it.
        pub const PAGE: &str = "a";
    }
    /// An announcement mark (`A` / shard).
    pub mod mark {
        /// The last sequence number whose appends were announced.
        pub const SEQUENCE: &str = "q";
        /// The same, zero-padded to 48 digits (for the condition).
        pub const SEQUENCE_KEY: &str = "k";
        /// Written at, µs.
        pub const WRITTEN: &str = "w";
    }
}

/// The stream's tip item, as read.
#[derive(Debug, Clone, Default)]
pub struct Tip {
    /// The stream's revision.
    pub revision: u64,
    /// The revision before the tip's first event.
    pub base: u64,
    /// createdAt, µs.
    pub created: i64,
    /// updatedAt, µs.
    pub updated: i64,
    /// Event blobs, one per append.
    pub blobs: Vec<Vec<u8>>,
    /// Fingerprints of recent event ids.
    pub fingerprints: Vec<Vec<u8>>,
    /// The first revision reads return, as stored (`None`: never
    /// truncated, reads start at 1).
    pub first: Option<u64>,
    /// The deletion's time (µs) once the stream is deleted.
    pub deleted: Option<i64>,
    /// The stream's appends are items of their own ([`AppendItem`]): this
    /// tip is not an item but what the stream's newest item and its meta
    /// item say (no events of its own: `base == revision`).
    pub per_append: bool,
}

impl Tip {
    /// Reads a tip item (`None`: no revision, no stream).
    pub fn from_item(item: &Item) -> Result<Option<Self>, DynamoError> {
        use attr::tip::*;
        let Some(revision) = get_u64(item, REVISION)? else {
            return Ok(None);
        };
        Ok(Some(Self {
            revision,
            base: get_u64(item, BASE)?.unwrap_or(0),
            created: get_u64(item, CREATED)?.unwrap_or(0) as i64,
            updated: get_u64(item, UPDATED)?.unwrap_or(0) as i64,
            blobs: get_blobs(item, EVENTS)?,
            fingerprints: get_blobs(item, FINGERPRINTS)?,
            first: get_u64(item, FIRST)?,
            deleted: get_u64(item, DELETED)?.map(|d| d as i64),
            per_append: false,
        }))
    }

    /// The first revision reads return.
    pub fn first_kept(&self) -> u64 {
        self.first.unwrap_or(1).max(1)
    }

    /// The whole tip item of `stream`, for a `Put`: this tip, after an
    /// append of `last_count` events at `updated`, whose previous update was
    /// `previous_update`.
    pub fn to_item(&self, stream: &StreamKey, previous_update: i64, last_count: u64) -> Item {
        use attr::tip::*;
        let mut item = key(stream_pk(stream), TIP_SK);
        item.insert(REVISION.into(), n(self.revision));
        item.insert(BASE.into(), n(self.base));
        item.insert(CREATED.into(), n(self.created));
        item.insert(UPDATED.into(), n(self.updated));
        item.insert(PREVIOUS_UPDATE.into(), n(previous_update));
        item.insert(LAST_COUNT.into(), n(last_count));
        let bytes: usize = self.blobs.iter().map(Vec::len).sum();
        item.insert(EVENTS.into(), blob_list(self.blobs.iter().cloned()));
        item.insert(EVENT_BYTES.into(), n(bytes));
        item.insert(
            FINGERPRINTS.into(),
            blob_list(self.fingerprints.iter().cloned()),
        );
        if let Some(f) = self.first {
            item.insert(FIRST.into(), n(f));
        }
        if let Some(d) = self.deleted {
            item.insert(DELETED.into(), n(d));
        }
        item
    }
}

/// A chunk item: events `first ..= last` of a stream, immutable.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// First revision (the sort key).
    pub first: u64,
    /// Last revision.
    pub last: u64,
    /// Event blobs.
    pub blobs: Vec<Vec<u8>>,
}

impl Chunk {
    /// The item of `stream`.
    pub fn to_item(&self, stream: &StreamKey) -> Item {
        let mut item = key(stream_pk(stream), pad(self.first));
        item.insert(attr::chunk::LAST.into(), n(self.last));
        item.insert(
            attr::chunk::EVENTS.into(),
            blob_list(self.blobs.iter().cloned()),
        );
        item
    }

    /// Reads a chunk item.
    pub fn from_item(item: &Item) -> Result<Self, DynamoError> {
        let sk = get_str(item, SK)?;
        let first: u64 = sk
            .parse()
            .ok()
            .filter(|f| *f > 0)
            .ok_or_else(|| DynamoError::Corrupt(format!("chunk key {sk}")))?;
        Ok(Self {
            first,
            last: get_u64(item, attr::chunk::LAST)?.unwrap_or(0),
            blobs: get_blobs(item, attr::chunk::EVENTS)?,
        })
    }
}

/// The meta item of a stream of append items (`S#{type}#{id}` / `tip`,
/// without a revision): written only by a truncation (its bound, and the
/// stream's times for the relay) and by a deletion (its time, after the
/// tombstone). Its attributes are the tip's names for the same things.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    /// The first kept revision (absent: 1).
    pub first: Option<u64>,
    /// The deletion's time, µs.
    pub deleted: Option<i64>,
    /// createdAt, µs (0: not written).
    pub created: i64,
    /// updatedAt when the truncation was made, µs (0: not written).
    pub updated: i64,
}

impl Meta {
    /// Reads a meta item; `None` for a tip item (it has a revision).
    pub fn from_item(item: &Item) -> Result<Option<Self>, DynamoError> {
        use attr::tip::*;
        if item.contains_key(REVISION) {
            return Ok(None);
        }
        Ok(Some(Self {
            first: get_u64(item, FIRST)?,
            deleted: get_u64(item, DELETED)?.map(|d| d as i64),
            created: get_u64(item, CREATED)?.unwrap_or(0) as i64,
            updated: get_u64(item, UPDATED)?.unwrap_or(0) as i64,
        }))
    }
}

/// An append item: one append's events (`first ..= last`), or the
/// deletion's tombstone at the revision after the stream's last. Written
/// once, with `attribute_not_exists`: the item at a revision is the one
/// append that took it, so the stream's revisions are its items' keys,
/// without gap or overlap.
#[derive(Debug, Clone, Default)]
pub struct AppendItem {
    /// First revision (the sort key).
    pub first: u64,
    /// Last revision (a tombstone: its own key).
    pub last: u64,
    /// Event blobs (a tombstone, or a truncated head: none).
    pub blobs: Vec<Vec<u8>>,
    /// The append's event count, on its last item (the relay's mark).
    pub count: Option<u64>,
    /// The stream's createdAt, µs.
    pub created: i64,
    /// The commit time, µs.
    pub updated: i64,
    /// The stream's updatedAt before it (0: none).
    pub previous_update: i64,
    /// Fingerprints of the stream's last event ids, 4 bytes each, in
    /// revision order, ending at `last`.
    pub fingerprints: Vec<u8>,
    /// The first kept revision the writer knew (absent: 1).
    pub first_kept: Option<u64>,
    /// A tombstone: the deletion's time, µs.
    pub deleted: Option<i64>,
}

impl AppendItem {
    /// The item of `stream`.
    pub fn to_item(&self, stream: &StreamKey) -> Item {
        use attr::append::*;
        let mut item = key(stream_pk(stream), pad(self.first));
        item.insert(attr::chunk::LAST.into(), n(self.last));
        if !self.blobs.is_empty() {
            item.insert(
                attr::chunk::EVENTS.into(),
                blob_list(self.blobs.iter().cloned()),
            );
        }
        if let Some(k) = self.count {
            item.insert(COUNT.into(), n(k));
        }
        item.insert(CREATED.into(), n(self.created));
        item.insert(UPDATED.into(), n(self.updated));
        if self.previous_update > 0 {
            item.insert(PREVIOUS_UPDATE.into(), n(self.previous_update));
        }
        if !self.fingerprints.is_empty() {
            item.insert(FINGERPRINTS.into(), b(self.fingerprints.clone()));
        }
        if let Some(f) = self.first_kept.filter(|f| *f > 1) {
            item.insert(FIRST.into(), n(f));
        }
        if let Some(d) = self.deleted {
            item.insert(DELETED.into(), n(d));
        }
        item
    }

    /// Reads an append item; `None` for a chunk of a tip-format stream
    /// (it has no commit time).
    pub fn from_item(item: &Item) -> Result<Option<Self>, DynamoError> {
        use attr::append::*;
        let Some(updated) = get_u64(item, UPDATED)? else {
            return Ok(None);
        };
        let chunk = Chunk::from_item(item)?;
        let fingerprints = match item.get(FINGERPRINTS) {
            None => Vec::new(),
            Some(AttributeValue::B(v)) if v.as_ref().len() % 4 == 0 => v.as_ref().to_vec(),
            Some(_) => {
                return Err(DynamoError::Corrupt("append item: fingerprints".into()));
            }
        };
        let deleted = get_u64(item, DELETED)?.map(|d| d as i64);
        if deleted.is_none() && chunk.last < chunk.first {
            return Err(DynamoError::Corrupt(format!(
                "append item {}: ends at {}",
                chunk.first, chunk.last
            )));
        }
        Ok(Some(Self {
            first: chunk.first,
            last: chunk.last,
            blobs: chunk.blobs,
            count: get_u64(item, COUNT)?,
            created: get_u64(item, CREATED)?.unwrap_or(0) as i64,
            updated: updated as i64,
            previous_update: get_u64(item, PREVIOUS_UPDATE)?.unwrap_or(0) as i64,
            fingerprints,
            first_kept: get_u64(item, FIRST)?,
            deleted,
        }))
    }

    /// The stream's state when this is its newest item and `meta` its
    /// meta item.
    pub fn head_tip(&self, meta: Option<&Meta>) -> Tip {
        let revision = match self.deleted {
            Some(_) => self.first - 1,
            None => self.last,
        };
        let first = [self.first_kept, meta.and_then(|m| m.first)]
            .into_iter()
            .flatten()
            .max();
        Tip {
            revision,
            base: revision,
            created: self.created,
            updated: self.updated,
            blobs: Vec::new(),
            fingerprints: self.fingerprints.chunks(4).map(<[u8]>::to_vec).collect(),
            first,
            deleted: self.deleted.or(meta.and_then(|m| m.deleted)),
            per_append: true,
        }
    }
}

/// An append-id item: the append with these event ids is stored at
/// revisions `first ..= first + count - 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendId {
    /// First revision.
    pub first: u64,
    /// Event count.
    pub count: u64,
}

impl AppendId {
    /// The item of the append of `ids` in `stream` (of tip format).
    pub fn to_item(self, stream: &StreamKey, ids: &[eventstore_core::EventId]) -> Item {
        self.to_item_of(false, stream, ids)
    }

    /// The item of the append of `ids` in `stream`, of either format.
    pub fn to_item_of(
        self,
        per_append: bool,
        stream: &StreamKey,
        ids: &[eventstore_core::EventId],
    ) -> Item {
        let mut item = key(stream_pk(stream), id_sk(per_append, ids));
        item.insert(attr::append_id::FIRST.into(), n(self.first));
        item.insert(attr::append_id::COUNT.into(), n(self.count));
        item
    }

    /// Reads an append-id item.
    pub fn from_item(item: &Item) -> Result<Self, DynamoError> {
        let first = req_u64(item, attr::append_id::FIRST)?;
        let count = req_u64(item, attr::append_id::COUNT)?;
        if first == 0 || count == 0 || first.checked_add(count).is_none() {
            return Err(DynamoError::Corrupt("append-id item".into()));
        }
        Ok(Self { first, count })
    }

    /// The last revision.
    pub fn last(&self) -> u64 {
        self.first + self.count - 1
    }
}

/// A listing entry: a stream of the type, at its last update.
#[derive(Debug, Clone)]
pub struct Listing {
    /// The stream id.
    pub stream_id: String,
    /// Its revision.
    pub revision: u64,
    /// createdAt, µs.
    pub created: i64,
    /// updatedAt, µs (part of the sort key).
    pub updated: u64,
    /// The first revision reads return (absent: 1).
    pub first: Option<u64>,
}

impl Listing {
    /// The entry's item in the listing of `stream_type`.
    pub fn to_item(&self, stream_type: &StreamType) -> Item {
        use attr::listing::*;
        let mut item = key(
            listing_pk(stream_type),
            listing_sk(self.updated, &self.stream_id),
        );
        item.insert(STREAM_ID.into(), s(&self.stream_id));
        item.insert(REVISION.into(), n(self.revision));
        item.insert(CREATED.into(), n(self.created));
        item.insert(UPDATED.into(), n(self.updated));
        if let Some(f) = self.first {
            item.insert(FIRST.into(), n(f));
        }
        item
    }

    /// Reads a listing entry.
    pub fn from_item(item: &Item) -> Result<Self, DynamoError> {
        use attr::listing::*;
        Ok(Self {
            stream_id: get_str(item, STREAM_ID)?.to_string(),
            revision: req_u64(item, REVISION)?,
            created: req_u64(item, CREATED)? as i64,
            updated: req_u64(item, UPDATED)?,
            first: get_u64(item, FIRST)?,
        })
    }
}

/// One append as the feed lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    /// The stream.
    pub stream: StreamKey,
    /// Revision of the append's first event.
    pub first_revision: u64,
    /// Number of events.
    pub count: u64,
    /// Position of the first event.
    pub position: u64,
}

/// One slot of a feed page: an append's entry, or a gap of positions whose
/// entries were removed (a deleted stream's appends, a truncated range),
/// stored as the bare count so the positions after it do not move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageSlot {
    /// An append's entry (`type|id|firstRevision|count`).
    Entry(FeedEntry),
    /// `count` positions without an entry (`count`).
    Gap(u64),
}

impl PageSlot {
    /// The number of positions the slot takes.
    pub fn count(&self) -> u64 {
        match self {
            PageSlot::Entry(e) => e.count,
            PageSlot::Gap(k) => *k,
        }
    }

    /// The slot as a feed page stores it.
    pub fn to_text(&self) -> String {
        match self {
            PageSlot::Entry(e) => format!(
                "{}|{}|{}|{}",
                e.stream.stream_type, e.stream.stream_id, e.first_revision, e.count
            ),
            PageSlot::Gap(k) => k.to_string(),
        }
    }
}

/// Parses a feed page item into its entries with positions.
pub fn parse_page(page: &Item) -> Result<Vec<FeedEntry>, DynamoError> {
    Ok(page_slots(page)?
        .into_iter()
        .filter_map(|slot| match slot {
            PageSlot::Entry(e) => Some(e),
            PageSlot::Gap(_) => None,
        })
        .collect())
}

/// Parses a feed page item into its slots, entries with positions and gaps.
pub fn page_slots(page: &Item) -> Result<Vec<PageSlot>, DynamoError> {
    let sk = get_str(page, SK)?;
    let mut position: u64 = sk
        .parse()
        .map_err(|_| DynamoError::Corrupt(format!("feed page key {sk}")))?;
    let Some(AttributeValue::L(list)) = page.get(attr::page::ENTRIES) else {
        return Err(DynamoError::Corrupt("feed page without entries".into()));
    };
    let mut out = Vec::with_capacity(list.len());
    for v in list {
        let AttributeValue::S(text) = v else {
            return Err(DynamoError::Corrupt("feed entry is not a string".into()));
        };
        let bad = || DynamoError::Corrupt(format!("feed entry {text}"));
        if !text.contains('|') {
            // A gap: digits only, at least one position.
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let count: u64 = text.parse().map_err(|_| bad())?;
            if count == 0 || position.checked_add(count).is_none() {
                return Err(bad());
            }
            out.push(PageSlot::Gap(count));
            position += count;
            continue;
        }
        let mut parts = text.split('|');
        let (Some(t), Some(id), Some(first), Some(count), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad());
        };
        let stream = StreamKey::new(
            StreamType::parse(t).map_err(|_| bad())?,
            StreamId::parse(id).map_err(|_| bad())?,
        );
        let first_revision: u64 = first.parse().map_err(|_| bad())?;
        let count: u64 = count.parse().map_err(|_| bad())?;
        // Positions and revisions stay below u64::MAX: an entry's last
        // position and revision and the next entry's position all exist.
        if first_revision == 0
            || count == 0
            || first_revision.checked_add(count).is_none()
            || position.checked_add(count).is_none()
        {
            return Err(bad());
        }
        out.push(PageSlot::Entry(FeedEntry {
            stream,
            first_revision,
            count,
            position,
        }));
        position += count;
    }
    if let Some(last) = get_u64(page, attr::page::LAST)?
        && position.checked_sub(1) != Some(last)
    {
        return Err(DynamoError::Corrupt(format!(
            "feed page {sk}: entries end at {}, page says {last}",
            position.saturating_sub(1)
        )));
    }
    Ok(out)
}

/// An entry as a type's feed index item stores it
/// (`id|firstRevision|count|position`).
pub fn type_feed_text(e: &FeedEntry) -> String {
    format!(
        "{}|{}|{}|{}",
        e.stream.stream_id, e.first_revision, e.count, e.position
    )
}

/// Parses an item of a type's feed index (entries `id|first|count|position`).
pub fn parse_type_feed_item(
    stream_type: &StreamType,
    item: &Item,
) -> Result<Vec<FeedEntry>, DynamoError> {
    let Some(AttributeValue::L(list)) = item.get(attr::type_feed::ENTRIES) else {
        return Err(DynamoError::Corrupt(
            "type feed item without entries".into(),
        ));
    };
    let mut out = Vec::with_capacity(list.len());
    for v in list {
        let AttributeValue::S(text) = v else {
            return Err(DynamoError::Corrupt(
                "type feed entry is not a string".into(),
            ));
        };
        let bad = || DynamoError::Corrupt(format!("type feed entry {text}"));
        let mut parts = text.split('|');
        let (Some(id), Some(first), Some(count), Some(position), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(bad());
        };
        let position: u64 = position.parse().map_err(|_| bad())?;
        let first_revision: u64 = first.parse().map_err(|_| bad())?;
        let count: u64 = count.parse().map_err(|_| bad())?;
        if first_revision == 0
            || count == 0
            || first_revision.checked_add(count).is_none()
            || position == 0
            || position.checked_add(count).is_none()
        {
            return Err(bad());
        }
        out.push(FeedEntry {
            stream: StreamKey::new(stream_type.clone(), StreamId::parse(id).map_err(|_| bad())?),
            first_revision,
            count,
            position,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_name_the_key_attributes() {
        let key_names = |expr: &str| {
            expr.split(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != ':')
                .filter(|w| {
                    !w.is_empty()
                        && !w.starts_with(':')
                        && !["AND", "BETWEEN", "attribute_not_exists", "attribute_exists"]
                            .contains(w)
                })
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        for (expr, names) in [
            (cond::PARTITION, vec![PK]),
            (cond::SORT_AT_MOST, vec![PK, SK]),
            (cond::SORT_AFTER, vec![PK, SK]),
            (cond::SORT_AFTER_LO, vec![PK, SK]),
            (cond::SORT_BETWEEN, vec![PK, SK]),
            (cond::ABSENT, vec![PK]),
            (cond::PRESENT, vec![PK]),
        ] {
            assert_eq!(key_names(expr), names, "{expr}");
        }
    }

    #[test]
    fn stream_keys_round_trip_and_other_partitions_are_not_streams() {
        let key = StreamKey::new(
            StreamType::parse("order").unwrap(),
            StreamId::parse("o:1").unwrap(),
        );
        assert_eq!(parse_stream_pk(&stream_pk(&key)).unwrap(), Some(key));
        assert_eq!(parse_stream_pk(FEED_PK).unwrap(), None);
        assert!(parse_stream_pk("S#no-separator").is_err());
    }
}
