//! The append path of [`DynamoStore`]: one `UpdateItem` of the tip when
//! nothing else is needed, the transactions that move the tip's events to
//! a chunk or write large appends, the append-id items of promise 6, and
//! the judgement of a failed condition ([`decide`]).

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use sha2::{Digest, Sha256};

use eventstore_core::idempotency::{Decision, decide};
use eventstore_core::{
    AppendOutcome, AppendRequest, EventId, Expectation, NewEvent, Revision, StoreError, StreamInfo,
    StreamKey, Timestamp,
};

use crate::codec;
use crate::error::DynamoError;
use crate::items::attr::tip::{
    BASE, CREATED, DELETED, EVENT_BYTES, EVENTS, FINGERPRINTS, FIRST, LAST_COUNT, PREVIOUS_UPDATE,
    REVISION, UPDATED,
};
use crate::items::{self, AppendId, Chunk, Item, TIP_SK, Tip, n};
use crate::retry::{Backoff, is_retryable};
use crate::store::{DynamoStore, sdk_err};

mod per_append;

/// Most bytes of event blobs the tip holds; an append that would pass it
/// moves the tip's events to a chunk item.
pub const TIP_BYTES: usize = 640;
/// Fingerprints of at least this many recent events stay in the tip.
pub const ID_WINDOW: usize = 16;
/// The tip holds at most this many fingerprints before they are trimmed
/// (the last append's are always kept, so up to 100 + [`ID_WINDOW`]).
pub const ID_CAP: usize = 48;
/// Most bytes of event blobs in one chunk item, far below DynamoDB's 400 KB
/// item limit (one event is at most 256 KiB of JSON plus a few bytes).
pub const CHUNK_BYTES: usize = 350 * 1024;

/// The `ClientRequestToken` of one transaction attempt: a hash of
/// everything its parameters are built from — the request's event ids, the
/// tip state it was built on (revision and base; the tip's content follows
/// from them), whether that tip was assumed, and the commit time written
/// into the items. So the SDK's own retries of an attempt (the same bytes)
/// are deduplicated by DynamoDB within its 10-minute window, and no two
/// attempts with different parameters ever share a token (DynamoDB would
/// refuse the second with `IdempotentParameterMismatchException`).
pub fn request_token(
    ids: &[EventId],
    tip_revision: u64,
    tip_base: u64,
    assumed: bool,
    now: Timestamp,
) -> String {
    let mut h = Sha256::new();
    for id in ids {
        h.update(id.as_uuid().as_bytes());
    }
    h.update(tip_revision.to_be_bytes());
    h.update(tip_base.to_be_bytes());
    h.update([u8::from(assumed)]);
    h.update(now.as_micros().to_be_bytes());
    let digest = h.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a `TransactWriteItems` error says that the attempt's token is
/// taken (by an attempt still in flight, or, which the tokens above rule
/// out, by one with other parameters): the attempt is then started again
/// from a fresh read of the tip, with a new token.
fn token_taken(code: Option<&str>) -> bool {
    matches!(
        code,
        Some("IdempotentParameterMismatchException" | "IdempotentParameterMismatch")
            | Some("TransactionInProgressException")
    )
}

/// The condition on the tip that encodes an expectation.
fn expectation_condition(expectation: Expectation, values: &mut Item) -> Option<String> {
    match expectation {
        Expectation::Exact(r) if r.get() > 0 => {
            values.insert(":expected".into(), n(r.get()));
            Some(format!("{REVISION} = :expected"))
        }
        Expectation::Exact(_) | Expectation::NoStream => {
            Some(format!("attribute_not_exists({REVISION})"))
        }
        Expectation::Exists => Some(format!("attribute_exists({REVISION})")),
        Expectation::Any => None,
    }
}

/// Conditions that no request id's fingerprint is among the tip's recent ones.
fn fingerprint_conditions(fps: &[[u8; 4]], values: &mut Item) -> Vec<String> {
    fps.iter()
        .enumerate()
        .map(|(i, fp)| {
            values.insert(format!(":f{i}"), items::b(fp.to_vec()));
            format!("NOT contains({FINGERPRINTS}, :f{i})")
        })
        .collect()
}

/// Whether an append with this expectation reads the tip and its
/// append-id item before it writes (promise 6: a request whose ids are
/// already stored is never stored again).
///
/// - `any`/`exists`: always. Such a retry passes its condition once its
///   ids have left the tip's fingerprint window; only the append-id item
///   stops it.
/// - An integer above [`ID_WINDOW`]: the same holds for an old append
///   resent at the current revision (a client that re-read the revision).
/// - `no-stream`, or an integer up to [`ID_WINDOW`]: never. The stream
///   then holds no event (its condition fails otherwise) or at most
///   [`ID_WINDOW`] events, and the tip keeps the fingerprints of at least
///   its last [`ID_WINDOW`] events, so the one `UpdateItem`'s
///   fingerprint conditions see every stored id.
fn checks_append_id(expectation: Expectation) -> bool {
    match expectation {
        Expectation::Any | Expectation::Exists => true,
        Expectation::Exact(r) => r.get() > ID_WINDOW as u64,
        Expectation::NoStream => false,
    }
}

/// The revisions an existing append-id item names.
fn stored_range(item: &Item) -> Result<(u64, u64), DynamoError> {
    let id = AppendId::from_item(item)?;
    Ok((id.first, id.last()))
}

/// Splits events into groups whose blobs stay under [`CHUNK_BYTES`].
fn split_chunks(events: &[NewEvent]) -> Vec<&[NewEvent]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut size = codec::BLOB_HEADER;
    for (i, e) in events.iter().enumerate() {
        let len = codec::encoded_len(e);
        if i > start && size + len > CHUNK_BYTES {
            out.push(&events[start..i]);
            start = i;
            size = codec::BLOB_HEADER;
        }
        size += len;
    }
    out.push(&events[start..]);
    out
}

