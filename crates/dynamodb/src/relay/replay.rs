//! Replay of stream records the relay function gave up on.
//!
//! When a batch fails every retry, Lambda skips it and writes a record of
//! it to the event source's on-failure destination (an SQS queue): the
//! shard, the first and last sequence numbers, the stream ([`FailedBatch`]).
//! The records themselves stay in the stream for 24 hours.
//! [`read_failed_batch`] reads them back, and [`Relay::replay`] puts the
//! appends they hold into the feed, once.
//!
//! The shard's checkpoint and announcement mark cannot tell whether such
//! records are in the feed: Lambda went on with the shard's later records,
//! which moved both past them. So a replay finds out from the feed itself:
//! it reads the feed's pages back from the newest to the shard's last page
//! before the batch, and takes every append it finds there as relayed
//! (an earlier delivery wrote its page and failed later, e.g. while
//! publishing). The others go into one new page at the end of the feed,
//! labelled as a replay of the shard (`h` = `replay:` + shard), so that the
//! shard's own checkpoint never reads it. A replay run twice finds its own
//! page and adds nothing.
//!
//! Listings: each replayed stream's listing entry is set from the stream's
//! current tip, in a transaction conditioned on that tip (a newer append
//! is the live relay's to list), and the entries of the replayed appends'
//! older `updatedAt`s are deleted. The announcement mark is not moved:
//! the caller publishes the returned announcements and is done.
//!
//! A replayed append lands after appends of its stream that the live
//! relay put into the feed meanwhile: the feed is complete again, but for
//! such a stream not in revision order.

use aws_sdk_dynamodb::types::{ConditionCheck, Put, TransactWriteItem};

use super::*;

/// What Lambda writes to the on-failure destination of a DynamoDB stream
/// event source for a batch it gave up on (`DDBStreamBatchInfo`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedBatch {
    /// The shard.
    pub shard_id: String,
    /// Sequence number of the batch's first record.
    pub start_sequence_number: String,
    /// Sequence number of its last record.
    pub end_sequence_number: String,
    /// The table's stream.
    pub stream_arn: String,
    /// Records in the batch, as Lambda counted them.
    #[serde(default)]
    pub batch_size: Option<u64>,
}

#[derive(serde::Deserialize)]
struct InvocationRecord {
    #[serde(rename = "DDBStreamBatchInfo")]
    batch: FailedBatch,
}

impl FailedBatch {
    /// Parses an on-failure message (a JSON invocation record with a
    /// `DDBStreamBatchInfo` object).
    pub fn from_message(body: &str) -> Result<Self, ReplayError> {
        let record: InvocationRecord =
            serde_json::from_str(body).map_err(|e| ReplayError::NotAFailedBatch(e.to_string()))?;
        let b = record.batch;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
        if !digits(&b.start_sequence_number)
            || !digits(&b.end_sequence_number)
            || seq_gt(&b.start_sequence_number, &b.end_sequence_number)
            || b.shard_id.is_empty()
        {
            return Err(ReplayError::NotAFailedBatch(format!(
                "bad range {}..={} of shard {:?}",
                b.start_sequence_number, b.end_sequence_number, b.shard_id
            )));
        }
        Ok(b)
    }
}

/// Why a failed batch could not be replayed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The message is not an on-failure record of a DynamoDB stream batch.
    #[error("not a failed DynamoDB stream batch: {0}")]
    NotAFailedBatch(String),
    /// The stream no longer holds the batch's records (DynamoDB Streams
    /// keeps them 24 hours).
    #[error("records {0} are no longer in the stream (kept 24 hours)")]
    Trimmed(String),
    /// Reading the stream or relaying failed (retry later).
    #[error(transparent)]
    Relay(#[from] DynamoError),
}

