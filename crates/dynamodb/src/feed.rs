//! The feed paths of [`DynamoStore`]: the global feed from the relay's
//! pages, a type's feed from its index, and the long-poll waits.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use eventstore_core::{
    FeedFilter, FeedPage, Position, RecordedEvent, StoreError, StreamKey, StreamType,
};

use crate::error::DynamoError;
use crate::items::{self, Item, cond, pad, s};
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
        let first = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression(cond::SORT_AT_MOST)
            .expression_attribute_values(":p", s(items::FEED_PK))
            .expression_attribute_values(":s", s(pad(start)))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_err("Query", e))?;
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
        for page in first.items() {
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
    /// with the events read one range per stream.
    async fn feed_page(
        &self,
        mut wanted: Vec<(FeedEntry, u64)>,
        limit: usize,
        after: Position,
    ) -> Result<FeedPage, DynamoError> {
        let has_more = wanted.len() > limit;
        wanted.truncate(limit);
        // Fetch the events, one range per stream.
        let mut ranges: BTreeMap<StreamKey, (u64, u64)> = BTreeMap::new();
        for (e, off) in &wanted {
            let rev = e.first_revision + off;
            let r = ranges.entry(e.stream.clone()).or_insert((rev, rev));
            r.0 = r.0.min(rev);
            r.1 = r.1.max(rev);
        }
        let mut events: HashMap<(StreamKey, u64), RecordedEvent> = HashMap::new();
        for (stream, (lo, hi)) in ranges {
            let tip = self.get_tip(&stream).await?.ok_or_else(|| {
                DynamoError::Corrupt(format!("feed names stream {stream} without a tip"))
            })?;
            for e in self.read_range(&stream, &tip, lo, hi).await? {
                events.insert((stream.clone(), e.revision.get()), e);
            }
        }
        let mut out = Vec::with_capacity(wanted.len());
        for (e, off) in wanted {
            let mut ev = events
                .remove(&(e.stream.clone(), e.first_revision + off))
                .ok_or_else(|| DynamoError::Corrupt("feed event missing".into()))?;
            ev.position = Some(Position::new(e.position + off));
            out.push(ev);
        }
        let last_position = out.last().and_then(|e| e.position).unwrap_or(after);
        Ok(FeedPage {
            events: out,
            has_more,
            last_position,
        })
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