enum Attempt {
    Done(AppendOutcome),
    /// The append-id item exists: these ids were appended before, at
    /// `first ..= last`.
    Stored {
        first: u64,
        last: u64,
    },
    /// The condition failed; the tip as it was (None: no stream).
    Failed(Option<Tip>),
    /// The tip (None: no stream), read in one transaction with the
    /// append-id item of the request's ids, which does not exist.
    Checked(Option<Tip>),
    /// A transient conflict; try again after a pause.
    Conflict,
}

/// What putting an append-id item came to ([`DynamoStore::put_append_id`]).
enum PutId {
    /// Written: it names the revisions given.
    Written,
    /// The condition failed: the item as it is (`first`, `last`), or
    /// `None` when it is gone.
    Found(Option<(u64, u64)>),
    /// A transient conflict.
    Conflict,
}

/// What claiming an append-id item before a large append found.
enum Claim {
    /// The item names the revisions this append is about to take.
    Claimed,
    /// These ids are stored at `first ..= last`.
    Stored { first: u64, last: u64 },
    /// A transient conflict; try again after a pause.
    Conflict,
}

impl DynamoStore {
    /// Tells the relay's progress in this process (if any) that `stream`
    /// holds an append up to `last`: written now, or found written before
    /// (a retry answered with the original revisions, after a lost answer
    /// perhaps). Listings read later wait until the relay has indexed it,
    /// so a writer reads its own appends in them either way.
    fn note_committed(&self, stream: &StreamKey, last: Revision) {
        if let Some(p) = &self.progress {
            p.committed(stream, last.get());
        }
    }

    async fn locate_ids(
        &self,
        stream: &StreamKey,
        tip: &Tip,
        expectation: Expectation,
        ids: &[EventId],
    ) -> Result<Vec<Option<Revision>>, DynamoError> {
        let mut known: HashMap<EventId, u64> = HashMap::new();
        for (rev, e) in tip.events()? {
            known.insert(e.event_id, rev);
        }
        let n_ids = ids.len() as u64;
        // The revisions a retry of this request would occupy.
        let base = match expectation.pinned() {
            Some(b) => Some(b.get()),
            None => tip.revision.checked_sub(n_ids),
        };
        // The fingerprints are those of the last revisions, in order.
        let window_start = (tip.revision + 1).saturating_sub(tip.fingerprints.len() as u64);
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        if let Some(base) = base
            && base < tip.revision
            && base + 1 < window_start
        {
            // A candidate range inside the fingerprint window holds one of
            // the ids only where a fingerprint matches (the hits below):
            // no need to read it (a large append's events are in chunks).
            ranges.push((base + 1, (base + n_ids).min(tip.revision)));
        }
        // Revisions whose fingerprint matches one of the request's ids.
        let wanted: Vec<[u8; 4]> = ids.iter().map(codec::fingerprint).collect();
        let hits: Vec<u64> = tip
            .fingerprints
            .iter()
            .enumerate()
            .filter(|(_, fp)| wanted.iter().any(|w| w.as_slice() == fp.as_slice()))
            .map(|(i, _)| window_start + i as u64)
            .filter(|rev| *rev > 0)
            .collect();
        if let (Some(lo), Some(hi)) = (hits.iter().min(), hits.iter().max()) {
            ranges.push((*lo, *hi));
        }
        for (lo, hi) in ranges {
            if lo > tip.base && hi <= tip.revision {
                continue; // already known from the tip's events
            }
            for e in self.read_range(stream, tip, lo, hi).await? {
                known.insert(e.event_id, e.revision.get());
            }
        }
        if tip.first_kept() > 1 && ids.iter().any(|id| !known.contains_key(id)) {
            // The ids may sit below a truncation's bound, where only their
            // append-id item is left.
            if let Some((first, last)) = self.read_append_id(tip.per_append, stream, ids).await?
                && first < tip.first_kept()
                && self.holds(stream, tip, ids, first, last).await?
            {
                for (id, rev) in ids.iter().zip(first..) {
                    known.insert(*id, rev);
                }
            }
        }
        Ok(ids
            .iter()
            .map(|id| known.get(id).map(|r| Revision::new(*r)))
            .collect())
    }

