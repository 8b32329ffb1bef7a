//! Removing the feed's references to deleted and truncated events
//! (docs/dynamodb.md, "Deletion and truncation").
//!
//! A feed page lists appends as `type|id|firstRevision|count`, and a
//! type's feed index item lists that type's appends on a page as
//! `id|firstRevision|count|position`. Neither holds a payload, but both
//! name the stream and its revisions. When the relay handles a deletion or
//! a truncation it removes those references:
//!
//! - on the page, a removed entry becomes a **gap** (its count alone), so
//!   the positions after it do not move; an entry across a truncation's
//!   bound becomes a gap and the entry of its kept events;
//! - in the type's index item, the entry goes (or is cut to its kept
//!   events); an item left without entries is deleted.
//!
//! There is no per-stream list of feed positions (it would cost a write
//! per append), so the cleanup finds the references by reading the type's
//! index **backwards** from its newest item, and stops at the entry of
//! the lowest revision the feed can still reference (the first kept
//! revision before the change), or at the first item written before the
//! stream was created (minus a margin for clocks). Each rewrite is
//! conditioned on the item's version (`y`), so cleanups of streams that
//! share a page (relayed from different shards) never undo each other.
//! The page is rewritten before its index item, and the index is read
//! newest first, so a cleanup interrupted anywhere is finished by running
//! it again: what is left still leads to the page, and the entry it stops
//! at is the last one removed.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;

use eventstore_core::StreamKey;

use crate::error::DynamoError;
use crate::items::{
    self, FeedEntry, Item, PageSlot, attr, cond, get_u64, n, page_slots, parse_type_feed_item, s,
    type_feed_text,
};
use crate::retry::{Backoff, is_retryable};
use crate::store::{DynamoStore, sdk_err};

/// How much earlier than a stream's creation the cleanup still looks: the
/// relay's clock and the appending process's may differ.
const CLOCK_MARGIN_MICROS: i64 = 5 * 60 * 1_000_000;

/// Index items per query of the backward read.
const INDEX_QUERY: i32 = 25;

/// What one cleanup of a stream's feed references did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReferencePurge {
    /// Type index items read.
    pub index_items_read: u64,
    /// Type index items rewritten or deleted.
    pub index_items_changed: u64,
    /// Feed pages rewritten.
    pub pages_changed: u64,
}

/// What a cleanup removes: the references to `stream`'s revisions below
/// `below`.
struct Cut<'a> {
    stream: &'a StreamKey,
    below: u64,
}

impl Cut<'_> {
    /// How many of `e`'s events it removes (0: none, `e.count`: all).
    fn removed(&self, e: &FeedEntry) -> u64 {
        if &e.stream != self.stream || e.first_revision >= self.below {
            return 0;
        }
        e.count.min(self.below - e.first_revision)
    }

    /// `e` without its removed events, if any are left.
    fn kept(&self, e: &FeedEntry) -> Option<FeedEntry> {
        let removed = self.removed(e);
        (removed < e.count).then(|| FeedEntry {
            stream: e.stream.clone(),
            first_revision: e.first_revision + removed,
            count: e.count - removed,
            position: e.position + removed,
        })
    }

    /// A page's slots without the removed events (gaps merged).
    fn page(&self, slots: &[PageSlot]) -> Vec<PageSlot> {
        let mut out: Vec<PageSlot> = Vec::with_capacity(slots.len());
        let gap = |out: &mut Vec<PageSlot>, k: u64| match out.last_mut() {
            Some(PageSlot::Gap(g)) => *g += k,
            _ => out.push(PageSlot::Gap(k)),
        };
        for slot in slots {
            match slot {
                PageSlot::Gap(k) => gap(&mut out, *k),
                PageSlot::Entry(e) => {
                    let removed = self.removed(e);
                    if removed > 0 {
                        gap(&mut out, removed);
                    }
                    if let Some(kept) = self.kept(e) {
                        out.push(PageSlot::Entry(kept));
                    }
                }
            }
        }
        out
    }
}

/// The condition that an item exists and still has version `version`
/// (`None`: never rewritten), with its value.
fn unchanged(version: Option<u64>) -> (String, Option<AttributeValue>) {
    let y = attr::page::VERSION;
    match version {
        None => (
            format!("{} AND attribute_not_exists({y})", cond::PRESENT),
            None,
        ),
        Some(v) => (format!("{} AND {y} = :y", cond::PRESENT), Some(n(v))),
    }
}

