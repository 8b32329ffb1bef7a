//! Stream deletion and truncation on [`DynamoStore`] (docs/lifecycle.md,
//! "How DynamoDB does it").
//!
//! The commit point of both is one conditional `UpdateItem` of the tip:
//!
//! - **Deletion** turns the tip into a tombstone (`d` = the deletion's time,
//!   no events, no fingerprints; revision and times kept), conditioned on
//!   the revision as read, so no append slips in between and every append
//!   from then on fails its condition on the tip and answers 410. Then
//!   every other item of the stream's partition (chunks, append-id items)
//!   is deleted in `BatchWriteItem` calls of 25 keys, unprocessed keys
//!   retried ([`DynamoStore::purge_stream`]). The relay removes the
//!   listing entry and puts the `$stream-deleted` entry into the feed.
//! - **Truncation** sets the tip's first kept revision `f` (and rewrites
//!   the tip's own events without the removed ones), conditioned on the
//!   tip as read; then deletes the chunks below the bound and rewrites the
//!   one that straddles it ([`DynamoStore::purge_below`]). Append-id items
//!   stay (no payload), so a late retry of a truncated append is still
//!   recognised.
//!
//! Both cleanups are idempotent and resumable: a deletion or truncation
//! interrupted after its commit point (a crash, an error between batches)
//! is finished by the next deletion or truncation request of the stream,
//! and by the relay when it handles the tip's change.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};

use eventstore_core::store::{check_expected, check_truncation};
use eventstore_core::{
    DeleteOutcome, NewEvent, Revision, StoreError, StreamInfo, StreamKey, Timestamp,
};

use crate::codec;
use crate::error::DynamoError;
use crate::items::{self, Chunk, Item, TIP_SK, attr, cond, n, pad, s};
use crate::retry::{Backoff, is_retryable};
use crate::store::{DynamoStore, sdk_err};

/// `blobs` (one per append, the first event at revision `base + 1`)
/// without the events below revision `first`: blobs wholly below it are
/// dropped, one that straddles it is encoded again with its kept events.
pub(crate) fn trim_blobs(
    blobs: &[Vec<u8>],
    base: u64,
    first: u64,
) -> Result<Vec<Vec<u8>>, DynamoError> {
    let mut out = Vec::with_capacity(blobs.len());
    let mut rev = base;
    for blob in blobs {
        let count = codec::count(blob)?;
        let (lo, hi) = (rev + 1, rev + count);
        rev = hi;
        if hi < first {
            continue;
        }
        if lo >= first {
            out.push(blob.clone());
            continue;
        }
        let events = codec::decode(blob)?;
        let created = events
            .first()
            .map_or(Timestamp::from_micros(0), |e| e.created_at);
        let kept: Vec<NewEvent> = events
            .into_iter()
            .zip(lo..)
            .filter(|(_, r)| *r >= first)
            .map(|(e, _)| NewEvent {
                event_id: e.event_id,
                event_type: e.event_type,
                payload: e.payload,
                metadata: e.metadata,
            })
            .collect();
        out.push(codec::encode(created, &kept));
    }
    Ok(out)
}