    /// Reads the tip and the append-id item of `ids` in one
    /// `TransactGetItems` (a consistent snapshot of both). Appends leave
    /// the tip only after their append-id items are written (see
    /// [`Self::put_append_ids`]), so when the item is absent the ids are
    /// stored nowhere but, perhaps, among the tip's own events; a write
    /// conditioned on this tip's revision and base is then airtight.
    async fn read_checked(
        &self,
        stream: &StreamKey,
        ids: &[EventId],
    ) -> Result<Attempt, DynamoError> {
        use aws_sdk_dynamodb::types::{Get, TransactGetItem};
        let get = |sk: String| -> Result<TransactGetItem, DynamoError> {
            Ok(TransactGetItem::builder()
                .get(
                    Get::builder()
                        .table_name(&self.table)
                        .set_key(Some(items::key(items::stream_pk(stream), sk)))
                        .build()
                        .map_err(|e| DynamoError::request("TransactGetItems", e))?,
                )
                .build())
        };
        let mut backoff = Backoff::default();
        loop {
            let result = self
                .client
                .transact_get_items()
                .transact_items(get(TIP_SK.into())?)
                .transact_items(get(items::append_id_sk(ids))?)
                .send()
                .await;
            match result {
                Ok(out) => {
                    let responses = out.responses();
                    let item = |i: usize| responses.get(i).and_then(|r| r.item());
                    let tip = item(0).map(Tip::from_item).transpose()?.flatten();
                    if let Some(id_item) = item(1) {
                        let (first, last) = stored_range(id_item)?;
                        if let Some(t) = &tip
                            && self.holds(stream, t, ids, first, last).await?
                        {
                            return Ok(Attempt::Stored { first, last });
                        }
                        // A claim whose append was never stored there (see
                        // `claim_append_id`): the ids are stored nowhere.
                    }
                    return Ok(Attempt::Checked(tip));
                }
                // A transaction writing one of the items meanwhile cancels
                // the read: read again.
                Err(SdkError::ServiceError(se))
                    if matches!(
                        se.err(),
                        aws_sdk_dynamodb::operation::transact_get_items::TransactGetItemsError::TransactionCanceledException(_)
                    ) || se.err().meta().code().is_some_and(is_retryable) =>
                {
                    if !backoff.wait().await {
                        return Err(DynamoError::Contention(backoff.attempts()));
                    }
                }
                Err(e) => return Err(sdk_err("TransactGetItems", e)),
            }
        }
    }

