//! The append path of streams whose appends are items of their own
//! ([`AppendItem`]; docs/dynamodb.md, "Append items").
//!
//! An append reads the stream's head (one `Query`), judges the request
//! against it ([`decide`], with the head's fingerprints and the retry
//! candidate range), claims its append-id item (a `PutItem` with
//! `attribute_not_exists`, naming the revisions it is about to take), then
//! puts its item at the revision after the head with
//! `attribute_not_exists`: that put is the commit point. No item is ever
//! rewritten, so the items' keys are the stream's revisions without gap or
//! overlap: a writer takes `N + 1` only after reading that the newest item
//! ends at `N`, and exactly one put at a key succeeds.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem};

use eventstore_core::idempotency::{Decision, decide};
use eventstore_core::{
    AppendOutcome, AppendRequest, EventId, Revision, StoreError, StreamInfo, StreamKey, Timestamp,
};

use super::{ID_WINDOW, PutId, request_token, split_chunks, token_taken};
use crate::codec;
use crate::error::DynamoError;
use crate::items::{self, AppendItem, Tip, n};
use crate::retry::{Backoff, is_retryable};
use crate::store::{DynamoStore, sdk_err};

/// What one attempt came to.
enum Step {
    Done(AppendOutcome),
    /// The head moved (another append took the revision): judge again
    /// from this state.
    Again(Option<Tip>),
    /// A transient conflict: again after a pause, from a fresh read.
    Conflict,
}

/// What claiming the append-id item found.
enum Claim {
    /// The item names the revisions this attempt is about to take.
    Claimed,
    /// These ids are stored at `first ..= last`.
    Stored { first: u64, last: u64 },
    /// The state read is stale (the item names a later revision): read
    /// again.
    Stale,
    /// A transient conflict.
    Conflict,
}

/// The fingerprints an append item carries: the stream's last ones and
/// the append's, at least [`ID_WINDOW`] and the whole append, in revision
/// order.
fn fingerprints(tip: Option<&Tip>, ids: &[EventId]) -> Vec<u8> {
    let mut fps: Vec<[u8; 4]> = Vec::new();
    if let Some(t) = tip {
        for f in &t.fingerprints {
            if let Ok(f) = <[u8; 4]>::try_from(f.as_slice()) {
                fps.push(f);
            }
        }
    }
    fps.extend(ids.iter().map(codec::fingerprint));
    let keep = ID_WINDOW.max(ids.len());
    fps[fps.len().saturating_sub(keep)..].concat()
}

