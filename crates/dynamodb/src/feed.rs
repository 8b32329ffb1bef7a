//! The feed paths of [`DynamoStore`]: the global feed from the relay's
//! pages, a type's feed from its index, and the long-poll waits.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use eventstore_core::json::{JsonObject, JsonValue};
use eventstore_core::{
    EventId, EventType, FeedFilter, FeedPage, Position, RecordedEvent, Revision, STREAM_DELETED,
    StoreError, StreamKey, StreamType, Timestamp,
};

use crate::error::DynamoError;
use crate::items::{self, Item, Tip, cond, pad, s};
use crate::items::{FeedEntry, parse_page, parse_type_feed_item};
use crate::store::{DynamoStore, sdk_err};

impl DynamoStore {
    pub(crate) async fn read_feed_page(
        &self,
        filter: &FeedFilter,
        after: Position,
        limit: usize,
    ) -> Result<FeedPage, StoreError> {
        let limit = limit.clamp(1, eventstore_core::Limits::MAX_READ_LIMIT);
        let mut page = self.read_feed_once(filter, after, limit).await?;
        // The entries of deleted streams and truncated ranges are skipped
        // (their positions are gaps): read on until the page is full or
        // the feed ends, a bounded number of times. `last_position` moves
        // past skipped entries, so a reader resuming from it never reads
        // them again.
        for _ in 0..SKIP_READS {
            if !page.has_more || page.events.len() >= limit {
                break;
            }
            let more = self
                .read_feed_once(filter, page.last_position, limit - page.events.len())
                .await?;
            page.events.extend(more.events);
            page.has_more = more.has_more;
            page.last_position = page.last_position.max(more.last_position);
        }
        Ok(page)
    }

    async fn read_feed_once(
        &self,
        filter: &FeedFilter,
        after: Position,
        limit: usize,
    ) -> Result<FeedPage, StoreError> {
        let Some(start) = after.get().checked_add(1) else {
            // Nothing can follow the last position there is.
            return Ok(FeedPage {
                events: Vec::new(),
                has_more: false,
                last_position: after,
            });
        };
        if let FeedFilter::StreamType(t) = filter {
            let wanted = self.type_feed_entries(t, start, limit).await?;
            return self
                .feed_page(wanted, limit, after)
                .await
                .map_err(Into::into);
        }
        // The page holding `start`, then the pages after it.
        let first = self.item_at_or_below(items::FEED_PK, &pad(start)).await?;
        let mut wanted: Vec<(FeedEntry, u64)> = Vec::new(); // entry, offset in it
        let consider =
            |page: &Item, wanted: &mut Vec<(FeedEntry, u64)>| -> Result<bool, DynamoError> {
                let entries = parse_page(page)?.into_iter().filter(|entry| match filter {
                    FeedFilter::StreamType(t) => &entry.stream.stream_type == t,
                    FeedFilter::All => true,
                });
                Ok(take_events(entries, start, limit, wanted))
            };
        let mut full = false;
        for page in first.iter() {
            full = consider(page, &mut wanted)?;
        }
        let mut cursor: Option<Item> = None;
        while !full {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(cond::SORT_AFTER)
                .expression_attribute_values(":p", s(items::FEED_PK))
                .expression_attribute_values(":s", s(pad(start)))
                .consistent_read(true)
                .limit(50);
            q = q.set_exclusive_start_key(cursor.take());
            let out = q.send().await.map_err(|e| sdk_err("Query", e))?;
            for page in out.items() {
                if consider(page, &mut wanted)? {
                    full = true;
                    break;
                }
            }
            cursor = out.last_evaluated_key().cloned();
            if cursor.is_none() {
                break;
            }
        }
        self.feed_page(wanted, limit, after)
            .await
            .map_err(Into::into)
    }

    pub(crate) async fn wait_feed(&self, after: Position) -> Result<(), StoreError> {
        match &self.progress {
            Some(p) => p.wait_position(after.get(), Duration::from_secs(1)).await,
            None => tokio::time::sleep(Duration::from_millis(250)).await,
        }
        Ok(())
    }