/// Reads the records of a failed batch back from the table's stream:
/// from its first sequence number to its last, in order.
pub async fn read_failed_batch(
    streams: &aws_sdk_dynamodbstreams::Client,
    batch: &FailedBatch,
) -> Result<Vec<ChangeRecord>, ReplayError> {
    let range = || {
        format!(
            "{}..={} of shard {}",
            batch.start_sequence_number, batch.end_sequence_number, batch.shard_id
        )
    };
    let it = streams
        .get_shard_iterator()
        .stream_arn(&batch.stream_arn)
        .shard_id(&batch.shard_id)
        .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::AtSequenceNumber)
        .sequence_number(&batch.start_sequence_number)
        .send()
        .await;
    let it = match it {
        Ok(out) => out.shard_iterator().map(str::to_string),
        Err(e) => {
            let gone = e.as_service_error().is_some_and(|se| {
                se.is_trimmed_data_access_exception() || se.is_resource_not_found_exception()
            });
            if gone {
                return Err(ReplayError::Trimmed(range()));
            }
            return Err(DynamoError::request("GetShardIterator", DisplayErrorContext(e)).into());
        }
    };
    let mut records = Vec::new();
    let mut iterator = it;
    let mut empty = 0;
    'read: while let Some(i) = iterator {
        let page = streams
            .get_records()
            .shard_iterator(i)
            .limit(1000)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|se| se.is_trimmed_data_access_exception())
                {
                    ReplayError::Trimmed(range())
                } else {
                    DynamoError::request("GetRecords", DisplayErrorContext(e)).into()
                }
            })?;
        if page.records().is_empty() {
            // An open shard answers empty pages past its newest record.
            empty += 1;
            if empty >= 3 {
                break;
            }
        }
        for r in page.records() {
            let Some(c) = ChangeRecord::from_streams_record(&batch.shard_id, r) else {
                continue;
            };
            if seq_gt(&c.sequence_number, &batch.end_sequence_number) {
                break 'read;
            }
            records.push(c);
        }
        iterator = page.next_shard_iterator().map(str::to_string);
    }
    match (records.first(), records.last()) {
        (Some(first), Some(last))
            if first.sequence_number == batch.start_sequence_number
                && last.sequence_number == batch.end_sequence_number =>
        {
            Ok(records)
        }
        _ => Err(ReplayError::Trimmed(range())),
    }
}