impl DynamoStore {
    /// An append: to a stream of append items (and to a new stream, unless
    /// this store creates streams of tip format), or handed to the tip
    /// path for a stream of tip format. The state is read first either way.
    pub(crate) async fn append_request(
        &self,
        request: AppendRequest,
    ) -> Result<AppendOutcome, StoreError> {
        let stream = request.stream().clone();
        let mut backoff = Backoff::default();
        let mut tip = self.get_tip(&stream).await?;
        // The revision this request's append-id item names, once claimed.
        let mut claimed: Option<u64> = None;
        loop {
            let tip_path = match &tip {
                Some(t) => !t.per_append,
                None => self.tip_format,
            };
            if tip_path {
                return self.append_inner(request).await;
            }
            let step = match self
                .try_append_item(&request, tip.as_ref(), &mut claimed)
                .await
            {
                Ok(step) => step,
                Err(
                    e @ (StoreError::WrongExpectedRevision(_) | StoreError::DuplicateEvent { .. }),
                ) => {
                    if let Some(first) = claimed {
                        self.drop_claim(&stream, &request.event_ids(), first)
                            .await?;
                    }
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            match step {
                Step::Done(outcome) => {
                    self.note_committed(&stream, outcome.last_revision);
                    return Ok(outcome);
                }
                Step::Again(now) => tip = now,
                Step::Conflict => {
                    if !backoff.wait().await {
                        return Err(DynamoError::Contention(backoff.attempts()).into());
                    }
                    tip = self.get_tip(&stream).await?;
                }
            }
        }
    }

    /// One attempt on the state `tip` (`None`: no stream).
    async fn try_append_item(
        &self,
        request: &AppendRequest,
        tip: Option<&Tip>,
        claimed: &mut Option<u64>,
    ) -> Result<Step, StoreError> {
        let stream = request.stream();
        let ids = request.event_ids();
        let expectation = request.expectation();
        if tip.is_some_and(|t| t.deleted.is_some()) {
            // A deleted id is never used again. A claim this request made
            // before its put met the tombstone goes with the rest.
            self.purge_stream(stream).await?;
            return Err(StoreError::StreamDeleted(stream.clone()));
        }
        let current = tip.map_or(0, |t| t.revision);
        let found = match tip {
            Some(t) => self.locate_ids(stream, t, expectation, &ids).await?,
            None => vec![None; ids.len()],
        };
        match decide(expectation, Revision::new(current), &ids, &found)? {
            Decision::AlreadyAppended { first, last } => {
                let t = tip.ok_or_else(|| DynamoError::Corrupt("ids found in no stream".into()))?;
                return Ok(Step::Done(AppendOutcome {
                    stream: t.info(stream),
                    first_revision: first,
                    last_revision: last,
                    first_position: None,
                    already_appended: true,
                }));
            }
            Decision::Write => {}
        }
        let first = current + 1;
        match self.claim(stream, tip, &ids, first).await? {
            Claim::Claimed => *claimed = Some(first),
            Claim::Stored { first, last } => {
                let found: Vec<Option<Revision>> =
                    (first..=last).map(|r| Some(Revision::new(r))).collect();
                return match decide(expectation, Revision::new(current), &ids, &found)? {
                    Decision::AlreadyAppended { first, last } => {
                        let t = tip.ok_or_else(|| {
                            DynamoError::Corrupt("an append-id item without a stream".into())
                        })?;
                        Ok(Step::Done(AppendOutcome {
                            stream: t.info(stream),
                            first_revision: first,
                            last_revision: last,
                            first_position: None,
                            already_appended: true,
                        }))
                    }
                    Decision::Write => {
                        Err(DynamoError::Corrupt("stored ids judged new".into()).into())
                    }
                };
            }
            Claim::Stale => return Ok(Step::Again(self.get_tip(stream).await?)),
            Claim::Conflict => return Ok(Step::Conflict),
        }
        self.put_append(request, tip, first).await
    }

    /// Puts the append's item (or items, in one transaction, when its
    /// events pass [`super::CHUNK_BYTES`]) at `first ..`, each with
    /// `attribute_not_exists`.
    async fn put_append(
        &self,
        request: &AppendRequest,
        tip: Option<&Tip>,
        first: u64,
    ) -> Result<Step, StoreError> {
        let stream = request.stream();
        let events = request.events();
        let ids = request.event_ids();
        let k = events.len() as u64;
        let now = Timestamp::now();
        let created = tip.map_or(now.as_micros(), |t| t.created);
        let groups = split_chunks(events);
        let mut items = Vec::with_capacity(groups.len());
        let mut at = first;
        for (i, group) in groups.iter().enumerate() {
            let last_item = i + 1 == groups.len();
            let last = at + group.len() as u64 - 1;
            items.push(AppendItem {
                first: at,
                last,
                blobs: vec![codec::encode(now, group)],
                count: last_item.then_some(k),
                created,
                updated: now.as_micros(),
                previous_update: tip.map_or(0, |t| t.updated),
                fingerprints: if last_item {
                    fingerprints(tip, &ids)
                } else {
                    Vec::new()
                },
                first_kept: tip.and_then(|t| t.first),
                deleted: None,
            });
            at = last + 1;
        }
        let outcome = AppendOutcome {
            stream: StreamInfo {
                stream_id: stream.stream_id.clone(),
                stream_type: stream.stream_type.clone(),
                revision: Revision::new(first + k - 1),
                first_revision: Revision::new(tip.map_or(1, Tip::first_kept)),
                updated_at: now,
                created_at: Timestamp::from_micros(created),
            },
            first_revision: Revision::new(first),
            last_revision: Revision::new(first + k - 1),
            first_position: None,
            already_appended: false,
        };
        if let [only] = items.as_slice() {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(only.to_item(stream)))
                .condition_expression(items::cond::ABSENT)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            match result {
                Ok(_) => return Ok(Step::Done(outcome)),
                Err(SdkError::ServiceError(se)) => match se.err() {
                    PutItemError::ConditionalCheckFailedException(c) => {
                        if let Some(step) = self.judge_taken(request, tip, c.item())? {
                            return step;
                        }
                    }
                    other if other.meta().code().is_some_and(is_retryable) => {
                        return Ok(Step::Conflict);
                    }
                    _ => return Err(sdk_err("PutItem", SdkError::ServiceError(se)).into()),
                },
                Err(e) => return Err(sdk_err("PutItem", e).into()),
            }
        } else {
            let mut writes = Vec::with_capacity(items.len());
            for item in &items {
                writes.push(
                    TransactWriteItem::builder()
                        .put(
                            Put::builder()
                                .table_name(&self.table)
                                .set_item(Some(item.to_item(stream)))
                                .condition_expression(items::cond::ABSENT)
                                .build()
                                .map_err(|e| DynamoError::request("TransactWriteItems", e))?,
                        )
                        .build(),
                );
            }
            let token = request_token(&ids, first - 1, first - 1, false, now);
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(writes))
                .client_request_token(token)
                .send()
                .await;
            match result {
                Ok(_) => return Ok(Step::Done(outcome)),
                Err(SdkError::ServiceError(se)) => match se.err() {
                    TransactWriteItemsError::TransactionCanceledException(c) => {
                        let reasons = c.cancellation_reasons();
                        if reasons
                            .iter()
                            .any(|r| r.code() == Some("ConditionalCheckFailed"))
                        {
                        } else if reasons.iter().any(|r| r.code().is_some_and(is_retryable)) {
                            return Ok(Step::Conflict);
                        } else {
                            return Err(
                                sdk_err("TransactWriteItems", SdkError::ServiceError(se)).into()
                            );
                        }
                    }
                    other
                        if other.meta().code().is_some_and(is_retryable)
                            || token_taken(other.meta().code()) =>
                    {
                        return Ok(Step::Conflict);
                    }
                    _ => {
                        return Err(
                            sdk_err("TransactWriteItems", SdkError::ServiceError(se)).into()
                        );
                    }
                },
                Err(e) => return Err(sdk_err("TransactWriteItems", e).into()),
            }
        }
        // The revision is taken. By this very append (a twin of the
        // request, or this put's own answer lost and retried by the SDK):
        // judged from the state read again, like any stored copy of the
        // ids; by another: the expectation is judged again.
        Ok(Step::Again(self.get_tip(stream).await?))
    }