impl DynamoStore {
    pub(crate) async fn delete_inner(
        &self,
        stream: &StreamKey,
        expected: Option<Revision>,
    ) -> Result<DeleteOutcome, StoreError> {
        let mut backoff = Backoff::default();
        // This call's deletion time: it tells this call's own tombstone
        // (an answer lost after the write) from another deletion's.
        let now = Timestamp::now().as_micros();
        loop {
            let tip = self
                .get_tip(stream)
                .await?
                .ok_or_else(|| StoreError::StreamNotFound(stream.clone()))?;
            if let Some(at) = tip.deleted {
                self.purge_stream(stream).await?;
                return Ok(DeleteOutcome {
                    last_revision: Revision::new(tip.revision),
                    position: None,
                    already_deleted: at != now,
                });
            }
            check_expected(expected, Revision::new(tip.revision))?;
            if tip.per_append {
                match self.put_tombstone(stream, &tip, now).await? {
                    Some(true) => return self.deleted_now(stream, &tip).await,
                    // The revision after the last was taken (an append, a
                    // deletion, or this call's own put whose answer was
                    // lost): read again.
                    Some(false) => continue,
                    None => {
                        if !backoff.wait().await {
                            return Err(DynamoError::Contention(backoff.attempts()).into());
                        }
                        continue;
                    }
                }
            }
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(items::key(items::stream_pk(stream), TIP_SK)))
                .update_expression(format!(
                    "SET {d} = :now, {v} = :u, {n} = :zero, {b} = :r, {z} = :zero \
                     REMOVE {e}, {x}",
                    d = attr::tip::DELETED,
                    v = attr::tip::PREVIOUS_UPDATE,
                    n = attr::tip::LAST_COUNT,
                    b = attr::tip::BASE,
                    z = attr::tip::EVENT_BYTES,
                    e = attr::tip::EVENTS,
                    x = attr::tip::FINGERPRINTS,
                ))
                .condition_expression(format!(
                    "{} = :r AND attribute_not_exists({})",
                    attr::tip::REVISION,
                    attr::tip::DELETED
                ))
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(":u", n(tip.updated))
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":r", n(tip.revision))
                .send()
                .await;
            match result {
                Ok(_) => return self.deleted_now(stream, &tip).await,
                Err(SdkError::ServiceError(se)) => match se.err() {
                    // An append or another deletion came first, or this
                    // call's own update was applied and its answer lost:
                    // read the tip again.
                    UpdateItemError::ConditionalCheckFailedException(_) => {}
                    other if other.meta().code().is_some_and(is_retryable) => {
                        if !backoff.wait().await {
                            return Err(DynamoError::Contention(backoff.attempts()).into());
                        }
                    }
                    _ => return Err(sdk_err("UpdateItem", SdkError::ServiceError(se)).into()),
                },
                Err(e) => return Err(sdk_err("UpdateItem", e).into()),
            }
        }
    }

    /// After a deletion's commit point (the stream was `tip`): its
    /// cleanup, and the answer.
    async fn deleted_now(
        &self,
        stream: &StreamKey,
        tip: &items::Tip,
    ) -> Result<DeleteOutcome, StoreError> {
        if let Some(p) = &self.progress {
            // The relay's `$stream-deleted` entry is at revision + 1:
            // listings wait for it.
            p.committed(stream, tip.revision + 1);
        }
        self.purge_stream(stream).await?;
        Ok(DeleteOutcome {
            last_revision: Revision::new(tip.revision),
            position: None,
            already_deleted: false,
        })
    }

    pub(crate) async fn truncate_inner(
        &self,
        stream: &StreamKey,
        before: Revision,
        expected: Option<Revision>,
    ) -> Result<StreamInfo, StoreError> {
        let mut backoff = Backoff::default();
        loop {
            let tip = self.live_tip(stream).await?;
            check_expected(expected, Revision::new(tip.revision))?;
            check_truncation(before, Revision::new(tip.revision))?;
            let bound = before.get();
            if bound <= tip.first_kept() {
                // Nothing more to remove; finish an interrupted cleanup.
                self.purge_below(stream).await?;
                return Ok(tip.info(stream));
            }
            if tip.per_append {
                if self.set_meta_first(stream, &tip, bound).await? {
                    self.purge_below(stream).await?;
                    self.set_listing_first(stream, tip.updated, bound).await?;
                    let mut after = tip.clone();
                    after.first = Some(bound);
                    return Ok(after.info(stream));
                }
                if !backoff.wait().await {
                    return Err(DynamoError::Contention(backoff.attempts()).into());
                }
                continue;
            }
            let mut values: Item = Item::new();
            values.insert(":f".into(), n(bound));
            values.insert(":u".into(), n(tip.updated));
            values.insert(":zero".into(), n(0));
            values.insert(":r".into(), n(tip.revision));
            values.insert(":b0".into(), n(tip.base));
            let mut set = format!(
                "SET {f} = :f, {v} = :u, {n} = :zero",
                f = attr::tip::FIRST,
                v = attr::tip::PREVIOUS_UPDATE,
                n = attr::tip::LAST_COUNT,
            );
            if bound > tip.base + 1 {
                // Some of the tip's own events go. An append's events are
                // in the tip or its append-id item exists: the items of
                // the tip's appends are written first, so that a late
                // retry of a truncated append is still recognised.
                self.put_append_ids(stream, &tip).await?;
                let blobs = trim_blobs(&tip.blobs, tip.base, bound)?;
                let bytes: usize = blobs.iter().map(Vec::len).sum();
                values.insert(":b".into(), n(bound - 1));
                values.insert(":e".into(), items::blob_list(blobs));
                values.insert(":z".into(), n(bytes));
                set.push_str(&format!(
                    ", {b} = :b, {e} = :e, {z} = :z",
                    b = attr::tip::BASE,
                    e = attr::tip::EVENTS,
                    z = attr::tip::EVENT_BYTES,
                ));
            }
            let mut condition = format!(
                "{r} = :r AND {b} = :b0 AND attribute_not_exists({d})",
                r = attr::tip::REVISION,
                b = attr::tip::BASE,
                d = attr::tip::DELETED,
            );
            match tip.first {
                Some(f) => {
                    values.insert(":f0".into(), n(f));
                    condition.push_str(&format!(" AND {} = :f0", attr::tip::FIRST));
                }
                None => {
                    condition.push_str(&format!(" AND attribute_not_exists({})", attr::tip::FIRST))
                }
            }
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(items::key(items::stream_pk(stream), TIP_SK)))
                .update_expression(set)
                .condition_expression(condition)
                .set_expression_attribute_values(Some(values))
                .send()
                .await;
            match result {
                Ok(_) => {
                    self.purge_below(stream).await?;
                    self.set_listing_first(stream, tip.updated, bound).await?;
                    let mut after = tip.clone();
                    after.first = Some(bound);
                    return Ok(after.info(stream));
                }
                Err(SdkError::ServiceError(se)) => match se.err() {
                    // An append or a deletion came first, or this call's
                    // own update was applied and its answer lost: read the
                    // tip again.
                    UpdateItemError::ConditionalCheckFailedException(_) => {}
                    other if other.meta().code().is_some_and(is_retryable) => {
                        if !backoff.wait().await {
                            return Err(DynamoError::Contention(backoff.attempts()).into());
                        }
                    }
                    _ => return Err(sdk_err("UpdateItem", SdkError::ServiceError(se)).into()),
                },
                Err(e) => return Err(sdk_err("UpdateItem", e).into()),
            }
        }
    }

    /// Deletes every item of a deleted stream's partition but its tip or
    /// meta item and its tombstone (chunks, append items and append-id
    /// items), in `BatchWriteItem` calls of 25 keys.
    /// Idempotent; passes over the partition until none is left (an
    /// append-id item written by an append that was in flight when the
    /// stream was deleted is found by the next pass).
    pub(crate) async fn purge_stream(&self, stream: &StreamKey) -> Result<(), DynamoError> {
        let pk = items::stream_pk(stream);
        if let Some(t) = self.get_tip(stream).await?
            && t.per_append
            && let Some(at) = t.deleted
        {
            // The meta item learns of the deletion before anything goes:
            // a truncation's late rewrite of a chunk is conditioned on it.
            self.mark_deleted(stream, at).await?;
        }
        for _ in 0..3 {
            let mut keys = Vec::new();
            let mut start: Option<Item> = None;
            loop {
                let page = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression(cond::PARTITION)
                    .expression_attribute_values(":p", s(&pk))
                    .projection_expression(format!(
                        "{}, {}, {}",
                        items::PK,
                        items::SK,
                        attr::append::DELETED
                    ))
                    .consistent_read(true)
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| sdk_err("Query", e))?;
                for item in page.items() {
                    // The tip (or meta item) and a tombstone stay.
                    if items::get_str(item, items::SK)? != TIP_SK
                        && !item.contains_key(attr::append::DELETED)
                    {
                        let mut key = item.clone();
                        key.remove(attr::append::DELETED);
                        keys.push(key);
                    }
                }
                start = page.last_evaluated_key().cloned();
                if start.is_none() {
                    break;
                }
            }
            if keys.is_empty() {
                return Ok(());
            }
            self.delete_keys(keys).await?;
        }
        Ok(())
    }

    /// Deletes the chunks of `stream` wholly below its first kept revision
    /// (the tip's `f`, read first) and writes the chunk that straddles it
    /// again without the events below it: the new chunk first, in one
    /// transaction with a check that the tip still has that bound and is
    /// not deleted (a cleanup of an older, lower bound running late must
    /// not write back events a later truncation or a deletion removed),
    /// then the old one deleted, so a reader always finds the kept events.
    /// Idempotent.
    pub(crate) async fn purge_below(&self, stream: &StreamKey) -> Result<(), DynamoError> {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        use aws_sdk_dynamodb::types::{ConditionCheck, Put, TransactWriteItem};
        let pk = items::stream_pk(stream);
        let mut backoff = Backoff::default();
        'again: loop {
            let Some(tip) = self.get_tip(stream).await? else {
                return Ok(());
            };
            let first = tip.first_kept();
            if tip.deleted.is_some() || first <= 1 {
                return Ok(());
            }
            let mut doomed = Vec::new();
            let mut start: Option<Item> = None;
            loop {
                let page = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression(cond::SORT_BETWEEN)
                    .expression_attribute_values(":p", s(&pk))
                    .expression_attribute_values(":lo", s(pad(1)))
                    .expression_attribute_values(":hi", s(pad(first - 1)))
                    .consistent_read(true)
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| sdk_err("Query", e))?;
                for item in page.items() {
                    let chunk = Chunk::from_item(item)?;
                    // A bound is at most the stream's revision, so the
                    // newest item (what the next append's put is built on)
                    // keeps at least its last event: it is never deleted,
                    // only written again from the bound.
                    if chunk.last >= first {
                        // Written again with its kept events (and its other
                        // attributes, but the relay's mark: it is no append).
                        let mut kept = item.clone();
                        kept.remove(attr::append::COUNT);
                        kept.insert(items::SK.into(), s(pad(first)));
                        kept.insert(
                            attr::chunk::EVENTS.into(),
                            items::blob_list(trim_blobs(&chunk.blobs, chunk.first - 1, first)?),
                        );
                        let build = |e| DynamoError::request("TransactWriteItems", e);
                        let put = Put::builder()
                            .table_name(&self.table)
                            .set_item(Some(kept))
                            .build()
                            .map_err(build)?;
                        let check = ConditionCheck::builder()
                            .table_name(&self.table)
                            .set_key(Some(items::key(&pk, TIP_SK)))
                            .condition_expression(format!(
                                "{} = :f AND attribute_not_exists({})",
                                attr::tip::FIRST,
                                attr::tip::DELETED
                            ))
                            .expression_attribute_values(":f", n(first))
                            .build()
                            .map_err(build)?;
                        let result = self
                            .client
                            .transact_write_items()
                            .transact_items(TransactWriteItem::builder().put(put).build())
                            .transact_items(
                                TransactWriteItem::builder().condition_check(check).build(),
                            )
                            .send()
                            .await;
                        match result {
                            Ok(_) => {}
                            Err(SdkError::ServiceError(se))
                                if matches!(
                                    se.err(),
                                    TransactWriteItemsError::TransactionCanceledException(_)
                                ) || se.err().meta().code().is_some_and(is_retryable) =>
                            {
                                // The bound moved, the stream was deleted,
                                // or a transient conflict: start again
                                // from the tip.
                                if !backoff.wait().await {
                                    return Err(DynamoError::Contention(backoff.attempts()));
                                }
                                continue 'again;
                            }
                            Err(e) => return Err(sdk_err("TransactWriteItems", e)),
                        }
                    }
                    doomed.push(items::key(&pk, pad(chunk.first)));
                }
                start = page.last_evaluated_key().cloned();
                if start.is_none() {
                    break;
                }
            }
            return self.delete_keys(doomed).await;
        }
    }

    /// Puts the tombstone of a stream of append items at the revision
    /// after its last (`attribute_not_exists`: the deletion's commit
    /// point; no append can take that revision after it, and none took it
    /// before). `Some(false)`: the revision is taken; `None`: a transient
    /// conflict.
    async fn put_tombstone(
        &self,
        stream: &StreamKey,
        tip: &items::Tip,
        now: i64,
    ) -> Result<Option<bool>, DynamoError> {
        use aws_sdk_dynamodb::operation::put_item::PutItemError;
        let next = tip.revision + 1;
        let item = items::AppendItem {
            first: next,
            last: next,
            count: Some(1),
            created: tip.created,
            updated: tip.updated,
            previous_update: tip.updated,
            first_kept: tip.first,
            deleted: Some(now),
            ..items::AppendItem::default()
        }
        .to_item(stream);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(cond::ABSENT)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Some(true)),
            Err(SdkError::ServiceError(se)) => match se.err() {
                PutItemError::ConditionalCheckFailedException(_) => Ok(Some(false)),
                other if other.meta().code().is_some_and(is_retryable) => Ok(None),
                _ => Err(sdk_err("PutItem", SdkError::ServiceError(se))),
            },
            Err(e) => Err(sdk_err("PutItem", e)),
        }
    }

    /// Records a deletion (at `at`, µs) in the meta item of a stream of
    /// append items, after its tombstone. Idempotent.
    async fn mark_deleted(&self, stream: &StreamKey, at: i64) -> Result<(), DynamoError> {
        let d = attr::tip::DELETED;
        self.update_meta(
            stream,
            format!("SET {d} = if_not_exists({d}, :d)"),
            None,
            vec![(":d", n(at))],
        )
        .await
        .map(|_| ())
    }

    /// Sets the first kept revision of a stream of append items to
    /// `bound` in its meta item, conditioned on the bound read and on no
    /// deletion; with the stream's times, for the relay. `false`: the
    /// condition failed (a truncation or a deletion came first) or a
    /// transient conflict.
    async fn set_meta_first(
        &self,
        stream: &StreamKey,
        tip: &items::Tip,
        bound: u64,
    ) -> Result<bool, DynamoError> {
        use attr::tip::{CREATED, DELETED, FIRST, REVISION, UPDATED};
        let mut values = vec![
            (":f", n(bound)),
            (":c", n(tip.created)),
            (":u", n(tip.updated)),
        ];
        let read = match tip.first {
            Some(f) => {
                values.push((":f0", n(f)));
                format!("{FIRST} = :f0")
            }
            None => format!("attribute_not_exists({FIRST})"),
        };
        self.update_meta(
            stream,
            format!("SET {FIRST} = :f, {CREATED} = :c, {UPDATED} = :u"),
            Some(format!(
                "{read} AND attribute_not_exists({DELETED}) AND attribute_not_exists({REVISION})"
            )),
            values,
        )
        .await
    }

    async fn update_meta(
        &self,
        stream: &StreamKey,
        update: String,
        condition: Option<String>,
        values: Vec<(&str, aws_sdk_dynamodb::types::AttributeValue)>,
    ) -> Result<bool, DynamoError> {
        let mut backoff = Backoff::default();
        loop {
            let mut req = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(items::key(items::stream_pk(stream), TIP_SK)))
                .update_expression(&update)
                .set_condition_expression(condition.clone());
            for (k, v) in &values {
                req = req.expression_attribute_values(*k, v.clone());
            }
            match req.send().await {
                Ok(_) => return Ok(true),
                Err(SdkError::ServiceError(se)) => match se.err() {
                    UpdateItemError::ConditionalCheckFailedException(_) => return Ok(false),
                    other if other.meta().code().is_some_and(is_retryable) => {
                        if !backoff.wait().await {
                            return Err(DynamoError::Contention(backoff.attempts()));
                        }
                    }
                    _ => return Err(sdk_err("UpdateItem", SdkError::ServiceError(se))),
                },
                Err(e) => return Err(sdk_err("UpdateItem", e)),
            }
        }
    }

    /// Deletes `keys` in `BatchWriteItem` calls of 25, retrying the
    /// unprocessed ones with backoff.
    pub(crate) async fn delete_keys(&self, keys: Vec<Item>) -> Result<(), DynamoError> {
        let requests = keys
            .into_iter()
            .map(|key| {
                Ok(WriteRequest::builder()
                    .delete_request(
                        DeleteRequest::builder()
                            .set_key(Some(key))
                            .build()
                            .map_err(|e| DynamoError::request("BatchWriteItem", e))?,
                    )
                    .build())
            })
            .collect::<Result<Vec<_>, DynamoError>>()?;
        self.write_batches(&requests).await
    }

    /// Raises the first revision of the stream's listing entry at
    /// `updated` to `first`; nothing when the entry is not there (the
    /// relay has not listed that update yet, or has moved it on: it lists
    /// the tip's `f` itself).
    pub(crate) async fn set_listing_first(
        &self,
        stream: &StreamKey,
        updated: i64,
        first: u64,
    ) -> Result<(), DynamoError> {
        let f = attr::listing::FIRST;
        let mut backoff = Backoff::default();
        loop {
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(items::key(
                    items::listing_pk(&stream.stream_type),
                    items::listing_sk(updated.max(0) as u64, stream.stream_id.as_str()),
                )))
                .update_expression(format!("SET {f} = :f"))
                .condition_expression(format!(
                    "{} AND (attribute_not_exists({f}) OR {f} < :f)",
                    cond::PRESENT
                ))
                .expression_attribute_values(":f", n(first))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(()),
                Err(SdkError::ServiceError(se)) => match se.err() {
                    UpdateItemError::ConditionalCheckFailedException(_) => return Ok(()),
                    // A transaction on the item, a throttle: again, later.
                    other if other.meta().code().is_some_and(is_retryable) => {
                        if !backoff.wait().await {
                            return Err(DynamoError::Contention(backoff.attempts()));
                        }
                    }
                    _ => return Err(sdk_err("UpdateItem", SdkError::ServiceError(se))),
                },
                Err(e) => return Err(sdk_err("UpdateItem", e)),
            }
        }
    }
}