impl DynamoStore {
    /// Removes the feed's references to `stream`'s revisions below
    /// `below` (see the module documentation): `lowest` is the lowest
    /// revision the feed may still reference (the first kept revision
    /// before this deletion or truncation), `created` the stream's
    /// creation time (µs). Idempotent.
    pub async fn purge_feed_references(
        &self,
        stream: &StreamKey,
        below: u64,
        lowest: u64,
        created: i64,
    ) -> Result<ReferencePurge, DynamoError> {
        let mut done = ReferencePurge::default();
        if below <= lowest {
            return Ok(done);
        }
        let cut = Cut { stream, below };
        let pk = items::type_feed_pk(&stream.stream_type);
        let oldest = created.saturating_sub(CLOCK_MARGIN_MICROS);
        let mut cursor: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(cond::PARTITION)
                .expression_attribute_values(":p", s(&pk))
                .scan_index_forward(false)
                .consistent_read(true)
                .limit(INDEX_QUERY)
                .set_exclusive_start_key(cursor.take())
                .send()
                .await
                .map_err(|e| sdk_err("Query", e))?;
            for item in out.items() {
                done.index_items_read += 1;
                if get_u64(item, attr::type_feed::WRITTEN)?.is_some_and(|w| (w as i64) < oldest) {
                    return Ok(done);
                }
                let entries = parse_type_feed_item(&stream.stream_type, item)?;
                let last = entries
                    .iter()
                    .any(|e| &e.stream == stream && e.first_revision <= lowest);
                if entries.iter().any(|e| cut.removed(e) > 0) {
                    let at = items::get_str(item, items::SK)?.to_string();
                    if self.cut_page(&cut, &at).await? {
                        done.pages_changed += 1;
                    }
                    if self.cut_index_item(&cut, &pk, &at).await? {
                        done.index_items_changed += 1;
                    }
                }
                if last {
                    return Ok(done);
                }
            }
            cursor = out.last_evaluated_key().cloned();
            if cursor.is_none() {
                return Ok(done);
            }
        }
    }

    /// Rewrites the feed page holding position `at` without the cut's
    /// events; false when it holds none of them (already cut).
    async fn cut_page(&self, cut: &Cut<'_>, at: &str) -> Result<bool, DynamoError> {
        let mut backoff = Backoff::default();
        loop {
            let found = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression(cond::SORT_AT_MOST)
                .expression_attribute_values(":p", s(items::FEED_PK))
                .expression_attribute_values(":s", s(at))
                .scan_index_forward(false)
                .limit(1)
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| sdk_err("Query", e))?;
            let Some(page) = found.items().first() else {
                return Err(DynamoError::Corrupt(format!(
                    "type feed index item {at} of {} has no feed page",
                    cut.stream.stream_type
                )));
            };
            let slots = page_slots(page)?;
            let kept = cut.page(&slots);
            if kept == slots {
                return Ok(false);
            }
            let version = get_u64(page, attr::page::VERSION)?;
            let sk = items::get_str(page, items::SK)?;
            let entries = kept.iter().map(|k| s(k.to_text())).collect();
            let names = (attr::page::ENTRIES, attr::page::VERSION);
            if self
                .set_entries(items::key(items::FEED_PK, sk), names, entries, version)
                .await?
            {
                return Ok(true);
            }
            // Another cleanup rewrote the page since it was read.
            if !backoff.wait().await {
                return Err(DynamoError::Contention(backoff.attempts()));
            }
        }
    }

    /// Rewrites the type's index item `at` without the cut's events, or
    /// deletes it when nothing is left; false when it holds none of them.
    async fn cut_index_item(&self, cut: &Cut<'_>, pk: &str, at: &str) -> Result<bool, DynamoError> {
        let mut backoff = Backoff::default();
        loop {
            let read = self
                .client
                .get_item()
                .table_name(&self.table)
                .set_key(Some(items::key(pk, at)))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| sdk_err("GetItem", e))?;
            let Some(item) = read.item() else {
                return Ok(false);
            };
            let entries = parse_type_feed_item(&cut.stream.stream_type, item)?;
            if entries.iter().all(|e| cut.removed(e) == 0) {
                return Ok(false);
            }
            let kept: Vec<AttributeValue> = entries
                .iter()
                .filter_map(|e| cut.kept(e))
                .map(|e| s(type_feed_text(&e)))
                .collect();
            let version = get_u64(item, attr::type_feed::VERSION)?;
            let done = if kept.is_empty() {
                let (condition, value) = unchanged(version);
                let result = self
                    .client
                    .delete_item()
                    .table_name(&self.table)
                    .set_key(Some(items::key(pk, at)))
                    .condition_expression(condition)
                    .set_expression_attribute_values(
                        value.map(|v| std::iter::once((":y".to_string(), v)).collect()),
                    )
                    .send()
                    .await;
                match result {
                    Ok(_) => true,
                    // Changed since it was read, or a transient refusal (a
                    // transaction on the item, a throttle): read again.
                    Err(SdkError::ServiceError(se))
                        if matches!(
                            se.err(),
                            DeleteItemError::ConditionalCheckFailedException(_)
                        ) || se.err().meta().code().is_some_and(is_retryable) =>
                    {
                        false
                    }
                    Err(e) => return Err(sdk_err("DeleteItem", e)),
                }
            } else {
                let names = (attr::type_feed::ENTRIES, attr::type_feed::VERSION);
                self.set_entries(items::key(pk, at), names, kept, version)
                    .await?
            };
            if done {
                return Ok(true);
            }
            // Another cleanup rewrote the item since it was read.
            if !backoff.wait().await {
                return Err(DynamoError::Contention(backoff.attempts()));
            }
        }
    }

    /// Sets the entries of the item at `key` (attributes `names`: entries,
    /// version) and counts one more rewrite, if the item is there and its
    /// version is still `version`; false when it changed since it was read
    /// or the write was refused for a while (the caller reads again).
    async fn set_entries(
        &self,
        key: Item,
        (entries_name, version_name): (&str, &str),
        entries: Vec<AttributeValue>,
        version: Option<u64>,
    ) -> Result<bool, DynamoError> {
        let (condition, value) = unchanged(version);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression(format!("SET {entries_name} = :g, {version_name} = :v"))
            .condition_expression(condition)
            .set_expression_attribute_values(Some(
                [
                    (":g".to_string(), AttributeValue::L(entries)),
                    (":v".to_string(), n(version.unwrap_or(0) + 1)),
                ]
                .into_iter()
                .chain(value.map(|v| (":y".to_string(), v)))
                .collect(),
            ))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            // Changed since it was read, or a transient refusal (a
            // transaction on the item, a throttle): the caller reads again.
            Err(SdkError::ServiceError(se))
                if matches!(
                    se.err(),
                    UpdateItemError::ConditionalCheckFailedException(_)
                ) || se.err().meta().code().is_some_and(is_retryable) =>
            {
                Ok(false)
            }
            Err(e) => Err(sdk_err("UpdateItem", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventstore_core::{StreamId, StreamType};

    fn key(t: &str, id: &str) -> StreamKey {
        StreamKey::new(StreamType::parse(t).unwrap(), StreamId::parse(id).unwrap())
    }

    fn entry(stream: &StreamKey, first: u64, count: u64, position: u64) -> PageSlot {
        PageSlot::Entry(FeedEntry {
            stream: stream.clone(),
            first_revision: first,
            count,
            position,
        })
    }

    #[test]
    fn a_cut_turns_removed_events_into_gaps_and_keeps_positions() {
        let a = key("order", "a");
        let b = key("order", "b");
        let slots = vec![
            entry(&a, 1, 2, 10),
            entry(&b, 1, 1, 12),
            PageSlot::Gap(3),
            entry(&a, 3, 4, 16),
            entry(&a, 7, 1, 20),
        ];
        // A truncation before revision 5: 1–2 and 3–4 go, 5–6 and 7 stay.
        let cut = Cut {
            stream: &a,
            below: 5,
        };
        assert_eq!(
            cut.page(&slots),
            vec![
                PageSlot::Gap(2),
                entry(&b, 1, 1, 12),
                PageSlot::Gap(5),
                entry(&a, 5, 2, 18),
                entry(&a, 7, 1, 20),
            ]
        );
        // Positions add up to the same total.
        let total = |s: &[PageSlot]| s.iter().map(PageSlot::count).sum::<u64>();
        assert_eq!(total(&cut.page(&slots)), total(&slots));
        // A deletion (below = last + 1) leaves b alone; cutting twice
        // changes nothing more.
        let all = Cut {
            stream: &a,
            below: 8,
        };
        let once = all.page(&slots);
        assert_eq!(
            once,
            vec![PageSlot::Gap(2), entry(&b, 1, 1, 12), PageSlot::Gap(8)]
        );
        assert_eq!(all.page(&once), once);
        // Another stream of the same id in another type is not cut.
        let other = key("invoice", "a");
        let c = Cut {
            stream: &other,
            below: 8,
        };
        assert_eq!(c.page(&slots), slots);
    }
}