    /// Judges a put that found its revision taken from the item handed
    /// back with the failed condition, when that is enough: the item that
    /// took the revision holds these very ids (this put's own answer lost
    /// and retried by the SDK, or a twin of the request), or the
    /// expectation is pinned, so the request is refused with the revision
    /// the stream had then. `None`: the state is read again.
    fn judge_taken(
        &self,
        request: &AppendRequest,
        tip: Option<&Tip>,
        taken: Option<&items::Item>,
    ) -> Result<Option<Result<Step, StoreError>>, StoreError> {
        let Some(item) = taken.map(AppendItem::from_item).transpose()?.flatten() else {
            return Ok(None);
        };
        if item.deleted.is_some() || item.blobs.is_empty() {
            return Ok(None);
        }
        let ids = request.event_ids();
        let mut at: std::collections::HashMap<EventId, u64> = std::collections::HashMap::new();
        let mut rev = item.first - 1;
        for blob in &item.blobs {
            for e in codec::decode(blob)? {
                rev += 1;
                at.insert(e.event_id, rev);
            }
        }
        let found: Vec<Option<Revision>> = ids
            .iter()
            .map(|id| at.get(id).map(|r| Revision::new(*r)))
            .collect();
        let expectation = request.expectation();
        if expectation.pinned().is_none() && found.iter().all(Option::is_none) {
            return Ok(None);
        }
        let stream = request.stream();
        Ok(Some(
            match decide(expectation, Revision::new(item.last), &ids, &found) {
                Ok(Decision::AlreadyAppended { first, last }) => {
                    let mut now = item.head_tip(None);
                    now.first = tip.and_then(|t| t.first);
                    Ok(Step::Done(AppendOutcome {
                        stream: now.info(stream),
                        first_revision: first,
                        last_revision: last,
                        first_position: None,
                        already_appended: true,
                    }))
                }
                Ok(Decision::Write) => return Ok(None),
                Err(e) => Err(e),
            },
        ))
    }