    /// With a relay in this process, wakes when that type's feed moved;
    /// otherwise polls the type's feed index for an entry after `after`
    /// (one projected query of at most one small item every 250 ms: no
    /// event is read while the type is quiet).
    pub(crate) async fn wait_type_feed(
        &self,
        stream_type: &StreamType,
        after: Position,
    ) -> Result<(), StoreError> {
        if let Some(p) = &self.progress {
            p.wait_type_position(stream_type, after.get(), Duration::from_secs(1))
                .await;
            return Ok(());
        }
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(cond::SORT_AFTER)
                .expression_attribute_values(":p", s(items::type_feed_pk(stream_type)))
                .expression_attribute_values(":s", s(pad(after.get())))
                .projection_expression(items::SK)
                .limit(1)
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| sdk_err("Query", e))?;
            if !out.items().is_empty() {
                return Ok(());
            }
        }
    }
    /// The entries of a type's feed from position `start`: the index item
    /// that may hold `start`, then at most `limit + 1` items after it
    /// (each holds at least one event). Returns at most `limit + 1` events
    /// (entry, offset in it).
    async fn type_feed_entries(
        &self,
        stream_type: &StreamType,
        start: u64,
        limit: usize,
    ) -> Result<Vec<(FeedEntry, u64)>, DynamoError> {
        let pk = items::type_feed_pk(stream_type);
        let mut wanted: Vec<(FeedEntry, u64)> = Vec::new();
        let consider =
            |item: &Item, wanted: &mut Vec<(FeedEntry, u64)>| -> Result<bool, DynamoError> {
                let entries = parse_type_feed_item(stream_type, item)?;
                Ok(take_events(entries, start, limit, wanted))
            };
        let holding = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression(cond::SORT_AT_MOST)
            .expression_attribute_values(":p", s(&pk))
            .expression_attribute_values(":s", s(pad(start)))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_err("Query", e))?;
        for item in holding.items() {
            if consider(item, &mut wanted)? {
                return Ok(wanted);
            }
        }
        let mut cursor: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(cond::SORT_AFTER)
                .expression_attribute_values(":p", s(&pk))
                .expression_attribute_values(":s", s(pad(start)))
                .consistent_read(true)
                .limit((limit + 1 - wanted.len()).min(100) as i32)
                .set_exclusive_start_key(cursor.take())
                .send()
                .await
                .map_err(|e| sdk_err("Query", e))?;
            for item in out.items() {
                if consider(item, &mut wanted)? {
                    return Ok(wanted);
                }
            }
            cursor = out.last_evaluated_key().cloned();
            if cursor.is_none() {
                return Ok(wanted);
            }
        }
    }

    /// A feed page of `wanted` (at most `limit` of them; more: `has_more`),
    /// with the events read one range per stream. Entries of a deleted
    /// stream are skipped but for its `$stream-deleted` entry (at its last
    /// revision + 1), and so are revisions below a truncation's bound;
    /// `last_position` is the last entry considered, skipped or not.
    async fn feed_page(
        &self,
        mut wanted: Vec<(FeedEntry, u64)>,
        limit: usize,
        after: Position,
    ) -> Result<FeedPage, DynamoError> {
        let has_more = wanted.len() > limit;
        wanted.truncate(limit);
        let last_considered = wanted.last().map(|(e, off)| e.position + off);
        let mut tips: HashMap<StreamKey, Tip> = HashMap::new();
        for (e, _) in &wanted {
            if !tips.contains_key(&e.stream) {
                let tip = self.get_tip(&e.stream).await?.ok_or_else(|| {
                    DynamoError::Corrupt(format!("feed names stream {} without a tip", e.stream))
                })?;
                tips.insert(e.stream.clone(), tip);
            }
        }
        let readable = |stream: &StreamKey, rev: u64| {
            let tip = &tips[stream];
            tip.deleted.is_none() && rev >= tip.first_kept() && rev <= tip.revision
        };
        // Fetch the events, one range per stream.
        let mut ranges: BTreeMap<StreamKey, (u64, u64)> = BTreeMap::new();
        for (e, off) in &wanted {
            let rev = e.first_revision + off;
            if !readable(&e.stream, rev) {
                continue;
            }
            let r = ranges.entry(e.stream.clone()).or_insert((rev, rev));
            r.0 = r.0.min(rev);
            r.1 = r.1.max(rev);
        }
        let mut events: HashMap<(StreamKey, u64), RecordedEvent> = HashMap::new();
        for (stream, (lo, hi)) in ranges {
            for e in self.read_range(&stream, &tips[&stream], lo, hi).await? {
                events.insert((stream.clone(), e.revision.get()), e);
            }
        }
        let mut out = Vec::with_capacity(wanted.len());
        for (e, off) in wanted {
            let rev = e.first_revision + off;
            let tip = &tips[&e.stream];
            let mut ev = match tip.deleted {
                Some(at) if rev == tip.revision + 1 => deletion_entry(&e.stream, tip, at),
                _ if !readable(&e.stream, rev) => continue,
                _ => events
                    .remove(&(e.stream.clone(), rev))
                    .ok_or_else(|| DynamoError::Corrupt("feed event missing".into()))?,
            };
            ev.position = Some(Position::new(e.position + off));
            out.push(ev);
        }
        let last_position = last_considered.map_or(after, Position::new);
        Ok(FeedPage {
            events: out,
            has_more,
            last_position,
        })
    }
}

/// Reads of a feed page past entries that are skipped (deleted streams,
/// truncated ranges) before a short page is answered.
const SKIP_READS: usize = 16;

/// The `$stream-deleted` entry of a deleted stream whose tombstone is
/// `tip`, deleted at `at` (µs): revision = the last one + 1, payload `{}`,
/// an event id derived from the stream (the same on every read).
fn deletion_entry(stream: &StreamKey, tip: &Tip, at: i64) -> RecordedEvent {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{}\0{STREAM_DELETED}", items::stream_pk(stream)));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    RecordedEvent {
        stream_id: stream.stream_id.clone(),
        stream_type: stream.stream_type.clone(),
        revision: Revision::new(tip.revision + 1),
        event_type: EventType::parse(STREAM_DELETED).expect("a valid event type"),
        payload: JsonValue::from_text("{}").expect("valid JSON"),
        created_at: Timestamp::from_micros(at),
        event_id: EventId::from(uuid::Builder::from_random_bytes(bytes).into_uuid()),
        metadata: JsonObject::empty(),
        position: None,
    }
}

/// Adds the events of `entries` at or after position `start` to `wanted`
/// (an entry and the offset of one of its events); true once `wanted`
/// holds more than `limit`, which tells the reader a page is full.
fn take_events(
    entries: impl IntoIterator<Item = FeedEntry>,
    start: u64,
    limit: usize,
    wanted: &mut Vec<(FeedEntry, u64)>,
) -> bool {
    for entry in entries {
        for off in 0..entry.count {
            if entry.position.saturating_add(off) >= start {
                wanted.push((entry.clone(), off));
                if wanted.len() > limit {
                    return true;
                }
            }
        }
    }
    false
}