    /// Writes the append-id items of the appends held in the tip's event
    /// list (one blob per append), before a transaction moves them to a
    /// chunk: an append's events are always in the tip, or its append-id
    /// item exists. The items name appends already stored, so writing them
    /// early (a transaction that then loses a race) or twice (the same
    /// content) is harmless. One `BatchWriteItem` per 25 items, 1 WCU each.
    pub(crate) async fn put_append_ids(
        &self,
        stream: &StreamKey,
        tip: &Tip,
    ) -> Result<(), DynamoError> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        let mut requests = Vec::with_capacity(tip.blobs.len());
        let mut first = tip.base + 1;
        for blob in &tip.blobs {
            let ids: Vec<EventId> = codec::decode(blob)?.iter().map(|e| e.event_id).collect();
            if ids.is_empty() {
                continue;
            }
            let item = AppendId {
                first,
                count: ids.len() as u64,
            }
            .to_item(stream, &ids);
            first += ids.len() as u64;
            requests.push(
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(item))
                            .build()
                            .map_err(|e| DynamoError::request("BatchWriteItem", e))?,
                    )
                    .build(),
            );
        }
        self.write_batches(&requests).await
    }

    /// Writes `requests` 25 to a `BatchWriteItem` (its limit), retrying
    /// the unprocessed ones with backoff.
    pub(crate) async fn write_batches(
        &self,
        requests: &[aws_sdk_dynamodb::types::WriteRequest],
    ) -> Result<(), DynamoError> {
        for group in requests.chunks(25) {
            let mut pending = group.to_vec();
            let mut backoff = Backoff::default();
            while !pending.is_empty() {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, pending)
                    .send()
                    .await
                    .map_err(|e| sdk_err("BatchWriteItem", e))?;
                pending = out
                    .unprocessed_items()
                    .and_then(|m| m.get(&self.table))
                    .cloned()
                    .unwrap_or_default();
                if !pending.is_empty() && !backoff.wait().await {
                    return Err(DynamoError::Contention(backoff.attempts()));
                }
            }
        }
        Ok(())
    }

    /// Whether the stream whose tip is `tip` holds exactly `ids` at
    /// `first ..= last` (what an append-id item names).
    async fn holds(
        &self,
        stream: &StreamKey,
        tip: &Tip,
        ids: &[EventId],
        first: u64,
        last: u64,
    ) -> Result<bool, DynamoError> {
        if last + 1 - first != ids.len() as u64 || last > tip.revision || tip.deleted.is_some() {
            return Ok(false);
        }
        // Revisions a truncation removed cannot be compared: the item is
        // believed for them (it holds no payload and outlives them so that
        // a late retry of a truncated append is recognised).
        let kept_from = first.max(tip.first_kept());
        if kept_from > last {
            return Ok(true);
        }
        let stored = self.read_range(stream, tip, kept_from, last).await?;
        let kept_ids = &ids[(kept_from - first) as usize..];
        Ok(stored.len() == kept_ids.len()
            && stored.iter().zip(kept_ids).all(|(e, id)| e.event_id == *id))
    }

    /// Puts the append-id item of `ids` naming `first ..` (of a stream of
    /// append items when `per_append`), with `attribute_not_exists`, or,
    /// when `named`, moving an item that names that revision. On a failed
    /// condition, what the item names: from the answer, else read.
    async fn put_append_id(
        &self,
        per_append: bool,
        stream: &StreamKey,
        ids: &[EventId],
        first: u64,
        named: Option<u64>,
    ) -> Result<PutId, DynamoError> {
        use crate::items::attr::append_id::FIRST;
        let item = AppendId {
            first,
            count: ids.len() as u64,
        }
        .to_item_of(per_append, stream, ids);
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        put = match named {
            Some(f) => put
                .condition_expression(format!("{FIRST} = :f0"))
                .expression_attribute_values(":f0", n(f)),
            None => put.condition_expression(items::cond::ABSENT),
        };
        let found = match put.send().await {
            Ok(_) => return Ok(PutId::Written),
            Err(SdkError::ServiceError(se)) => match se.err() {
                PutItemError::ConditionalCheckFailedException(c) => {
                    c.item().map(stored_range).transpose()?
                }
                other if other.meta().code().is_some_and(is_retryable) => {
                    return Ok(PutId::Conflict);
                }
                _ => return Err(sdk_err("PutItem", SdkError::ServiceError(se))),
            },
            Err(e) => return Err(sdk_err("PutItem", e)),
        };
        if found.is_some() {
            return Ok(PutId::Found(found));
        }
        Ok(PutId::Found(
            self.read_append_id(per_append, stream, ids).await?,
        ))
    }

    /// The revisions the append-id item of `ids` names (one consistent
    /// `GetItem`); `None` when there is none.
    async fn read_append_id(
        &self,
        per_append: bool,
        stream: &StreamKey,
        ids: &[EventId],
    ) -> Result<Option<(u64, u64)>, DynamoError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(items::key(
                items::stream_pk(stream),
                items::id_sk(per_append, ids),
            )))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_err("GetItem", e))?;
        out.item().map(stored_range).transpose()
    }

    /// Claims the append-id item of a large append (its events go
    /// straight to chunk items) before the transaction that writes them,
    /// as a plain conditional `PutItem` (1 WCU, where a `Put` inside the
    /// transaction cost 2). The item names the revisions `first ..` the
    /// append is about to take; the transaction may then fail (another
    /// append took them, or the expectation fails), leaving a claim that
    /// names revisions holding other events, or none yet. So a found item
    /// is believed only when the stream holds exactly these ids there
    /// ([`Self::holds`]); otherwise the ids are stored nowhere — events
    /// with these ids are only ever written at the revisions the item
    /// names when the writer decides, and the item never moves away from
    /// the stream's next revision (a twin may be about to write there) —
    /// and the item is moved to this attempt's revisions with a `PutItem`
    /// conditioned on what was read.
    /// A twin of this request in flight to the same revisions is settled
    /// by the tip's condition in the transaction: one wins, the other
    /// finds its ids among the tip's fingerprints.
    async fn claim_append_id(
        &self,
        stream: &StreamKey,
        ids: &[EventId],
        first: u64,
    ) -> Result<Claim, DynamoError> {
        let mut named: Option<u64> = None;
        for _ in 0..12 {
            let existing = match self.put_append_id(false, stream, ids, first, named).await? {
                PutId::Written => return Ok(Claim::Claimed),
                PutId::Conflict => return Ok(Claim::Conflict),
                PutId::Found(range) => range,
            };
            let Some((f0, l0)) = existing else {
                // Gone between the put and the read (it is never deleted,
                // so only a test's table reset does that): claim afresh.
                named = None;
                continue;
            };
            if f0 == first && l0 + 1 - f0 == ids.len() as u64 {
                // It names these very revisions (a lost answer retried by
                // the SDK, or a twin's claim): go on.
                return Ok(Claim::Claimed);
            }
            let tip = self.get_tip(stream).await?;
            if let Some(t) = &tip
                && self.holds(stream, t, ids, f0, l0).await?
            {
                return Ok(Claim::Stored {
                    first: f0,
                    last: l0,
                });
            }
            if f0 == tip.as_ref().map_or(0, |t| t.revision) + 1 {
                // It names the stream's next revision: a twin may be on its
                // way to write there, so the item stays; this attempt was
                // built on an older tip and starts again from a fresh one.
                return Ok(Claim::Conflict);
            }
            // Other events took those revisions (or the claim was made for
            // an expectation ahead of the stream, which failed): the ids
            // are stored nowhere, and the item moves to this attempt.
            named = Some(f0);
        }
        Ok(Claim::Conflict)
    }

    /// The fast path: one `UpdateItem` of the tip.
    async fn try_tip_update(
        &self,
        request: &AppendRequest,
        blob: Vec<u8>,
        now: Timestamp,
    ) -> Result<Attempt, DynamoError> {
        let stream = request.stream();
        let k = request.events().len() as u64;
        let fps: Vec<[u8; 4]> = request.event_ids().iter().map(codec::fingerprint).collect();
        let mut values = Item::new();
        let mut conds = Vec::new();
        if let Some(c) = expectation_condition(request.expectation(), &mut values) {
            conds.push(c);
        }
        conds.push(format!("attribute_not_exists({DELETED})"));
        conds.push(format!(
            "(attribute_not_exists({EVENT_BYTES}) OR {EVENT_BYTES} <= :zroom)"
        ));
        conds.push(format!(
            "(attribute_not_exists({FINGERPRINTS}) OR size({FINGERPRINTS}) <= :xroom)"
        ));
        conds.extend(fingerprint_conditions(&fps, &mut values));
        values.insert(":zroom".into(), n(TIP_BYTES - blob.len()));
        values.insert(":xroom".into(), n(ID_CAP.saturating_sub(fps.len())));
        values.insert(":zero".into(), n(0));
        values.insert(":k".into(), n(k));
        values.insert(":now".into(), n(now.as_micros()));
        values.insert(":nil".into(), AttributeValue::L(vec![]));
        values.insert(":bytes".into(), n(blob.len()));
        values.insert(":blob".into(), items::blob_list([blob]));
        values.insert(
            ":fps".into(),
            items::blob_list(fps.iter().map(|f| f.to_vec())),
        );
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(items::key(items::stream_pk(stream), TIP_SK)))
            .update_expression(format!(
                "SET {REVISION} = if_not_exists({REVISION}, :zero) + :k, \
                 {BASE} = if_not_exists({BASE}, :zero), \
                 {CREATED} = if_not_exists({CREATED}, :now), \
                 {PREVIOUS_UPDATE} = if_not_exists({UPDATED}, :zero), {UPDATED} = :now, \
                 {LAST_COUNT} = :k, \
                 {EVENTS} = list_append(if_not_exists({EVENTS}, :nil), :blob), \
                 {EVENT_BYTES} = if_not_exists({EVENT_BYTES}, :zero) + :bytes, \
                 {FINGERPRINTS} = list_append(if_not_exists({FINGERPRINTS}, :nil), :fps)"
            ))
            .condition_expression(conds.join(" AND "))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let tip = out
                    .attributes()
                    .map(Tip::from_item)
                    .transpose()?
                    .flatten()
                    .ok_or_else(|| DynamoError::Corrupt("UpdateItem returned no tip".into()))?;
                Ok(Attempt::Done(AppendOutcome {
                    stream: tip.info(stream),
                    first_revision: Revision::new(tip.revision - k + 1),
                    last_revision: Revision::new(tip.revision),
                    first_position: None,
                    already_appended: false,
                }))
            }
            Err(SdkError::ServiceError(se)) => match se.err() {
                UpdateItemError::ConditionalCheckFailedException(c) => Ok(Attempt::Failed(
                    c.item().map(Tip::from_item).transpose()?.flatten(),
                )),
                other if other.meta().code().is_some_and(is_retryable) => Ok(Attempt::Conflict),
                _ => Err(sdk_err("UpdateItem", SdkError::ServiceError(se))),
            },
            Err(e) => Err(sdk_err("UpdateItem", e)),
        }
    }

    /// The transactional path, built on a known tip (`None`: no stream).
    /// Moves the tip's events to a chunk when needed and writes large
    /// appends as chunk items.
    async fn try_transaction(
        &self,
        request: &AppendRequest,
        tip: Option<&Tip>,
        assumed: bool,
        now: Timestamp,
    ) -> Result<Attempt, DynamoError> {
        let stream = request.stream();
        let pk = items::stream_pk(stream);
        let events = request.events();
        let k = events.len() as u64;
        let old_rev = tip.map_or(0, |t| t.revision);
        let new_rev = old_rev + k;
        let mut writes: Vec<TransactWriteItem> = Vec::new();
        let put = |item: Item| -> Result<TransactWriteItem, DynamoError> {
            Ok(TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(item))
                        .build()
                        .map_err(|e| DynamoError::request("TransactWriteItems", e))?,
                )
                .build())
        };
        let chunk = |first: u64, last: u64, blobs: Vec<Vec<u8>>| {
            Chunk { first, last, blobs }.to_item(stream)
        };
        let new_blob = codec::encode(now, events);
        // While the tip has room, the new events join the tip's.
        let keep_tip = tip.filter(|t| {
            !assumed && t.blobs.iter().map(Vec::len).sum::<usize>() + new_blob.len() <= TIP_BYTES
        });
        // Otherwise the tip's events move to a chunk, after their
        // append-id items are written.
        if let Some(t) = tip
            && !assumed
            && keep_tip.is_none()
            && !t.blobs.is_empty()
        {
            self.put_append_ids(stream, t).await?;
            writes.push(put(chunk(t.base + 1, t.revision, t.blobs.clone()))?);
        }
        let (tip_blobs, tip_base) = if let Some(t) = keep_tip {
            let mut blobs = t.blobs.clone();
            blobs.push(new_blob);
            (blobs, t.base)
        } else if new_blob.len() <= TIP_BYTES {
            (vec![new_blob], old_rev)
        } else {
            let mut first = old_rev + 1;
            for group in split_chunks(events) {
                let last = first + group.len() as u64 - 1;
                writes.push(put(chunk(first, last, vec![codec::encode(now, group)]))?);
                first = last + 1;
            }
            (Vec::new(), new_rev)
        };
        let in_chunks = tip_blobs.is_empty();
        // createdAt: the tip's, when it was read; `now` when the stream is
        // new (also on an assumed empty tip at revision 0, which the
        // condition requires not to exist, so `c` is set to `now`).
        let created = match tip {
            Some(t) if !(assumed && t.revision == 0) => t.created,
            _ => now.as_micros(),
        };
        let bytes: usize = tip_blobs.iter().map(Vec::len).sum();
        let tip_key = items::key(&pk, TIP_SK);
        let tip_write = if assumed {
            // Built on an assumed empty tip at the pinned revision: the
            // condition checks it, the id window is kept and extended.
            let mut values = Item::new();
            let mut conds: Vec<String> = expectation_condition(request.expectation(), &mut values)
                .into_iter()
                .collect();
            conds.push(format!("attribute_not_exists({DELETED})"));
            conds.push(format!(
                "(attribute_not_exists({EVENT_BYTES}) OR {EVENT_BYTES} = :zero)"
            ));
            conds.push(format!(
                "(attribute_not_exists({FINGERPRINTS}) OR size({FINGERPRINTS}) <= :xroom)"
            ));
            let ids: Vec<[u8; 4]> = request.event_ids().iter().map(codec::fingerprint).collect();
            conds.extend(fingerprint_conditions(&ids, &mut values));
            values.insert(":zero".into(), n(0));
            values.insert(":xroom".into(), n(ID_CAP.saturating_sub(ids.len())));
            values.insert(":r".into(), n(new_rev));
            values.insert(":k".into(), n(k));
            values.insert(":now".into(), n(now.as_micros()));
            values.insert(":nil".into(), AttributeValue::L(vec![]));
            values.insert(":e".into(), items::blob_list(tip_blobs));
            values.insert(":z".into(), n(bytes));
            values.insert(":b".into(), n(tip_base));
            values.insert(
                ":fps".into(),
                items::blob_list(ids.iter().map(|f| f.to_vec())),
            );
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(tip_key))
                        .update_expression(format!(
                            "SET {REVISION} = :r, {BASE} = :b, \
                             {CREATED} = if_not_exists({CREATED}, :now), \
                             {PREVIOUS_UPDATE} = if_not_exists({UPDATED}, :zero), \
                             {UPDATED} = :now, {LAST_COUNT} = :k, {EVENTS} = :e, \
                             {EVENT_BYTES} = :z, \
                             {FINGERPRINTS} = list_append(if_not_exists({FINGERPRINTS}, :nil), :fps)"
                        ))
                        .condition_expression(conds.join(" AND "))
                        .set_expression_attribute_values(Some(values))
                        .return_values_on_condition_check_failure(
                            ReturnValuesOnConditionCheckFailure::AllOld,
                        )
                        .build()
                        .map_err(|e| DynamoError::request("TransactWriteItems", e))?,
                )
                .build()
        } else {
            let mut fps: Vec<Vec<u8>> = tip.map(|t| t.fingerprints.clone()).unwrap_or_default();
            fps.extend(
                request
                    .event_ids()
                    .iter()
                    .map(|id| codec::fingerprint(id).to_vec()),
            );
            let keep = ID_WINDOW.max(events.len());
            let fps = fps.split_off(fps.len().saturating_sub(keep));
            let item = Tip {
                revision: new_rev,
                base: tip_base,
                created,
                updated: now.as_micros(),
                blobs: tip_blobs,
                fingerprints: fps,
                first: tip.and_then(|t| t.first),
                deleted: None,
                per_append: false,
            }
            .to_item(stream, tip.map_or(0, |t| t.updated), k);
            let mut cond = Put::builder().table_name(&self.table).set_item(Some(item));
            // Built on the tip as read: not deleted since, nor truncated
            // (a truncation rewrites the tip's events and its `f`).
            cond = match tip {
                Some(t) => {
                    let c = cond
                        .expression_attribute_values(":r", n(t.revision))
                        .expression_attribute_values(":b", n(t.base));
                    match t.first {
                        Some(f) => c
                            .condition_expression(format!(
                                "{REVISION} = :r AND {BASE} = :b AND \
                                 attribute_not_exists({DELETED}) AND {FIRST} = :f"
                            ))
                            .expression_attribute_values(":f", n(f)),
                        None => c.condition_expression(format!(
                            "{REVISION} = :r AND {BASE} = :b AND \
                             attribute_not_exists({DELETED}) AND attribute_not_exists({FIRST})"
                        )),
                    }
                }
                None => cond.condition_expression(items::cond::ABSENT),
            };
            TransactWriteItem::builder()
                .put(
                    cond.return_values_on_condition_check_failure(
                        ReturnValuesOnConditionCheckFailure::AllOld,
                    )
                    .build()
                    .map_err(|e| DynamoError::request("TransactWriteItems", e))?,
                )
                .build()
        };
        let tip_index = writes.len();
        writes.push(tip_write);
        // New events written straight to chunks never pass through the
        // tip: their append-id item is claimed before the transaction.
        if in_chunks {
            match self
                .claim_append_id(stream, &request.event_ids(), old_rev + 1)
                .await?
            {
                Claim::Claimed => {}
                Claim::Stored { first, last } => return Ok(Attempt::Stored { first, last }),
                Claim::Conflict => return Ok(Attempt::Conflict),
            }
        }
        // An append built on an assumed tip does not know a truncation's
        // bound: it answers 1 there (reads and details know it).
        let first_kept = tip.map_or(1, Tip::first_kept);
        let done = |created: i64| AppendOutcome {
            stream: StreamInfo {
                stream_id: stream.stream_id.clone(),
                stream_type: stream.stream_type.clone(),
                revision: Revision::new(new_rev),
                first_revision: Revision::new(first_kept),
                updated_at: now,
                created_at: Timestamp::from_micros(created),
            },
            first_revision: Revision::new(old_rev + 1),
            last_revision: Revision::new(new_rev),
            first_position: None,
            already_appended: false,
        };
        if !assumed
            && let [only] = writes.as_slice()
            && let Some(tip_put) = only.put()
        {
            // Only the tip changes: a conditional `PutItem` (1 WCU) instead
            // of a transaction (2 WCU per KB).
            return self.put_tip(stream, tip_put, done(created)).await;
        }
        let token = request_token(
            &request.event_ids(),
            old_rev,
            tip.map_or(0, |t| t.base),
            assumed,
            now,
        );
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .client_request_token(token)
            .send()
            .await;
        match result {
            Ok(_) => {
                let created = if assumed && old_rev > 0 {
                    // createdAt is not known on this path: from this process's
                    // cache, else read back (it never changes).
                    let cached = self.created.lock().expect("poisoned").get(stream).copied();
                    match cached {
                        Some(c) => c,
                        None => {
                            self.get_tip(stream)
                                .await?
                                .ok_or_else(|| {
                                    DynamoError::Corrupt("the tip vanished after an append".into())
                                })?
                                .created
                        }
                    }
                } else {
                    created
                };
                Ok(Attempt::Done(done(created)))
            }
            Err(SdkError::ServiceError(se)) => match se.err() {
                TransactWriteItemsError::TransactionCanceledException(c) => {
                    let reasons = c.cancellation_reasons();
                    let tip_reason = reasons.get(tip_index);
                    if tip_reason.and_then(|r| r.code()) == Some("ConditionalCheckFailed") {
                        let old = tip_reason
                            .and_then(|r| r.item())
                            .map(Tip::from_item)
                            .transpose()?
                            .flatten();
                        // moto and DynamoDB both return the old item; fall
                        // back to a read when it is missing.
                        return match old {
                            Some(t) => Ok(Attempt::Failed(Some(t))),
                            None => Ok(Attempt::Failed(self.get_tip(stream).await?)),
                        };
                    }
                    if reasons.iter().any(|r| r.code().is_some_and(is_retryable)) {
                        return Ok(Attempt::Conflict);
                    }
                    Err(sdk_err("TransactWriteItems", SdkError::ServiceError(se)))
                }
                other
                    if other.meta().code().is_some_and(is_retryable)
                        || token_taken(other.meta().code()) =>
                {
                    Ok(Attempt::Conflict)
                }
                _ => Err(sdk_err("TransactWriteItems", SdkError::ServiceError(se))),
            },
            Err(e) => Err(sdk_err("TransactWriteItems", e)),
        }
    }

    /// Writes the tip alone with a conditional `PutItem` (the transaction
    /// path's tip `Put`, when nothing else changes). A lost answer retried
    /// by the SDK meets its own condition and is recognised from the tip's
    /// events.
    async fn put_tip(
        &self,
        stream: &StreamKey,
        tip_put: &Put,
        outcome: AppendOutcome,
    ) -> Result<Attempt, DynamoError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(tip_put.item().clone()))
            .set_condition_expression(tip_put.condition_expression().map(str::to_string))
            .set_expression_attribute_values(tip_put.expression_attribute_values().cloned())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Attempt::Done(outcome)),
            Err(SdkError::ServiceError(se)) => match se.err() {
                PutItemError::ConditionalCheckFailedException(c) => match c.item() {
                    Some(item) => Ok(Attempt::Failed(Tip::from_item(item)?)),
                    None => Ok(Attempt::Failed(self.get_tip(stream).await?)),
                },
                other if other.meta().code().is_some_and(is_retryable) => Ok(Attempt::Conflict),
                _ => Err(sdk_err("PutItem", SdkError::ServiceError(se))),
            },
            Err(e) => Err(sdk_err("PutItem", e)),
        }
    }

    pub(crate) async fn append_inner(
        &self,
        request: AppendRequest,
    ) -> Result<AppendOutcome, StoreError> {
        let stream = request.stream().clone();
        let ids = request.event_ids();
        let expectation = request.expectation();
        let mut backoff = Backoff::default();
        let first_blob_len = codec::BLOB_HEADER
            + request
                .events()
                .iter()
                .map(codec::encoded_len)
                .sum::<usize>();
        // First attempt: blind, unless a large append must know the revision.
        let mut known: Option<Option<Tip>> = None;
        // The tip's revision when the append-id item of `ids` was last
        // found absent (the checked path).
        let mut checked_at: Option<u64> = None;
        let checked = checks_append_id(expectation);
        let mut attempt = if checked {
            self.read_checked(&stream, &ids).await?
        } else if first_blob_len <= TIP_BYTES {
            self.try_tip_update(
                &request,
                codec::encode(Timestamp::now(), request.events()),
                Timestamp::now(),
            )
            .await?
        } else {
            // A large append with a pinned revision: assume an empty tip.
            let assumed = Tip {
                revision: expectation.pinned().map_or(0, |r| r.get()),
                base: expectation.pinned().map_or(0, |r| r.get()),
                ..Tip::default()
            };
            self.try_transaction(&request, Some(&assumed), true, Timestamp::now())
                .await?
        };
        loop {
            if let Attempt::Failed(Some(t)) | Attempt::Checked(Some(t)) = &attempt
                && t.deleted.is_some()
            {
                // A deleted id is never used again. An append-id item this
                // request claimed before its write failed goes with the
                // rest of the stream's items.
                self.purge_stream(&stream).await?;
                return Err(StoreError::StreamDeleted(stream));
            }
            if let Attempt::Checked(tip) = &attempt {
                checked_at = Some(tip.as_ref().map_or(0, |t| t.revision));
            }
            match attempt {
                Attempt::Stored { first, last } => {
                    // The request's ids were appended before, at
                    // `first ..= last` (their append-id item exists): a
                    // retry is answered with the original revisions; the
                    // same append resent with an integer expectation that
                    // does not name the revision before it is a duplicate
                    // (`decide`, as on every backend).
                    let tip = self.get_tip(&stream).await?.ok_or_else(|| {
                        DynamoError::Corrupt("an append-id item without a tip".into())
                    })?;
                    if tip.deleted.is_some() {
                        self.purge_stream(&stream).await?;
                        return Err(StoreError::StreamDeleted(stream));
                    }
                    if last + 1 - first != ids.len() as u64 {
                        return Err(DynamoError::Corrupt(format!(
                            "stream {stream}: an append-id item names {first}..={last} \
                             for {} events",
                            ids.len()
                        ))
                        .into());
                    }
                    let found: Vec<Option<Revision>> =
                        (first..=last).map(|r| Some(Revision::new(r))).collect();
                    match decide(expectation, Revision::new(tip.revision), &ids, &found)? {
                        Decision::AlreadyAppended { first, last } => {
                            self.note_committed(&stream, last);
                            return Ok(AppendOutcome {
                                stream: tip.info(&stream),
                                first_revision: first,
                                last_revision: last,
                                first_position: None,
                                already_appended: true,
                            });
                        }
                        Decision::Write => {
                            return Err(DynamoError::Corrupt("stored ids judged new".into()).into());
                        }
                    }
                }
                Attempt::Done(outcome) => {
                    {
                        let mut cache = self.created.lock().expect("poisoned");
                        if cache.len() > 100_000 {
                            cache.clear();
                        }
                        cache.insert(stream.clone(), outcome.stream.created_at.as_micros());
                    }
                    self.note_committed(&stream, outcome.last_revision);
                    return Ok(outcome);
                }
                Attempt::Conflict => {
                    if !backoff.wait().await {
                        return Err(DynamoError::Contention(backoff.attempts()).into());
                    }
                    known = None;
                    attempt = if checked {
                        self.read_checked(&stream, &ids).await?
                    } else {
                        Attempt::Failed(self.get_tip(&stream).await?)
                    };
                    continue;
                }
                Attempt::Failed(tip)
                    if checked
                        && !checked_at.is_some_and(|at| {
                            tip.as_ref()
                                .is_some_and(|t| t.revision <= at + ID_WINDOW as u64)
                        }) =>
                {
                    // The tip moved by more than the fingerprint window
                    // since the append-id item was found absent: both are
                    // read again. (Within the window, the tip handed back
                    // by the failed condition is enough: a copy of these
                    // ids stored since then is among its fingerprints.)
                    attempt = self.read_checked(&stream, &ids).await?;
                    continue;
                }
                Attempt::Failed(tip) | Attempt::Checked(tip) => {
                    let current = tip.as_ref().map_or(0, |t| t.revision);
                    let found = match &tip {
                        Some(t) => self.locate_ids(&stream, t, expectation, &ids).await?,
                        None => vec![None; ids.len()],
                    };
                    match decide(expectation, Revision::new(current), &ids, &found)? {
                        Decision::AlreadyAppended { first, last } => {
                            let tip = tip.expect("ids found in an existing stream");
                            self.note_committed(&stream, last);
                            return Ok(AppendOutcome {
                                stream: tip.info(&stream),
                                first_revision: first,
                                last_revision: last,
                                first_position: None,
                                already_appended: true,
                            });
                        }
                        Decision::Write => {
                            if let Some(prev) = &known
                                && prev.as_ref().map(|t| (t.revision, t.base))
                                    == tip.as_ref().map(|t| (t.revision, t.base))
                                && !backoff.wait().await
                            {
                                return Err(DynamoError::Contention(backoff.attempts()).into());
                            }
                            attempt = self
                                .try_transaction(&request, tip.as_ref(), false, Timestamp::now())
                                .await?;
                            known = Some(tip);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_tokens_depend_on_ids_and_tip_and_fit_the_limit() {
        let ids = [EventId::generate(), EventId::generate()];
        let now = Timestamp::from_micros(1_700_000_000_000_000);
        let t = request_token(&ids, 3, 1, false, now);
        assert_eq!(t.len(), 32, "ClientRequestToken is at most 36 characters");
        assert_eq!(t, request_token(&ids, 3, 1, false, now));
        assert_ne!(t, request_token(&ids, 4, 1, false, now));
        assert_ne!(t, request_token(&ids[..1], 3, 1, false, now));
        assert_ne!(t, request_token(&ids, 3, 1, true, now));
        let later = Timestamp::from_micros(now.as_micros() + 1);
        assert_ne!(
            t,
            request_token(&ids, 3, 1, false, later),
            "another commit time is another parameter set, so another token"
        );
    }

    #[test]
    fn large_appends_split_into_chunks_under_the_item_limit() {
        let big = "x".repeat(256 * 1024 - 2);
        let events: Vec<NewEvent> = (0..4)
            .map(|_| {
                NewEvent::new(
                    eventstore_core::EventType::parse("big").unwrap(),
                    eventstore_core::JsonValue::from_text(format!("\"{big}\"")).unwrap(),
                )
            })
            .collect();
        let groups = split_chunks(&events);
        assert_eq!(groups.len(), 4);
        for g in groups {
            let size = codec::BLOB_HEADER + g.iter().map(codec::encoded_len).sum::<usize>();
            assert!(size <= 400 * 1024 - 1024, "a chunk stays under 400 KB");
        }
    }
}