impl Relay {
    /// Puts the appends of records a relay gave up on (one shard's, in
    /// stream order; see [`read_failed_batch`]) into the feed, except
    /// those already there, and returns one announcement per append, with
    /// its position; its `entries` are the appends it put into the feed.
    /// Idempotent: a replay run again adds nothing to the feed (and
    /// returns the same announcements). Announcement marks are
    /// not touched: publish the announcements and be done.
    pub async fn replay(&self, records: &[ChangeRecord]) -> Result<RelayOutput, DynamoError> {
        let Some(shard) = records.first().map(|r| r.shard_id.as_str()) else {
            return Ok(RelayOutput::default());
        };
        if records.iter().any(|r| r.shard_id != shard) {
            return Err(DynamoError::Corrupt(
                "a replay takes the records of one shard".into(),
            ));
        }
        let label = format!("replay:{shard}");
        let mut parsed: Vec<(&str, TipChange)> = Vec::new();
        let mut truncations = Vec::new();
        for r in records {
            if let Some(img) = &r.new_image {
                match parse_change(img, r.old_image.as_ref())? {
                    Some(Change::Feed(c)) => parsed.push((r.sequence_number.as_str(), c)),
                    Some(Change::Truncated(t)) => truncations.push(t),
                    None => {}
                }
            }
        }
        parsed.sort_by(|a, b| (a.0.len(), a.0).cmp(&(b.0.len(), b.0)));
        let Some(last_seq) = max_seq(parsed.iter().map(|(s, _)| *s)).map(str::to_string) else {
            for t in &truncations {
                self.truncated(t).await?;
            }
            return Ok(RelayOutput::default());
        };
        // Appends whose events were all erased since get no entry.
        let mut types = Vec::with_capacity(parsed.len());
        let mut changes = Vec::with_capacity(parsed.len());
        for (seq, c) in parsed {
            let mut events = self.event_types(&c).await?;
            if c.kind == ChangeKind::Append && matches!(events, Events::Types(_)) {
                // Types read from the record's image say nothing of what
                // happened since: a replay runs long after, when the
                // stream may be deleted and its references removed.
                if let Some(tip) = self.store.get_tip(&c.stream).await?
                    && let Some(e) = erasure(&tip, c.first_revision(), c.tip.revision)
                {
                    events = e;
                }
            }
            match events {
                Events::Erased => continue,
                Events::Types(t) => types.push(Some(t)),
                Events::PartlyErased => types.push(None),
            }
            changes.push((seq, c));
        }
        let mut backoff = crate::retry::Backoff::default();
        let (entries, written): (Vec<FeedEntry>, Vec<FeedEntry>) = loop {
            let found = self
                .search_feed(shard, Some(&label), &changes, None)
                .await?;
            let fresh: Vec<&TipChange> = changes
                .iter()
                .zip(&found)
                .filter(|(_, f)| f.is_none())
                .map(|((_, c), _)| c)
                .collect();
            if fresh.is_empty() {
                break (found.into_iter().flatten().collect(), Vec::new());
            }
            self.relist(&fresh).await?;
            match self.write_page(&label, &last_seq, &fresh).await? {
                Some(written) => {
                    let mut new = written.iter().cloned();
                    let all = found
                        .into_iter()
                        .map(|f| f.or_else(|| new.next()))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| DynamoError::Corrupt("replayed page short".into()))?;
                    break (all, written);
                }
                // A concurrent replay of the same shard wrote a page: look again.
                None if backoff.wait().await => {}
                None => return Err(DynamoError::Contention(backoff.attempts())),
            }
        };
        for t in &truncations {
            self.truncated(t).await?;
        }
        for (_, c) in &changes {
            if c.kind == ChangeKind::Deleted {
                self.store.purge_stream(&c.stream).await?;
                self.deleted_references(c).await?;
            }
        }
        if let Some(p) = &self.progress {
            p.relayed(&entries);
        }
        let announcements = entries
            .into_iter()
            .zip(types)
            .filter_map(|(entry, event_types)| {
                Some(Announcement {
                    entry,
                    event_types: event_types?,
                })
            })
            .collect();
        Ok(RelayOutput {
            entries: written,
            announcements,
            covered: BTreeMap::new(),
        })
    }

    /// Sets each replayed stream's listing entry from its current tip
    /// (conditioned on that tip: a newer append is the live relay's to
    /// list) and deletes the entries of the replayed appends' older times.
    async fn relist(&self, changes: &[&TipChange]) -> Result<(), DynamoError> {
        let mut by_stream: BTreeMap<&StreamKey, Vec<&TipChange>> = BTreeMap::new();
        for &c in changes {
            by_stream.entry(&c.stream).or_default().push(c);
        }
        let client = self.store.client();
        for (stream, cs) in by_stream {
            let Some(tip) = self.store.get_tip(stream).await? else {
                continue;
            };
            if tip.deleted.is_some() {
                // A deleted stream is listed nowhere.
                continue;
            }
            let pk = items::listing_pk(&stream.stream_type);
            let updated = tip.updated.max(0) as u64;
            let entry = items::Listing {
                stream_id: stream.stream_id.as_str().to_string(),
                revision: tip.revision,
                created: tip.created,
                updated,
                first: tip.first,
            }
            .to_item(&stream.stream_type);
            let build = |e: aws_sdk_dynamodb::error::BuildError| {
                DynamoError::request("TransactWriteItems", e)
            };
            let check = if tip.per_append {
                // No append item (and no tombstone) after the one read.
                ConditionCheck::builder()
                    .table_name(self.store.table())
                    .set_key(Some(items::key(
                        items::stream_pk(stream),
                        items::pad(tip.revision + 1),
                    )))
                    .condition_expression(items::cond::ABSENT)
                    .build()
                    .map_err(build)?
            } else {
                ConditionCheck::builder()
                    .table_name(self.store.table())
                    .set_key(Some(items::key(items::stream_pk(stream), items::TIP_SK)))
                    .condition_expression(format!(
                        "{} = :r AND attribute_not_exists({})",
                        attr::tip::REVISION,
                        attr::tip::DELETED
                    ))
                    .expression_attribute_values(":r", n(tip.revision))
                    .build()
                    .map_err(build)?
            };
            let put = |item: Item| {
                Put::builder()
                    .table_name(self.store.table())
                    .set_item(Some(item))
                    .build()
                    .map_err(build)
            };
            let out = client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().condition_check(check).build())
                .transact_items(TransactWriteItem::builder().put(put(entry)?).build())
                .transact_items(
                    TransactWriteItem::builder()
                        .put(put(items::key(
                            items::TYPES_PK,
                            stream.stream_type.as_str(),
                        ))?)
                        .build(),
                )
                .send()
                .await;
            if let Err(e) = out {
                use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
                let moved = matches!(
                    e.as_service_error(),
                    Some(TransactWriteItemsError::TransactionCanceledException(t))
                        if t.cancellation_reasons().iter().any(|r| r.code() == Some("ConditionalCheckFailed"))
                );
                if !moved {
                    return Err(DynamoError::request(
                        "TransactWriteItems",
                        DisplayErrorContext(e),
                    ));
                }
            }
            let mut stale: HashSet<u64> = HashSet::new();
            for c in cs {
                stale.insert(c.previous_update);
                stale.insert(c.tip.updated.max(0) as u64);
            }
            stale.remove(&0);
            stale.remove(&updated);
            let deletes: Vec<WriteRequest> = stale
                .into_iter()
                .map(|u| {
                    DeleteRequest::builder()
                        .set_key(Some(items::key(
                            &pk,
                            items::listing_sk(u, stream.stream_id.as_str()),
                        )))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                        .map_err(|e| DynamoError::request("BatchWriteItem", e))
                })
                .collect::<Result<_, _>>()?;
            self.write_batches(&deletes).await?;
        }
        Ok(())
    }
}