    /// Claims the append-id item of `ids` for the revisions `first ..`,
    /// before the put that takes them (1 WCU). The put may then fail,
    /// leaving a claim that names revisions holding other events; so a
    /// found item is believed only when the stream holds exactly these
    /// ids there ([`Self::holds`]). Otherwise the ids are stored nowhere:
    /// events with these ids are only ever put at the revisions the item
    /// names when the put is made. The item is then moved to this
    /// attempt's revisions with a `PutItem` conditioned on what it named —
    /// unless it names this very revision, where a twin of the request
    /// may be about to put: both then put there, and one wins.
    async fn claim(
        &self,
        stream: &StreamKey,
        tip: Option<&Tip>,
        ids: &[EventId],
        first: u64,
    ) -> Result<Claim, DynamoError> {
        let count = ids.len() as u64;
        let mut named: Option<u64> = None;
        for _ in 0..12 {
            let existing = match self.put_append_id(true, stream, ids, first, named).await? {
                PutId::Written => return Ok(Claim::Claimed),
                PutId::Conflict => return Ok(Claim::Conflict),
                PutId::Found(range) => range,
            };
            let Some((f0, l0)) = existing else {
                // Gone between the put and the read (a refused twin
                // dropped it, or a deletion's cleanup): read the state
                // again.
                return Ok(Claim::Stale);
            };
            if f0 == first && l0 + 1 - f0 == count {
                return Ok(Claim::Claimed);
            }
            if f0 > first {
                // Claimed after a later state than this attempt's.
                return Ok(Claim::Stale);
            }
            if let Some(t) = tip
                && self.holds(stream, t, ids, f0, l0).await?
            {
                return Ok(Claim::Stored {
                    first: f0,
                    last: l0,
                });
            }
            // Revision `f0` is taken (it is at or below the head this
            // attempt read), by other events: the ids are stored nowhere.
            named = Some(f0);
        }
        Ok(Claim::Conflict)
    }

    /// Deletes the append-id item this request claimed for `first`, once
    /// the request is refused (a wrong expectation, a duplicate): it names
    /// a revision another append took, so it holds nothing, and left alone
    /// every refused append would leave one behind. Conditioned on naming
    /// `first` still: a twin of the request may have moved it to a
    /// revision it is about to take. 1 WCU, on refusals only.
    async fn drop_claim(
        &self,
        stream: &StreamKey,
        ids: &[EventId],
        first: u64,
    ) -> Result<(), DynamoError> {
        use crate::items::attr::append_id::FIRST;
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(items::key(
                items::stream_pk(stream),
                items::id_sk(true, ids),
            )))
            .condition_expression(format!("{FIRST} = :f0"))
            .expression_attribute_values(":f0", n(first))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Moved by a twin, or a transient error: the item stays (a
            // later claim of these ids moves it; it costs a few bytes).
            Err(SdkError::ServiceError(_)) => Ok(()),
            Err(e) => Err(sdk_err("DeleteItem", e)),
        }
    }
}
