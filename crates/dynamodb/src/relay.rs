//! The feed relay: from the table's DynamoDB Stream to the global feed,
//! the per-type listings and the notifications.
//!
//! Entry point: [`Relay::process`], handed a batch of [`ChangeRecord`]s of
//! one shard in stream order (what a Lambda gets from its event source
//! mapping, with `ParallelizationFactor` 1). For local use and tests,
//! [`spawn_poller`] reads the DynamoDB Streams API and feeds the relay.
//!
//! Positions are assigned in stream-record order. The feed is a sequence of
//! page items (`p = "F"`, `s` = first position), each written with a
//! condition that its position is not taken yet, and each naming the shard
//! and the last stream-record sequence number it covers. That checkpoint
//! makes the relay idempotent: a batch handed over twice, or replayed after
//! a restart, contains only records at or below the checkpoint and is
//! skipped. Listings are written before the page, idempotently, so a crash
//! between the two is repaired by the replay.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use eventstore_api::Notification;
use eventstore_core::{EventType, Position, Revision, StreamId, StreamKey, StreamType, Timestamp};
use tokio::sync::Notify;

use crate::codec;
use crate::error::DynamoError;
use crate::items::{self, Item, get_str, get_u64, n, pad, req_u64, s};
use crate::store::{DynamoStore, Tip};

/// One record of the table's stream, reduced to what the relay needs.
#[derive(Debug, Clone)]
pub struct ChangeRecord {
    /// The shard the record came from.
    pub shard_id: String,
    /// Its sequence number within the shard.
    pub sequence_number: String,
    /// The item after the change (absent for deletes).
    pub new_image: Option<Item>,
}

impl ChangeRecord {
    /// Converts a record of the DynamoDB Streams API.
    pub fn from_streams_record(
        shard_id: &str,
        record: &aws_sdk_dynamodbstreams::types::Record,
    ) -> Option<Self> {
        let data = record.dynamodb()?;
        Some(Self {
            shard_id: shard_id.to_string(),
            sequence_number: data.sequence_number()?.to_string(),
            new_image: data.new_image().map(|img| {
                img.iter()
                    .map(|(k, v)| (k.clone(), convert_value(v)))
                    .collect()
            }),
        })
    }
}

/// Converts a DynamoDB Streams attribute value to a DynamoDB one.
pub fn convert_value(v: &aws_sdk_dynamodbstreams::types::AttributeValue) -> AttributeValue {
    use aws_sdk_dynamodbstreams::types::AttributeValue as S;
    match v {
        S::S(x) => AttributeValue::S(x.clone()),
        S::N(x) => AttributeValue::N(x.clone()),
        S::B(x) => AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(x.as_ref().to_vec())),
        S::Bool(x) => AttributeValue::Bool(*x),
        S::Null(x) => AttributeValue::Null(*x),
        S::L(x) => AttributeValue::L(x.iter().map(convert_value).collect()),
        S::M(x) => AttributeValue::M(
            x.iter()
                .map(|(k, v)| (k.clone(), convert_value(v)))
                .collect(),
        ),
        S::Ss(x) => AttributeValue::Ss(x.clone()),
        S::Ns(x) => AttributeValue::Ns(x.clone()),
        S::Bs(x) => AttributeValue::Bs(
            x.iter()
                .map(|b| aws_sdk_dynamodb::primitives::Blob::new(b.as_ref().to_vec()))
                .collect(),
        ),
        _ => AttributeValue::Null(true),
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

/// Parses a feed page item into its entries with positions.
pub fn parse_page(page: &Item) -> Result<Vec<FeedEntry>, DynamoError> {
    let sk = get_str(page, items::SK)?;
    let mut position: u64 = sk
        .parse()
        .map_err(|_| DynamoError::Corrupt(format!("feed page key {sk}")))?;
    let Some(AttributeValue::L(list)) = page.get("g") else {
        return Err(DynamoError::Corrupt("feed page without entries".into()));
    };
    let mut out = Vec::with_capacity(list.len());
    for v in list {
        let AttributeValue::S(text) = v else {
            return Err(DynamoError::Corrupt("feed entry is not a string".into()));
        };
        let bad = || DynamoError::Corrupt(format!("feed entry {text}"));
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
        out.push(FeedEntry {
            stream,
            first_revision,
            count,
            position,
        });
        position += count;
    }
    Ok(out)
}

#[derive(Default)]
struct ProgressState {
    committed: HashMap<StreamKey, u64>,
    relayed: HashMap<StreamKey, u64>,
    position: u64,
}

/// What a relay running in this process has indexed, shared with the
/// store so that listings can wait for this process's own appends.
#[derive(Default)]
pub struct RelayProgress {
    state: Mutex<ProgressState>,
    notify: Notify,
}

impl RelayProgress {
    /// Fresh progress.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Records an append this process committed.
    pub fn committed(&self, stream: &StreamKey, revision: u64) {
        let mut st = self.state.lock().expect("poisoned");
        let r = st.committed.entry(stream.clone()).or_default();
        *r = (*r).max(revision);
    }

    fn relayed(&self, entries: &[FeedEntry]) {
        let mut st = self.state.lock().expect("poisoned");
        for e in entries {
            let r = st.relayed.entry(e.stream.clone()).or_default();
            *r = (*r).max(e.first_revision + e.count - 1);
            st.position = st.position.max(e.position + e.count - 1);
        }
        drop(st);
        self.notify.notify_waiters();
    }

    fn indexed(&self, stream_type: Option<&StreamType>) -> bool {
        let st = self.state.lock().expect("poisoned");
        st.committed.iter().all(|(k, r)| {
            stream_type.is_some_and(|t| &k.stream_type != t)
                || st.relayed.get(k).is_some_and(|x| x >= r)
        })
    }

    /// Waits (at most `timeout`) until every append this process committed
    /// (of `stream_type`, or of every type) is indexed.
    pub async fn wait_indexed(&self, stream_type: Option<&StreamType>, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.indexed(stream_type) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }

    /// Waits (at most `timeout`) until a position past `after` is relayed.
    pub async fn wait_position(&self, after: u64, timeout: Duration) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if self.state.lock().expect("poisoned").position > after {
            return;
        }
        let _ = tokio::time::timeout(timeout, notified).await;
    }
}

/// What one batch produced.
#[derive(Debug, Clone, Default)]
pub struct RelayOutput {
    /// The appends put into the feed, in feed order.
    pub entries: Vec<FeedEntry>,
    /// One notification per append, in feed order.
    pub notifications: Vec<Notification>,
}

/// Orders stream sequence numbers (decimal strings of varying length).
fn seq_gt(a: &str, b: &str) -> bool {
    (a.len(), a) > (b.len(), b)
}

struct TipChange {
    stream: StreamKey,
    tip: Tip,
    count: u64,
    previous_update: u64,
}

fn parse_tip_change(image: &Item) -> Result<Option<TipChange>, DynamoError> {
    let (Ok(pk), Ok(sk)) = (get_str(image, items::PK), get_str(image, items::SK)) else {
        return Ok(None);
    };
    if sk != items::TIP_SK {
        return Ok(None);
    }
    let Some(rest) = pk.strip_prefix("S#") else {
        return Ok(None);
    };
    let Some((t, id)) = rest.split_once('#') else {
        return Err(DynamoError::Corrupt(format!("stream key {pk}")));
    };
    let stream = StreamKey::new(
        StreamType::parse(t).map_err(|e| DynamoError::Corrupt(e.to_string()))?,
        StreamId::parse(id).map_err(|e| DynamoError::Corrupt(e.to_string()))?,
    );
    let Some(tip) = Tip::from_item(image)? else {
        return Ok(None);
    };
    let count = get_u64(image, "n")?.unwrap_or(0);
    if count == 0 || count > tip.revision {
        return Ok(None);
    }
    Ok(Some(TipChange {
        stream,
        tip,
        count,
        previous_update: get_u64(image, "v")?.unwrap_or(0),
    }))
}

/// The relay. Cheap to clone; one per shard consumer.
#[derive(Clone)]
pub struct Relay {
    store: DynamoStore,
    checkpoints: Arc<Mutex<HashMap<String, String>>>,
    progress: Option<Arc<RelayProgress>>,
}

impl Relay {
    /// A relay writing into the store's table.
    pub fn new(store: DynamoStore) -> Self {
        Self {
            store,
            checkpoints: Arc::default(),
            progress: None,
        }
    }

    /// Publishes progress to a store in the same process.
    pub fn with_progress(mut self, progress: Arc<RelayProgress>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// The last sequence number of `shard` already in the feed: from
    /// memory, else from the newest feed page of that shard.
    async fn checkpoint(&self, shard: &str) -> Result<Option<String>, DynamoError> {
        if let Some(c) = self.checkpoints.lock().expect("poisoned").get(shard) {
            return Ok(Some(c.clone()));
        }
        let client = self.store.client();
        let mut start: Option<Item> = None;
        for _ in 0..100 {
            let out = client
                .query()
                .table_name(self.store.table())
                .key_condition_expression("p = :p")
                .expression_attribute_values(":p", s(items::FEED_PK))
                .projection_expression("p, s, h, q")
                .scan_index_forward(false)
                .consistent_read(true)
                .limit(100)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| DynamoError::request("Query", DisplayErrorContext(e)))?;
            for page in out.items() {
                if get_str(page, "h").ok() == Some(shard) {
                    let q = get_str(page, "q")?.to_string();
                    self.checkpoints
                        .lock()
                        .expect("poisoned")
                        .insert(shard.to_string(), q.clone());
                    return Ok(Some(q));
                }
            }
            start = out.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        Ok(None)
    }

    /// Relays a batch of one shard's records, in stream order.
    pub async fn process(&self, records: &[ChangeRecord]) -> Result<RelayOutput, DynamoError> {
        let mut by_shard: BTreeMap<&str, Vec<&ChangeRecord>> = BTreeMap::new();
        for r in records {
            by_shard.entry(r.shard_id.as_str()).or_default().push(r);
        }
        let mut output = RelayOutput::default();
        for (shard, records) in by_shard {
            let out = self.process_shard(shard, &records).await?;
            output.entries.extend(out.entries);
            output.notifications.extend(out.notifications);
        }
        Ok(output)
    }

    async fn process_shard(
        &self,
        shard: &str,
        records: &[&ChangeRecord],
    ) -> Result<RelayOutput, DynamoError> {
        let checkpoint = self.checkpoint(shard).await?;
        let fresh: Vec<&&ChangeRecord> = records
            .iter()
            .filter(|r| {
                checkpoint
                    .as_deref()
                    .is_none_or(|c| seq_gt(&r.sequence_number, c))
            })
            .collect();
        let Some(last_seq) = fresh
            .iter()
            .map(|r| r.sequence_number.as_str())
            .max_by(|a, b| {
                if seq_gt(a, b) {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Less
                }
            })
        else {
            return Ok(RelayOutput::default());
        };
        let mut changes = Vec::new();
        for r in &fresh {
            if let Some(img) = &r.new_image
                && let Some(c) = parse_tip_change(img)?
            {
                changes.push(c);
            }
        }
        if changes.is_empty() {
            return Ok(RelayOutput::default());
        }
        // Event types for the notifications, from the images or the table.
        let mut types: Vec<Vec<EventType>> = Vec::with_capacity(changes.len());
        for c in &changes {
            let first = c.tip.revision - c.count + 1;
            if first > c.tip.base {
                let mut rev = c.tip.base;
                let mut t = Vec::new();
                for blob in &c.tip.blobs {
                    for e in codec::decode(blob)? {
                        rev += 1;
                        if rev >= first {
                            t.push(e.event_type);
                        }
                    }
                }
                types.push(t);
            } else {
                let tip = self
                    .store
                    .get_tip(&c.stream)
                    .await?
                    .unwrap_or_else(|| c.tip.clone());
                let events = self
                    .store
                    .read_range(&c.stream, &tip, first, c.tip.revision)
                    .await?;
                types.push(events.into_iter().map(|e| e.event_type).collect());
            }
        }
        self.write_listings(&changes).await?;
        let entries = self.write_page(shard, last_seq, &changes).await?;
        self.checkpoints
            .lock()
            .expect("poisoned")
            .insert(shard.to_string(), last_seq.to_string());
        if let Some(p) = &self.progress {
            p.relayed(&entries);
        }
        let notifications = entries
            .iter()
            .zip(types)
            .map(|(e, event_types)| Notification {
                stream_id: e.stream.stream_id.clone(),
                stream_type: e.stream.stream_type.clone(),
                stream_revision: Revision::new(e.first_revision + e.count - 1),
                first_revision: Revision::new(e.first_revision),
                event_types,
                position: Some(Position::new(e.position)),
            })
            .collect();
        Ok(RelayOutput {
            entries,
            notifications,
        })
    }

    /// One listing entry per stream (moved to its new `updatedAt`), and the
    /// type's registry entry for new streams. Idempotent.
    async fn write_listings(&self, changes: &[TipChange]) -> Result<(), DynamoError> {
        let mut first_prev: HashMap<&StreamKey, u64> = HashMap::new();
        let mut last: HashMap<&StreamKey, &TipChange> = HashMap::new();
        for c in changes {
            first_prev.entry(&c.stream).or_insert(c.previous_update);
            last.insert(&c.stream, c);
        }
        let mut writes = Vec::new();
        for (stream, c) in &last {
            let pk = items::listing_pk(&stream.stream_type);
            let updated = c.tip.updated.max(0) as u64;
            let mut item = items::key(&pk, items::listing_sk(updated, stream.stream_id.as_str()));
            item.insert("i".into(), s(stream.stream_id.as_str()));
            item.insert("r".into(), n(c.tip.revision));
            item.insert("c".into(), n(c.tip.created));
            item.insert("u".into(), n(updated));
            writes.push(
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(item))
                            .build()
                            .map_err(|e| DynamoError::request("BatchWriteItem", e))?,
                    )
                    .build(),
            );
            let prev = first_prev[stream];
            if prev == 0 {
                writes.push(
                    WriteRequest::builder()
                        .put_request(
                            PutRequest::builder()
                                .set_item(Some(items::key(
                                    items::TYPES_PK,
                                    stream.stream_type.as_str(),
                                )))
                                .build()
                                .map_err(|e| DynamoError::request("BatchWriteItem", e))?,
                        )
                        .build(),
                );
            } else if prev != updated {
                writes.push(
                    WriteRequest::builder()
                        .delete_request(
                            DeleteRequest::builder()
                                .set_key(Some(items::key(
                                    &pk,
                                    items::listing_sk(prev, stream.stream_id.as_str()),
                                )))
                                .build()
                                .map_err(|e| DynamoError::request("BatchWriteItem", e))?,
                        )
                        .build(),
                );
            }
        }
        // Type registry puts may repeat within a batch: BatchWriteItem
        // refuses duplicate keys, so dedupe.
        let mut seen = std::collections::HashSet::new();
        writes.retain(|w| {
            let key = w
                .put_request()
                .map(|p| format!("{:?}{:?}", p.item().get(items::PK), p.item().get(items::SK)))
                .or_else(|| {
                    w.delete_request().map(|d| {
                        format!("{:?}{:?}", d.key().get(items::PK), d.key().get(items::SK))
                    })
                })
                .unwrap_or_default();
            seen.insert(key)
        });
        for chunk in writes.chunks(25) {
            let mut pending = chunk.to_vec();
            let mut backoff = crate::retry::Backoff::default();
            while !pending.is_empty() {
                let out = self
                    .store
                    .client()
                    .batch_write_item()
                    .request_items(self.store.table(), pending)
                    .send()
                    .await
                    .map_err(|e| DynamoError::request("BatchWriteItem", DisplayErrorContext(e)))?;
                pending = out
                    .unprocessed_items()
                    .and_then(|m| m.get(self.store.table()))
                    .cloned()
                    .unwrap_or_default();
                if !pending.is_empty() && !backoff.wait().await {
                    return Err(DynamoError::Contention(backoff.attempts()));
                }
            }
        }
        Ok(())
    }

    /// Appends one page to the feed at the next free position.
    async fn write_page(
        &self,
        shard: &str,
        last_seq: &str,
        changes: &[TipChange],
    ) -> Result<Vec<FeedEntry>, DynamoError> {
        let client = self.store.client();
        let total: u64 = changes.iter().map(|c| c.count).sum();
        let mut backoff = crate::retry::Backoff::default();
        loop {
            let head = client
                .query()
                .table_name(self.store.table())
                .key_condition_expression("p = :p")
                .expression_attribute_values(":p", s(items::FEED_PK))
                .projection_expression("p, s, l")
                .scan_index_forward(false)
                .limit(1)
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| DynamoError::request("Query", DisplayErrorContext(e)))?;
            let next = match head.items().first() {
                Some(page) => req_u64(page, "l")? + 1,
                None => 1,
            };
            let mut entries = Vec::with_capacity(changes.len());
            let mut position = next;
            let mut texts = Vec::with_capacity(changes.len());
            for c in changes {
                let first = c.tip.revision - c.count + 1;
                texts.push(s(format!(
                    "{}|{}|{}|{}",
                    c.stream.stream_type, c.stream.stream_id, first, c.count
                )));
                entries.push(FeedEntry {
                    stream: c.stream.clone(),
                    first_revision: first,
                    count: c.count,
                    position,
                });
                position += c.count;
            }
            let mut item = items::key(items::FEED_PK, pad(next));
            item.insert("l".into(), n(next + total - 1));
            item.insert("h".into(), s(shard));
            item.insert("q".into(), s(last_seq));
            item.insert("w".into(), n(Timestamp::now().as_micros()));
            item.insert("g".into(), AttributeValue::L(texts));
            let put = client
                .put_item()
                .table_name(self.store.table())
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(p)")
                .send()
                .await;
            match put {
                Ok(_) => return Ok(entries),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
                {
                    // Another relay took the position: read the head again.
                    if !backoff.wait().await {
                        return Err(DynamoError::Contention(backoff.attempts()));
                    }
                }
                Err(e) => return Err(DynamoError::request("PutItem", DisplayErrorContext(e))),
            }
        }
    }
}

/// A running poller; stops when dropped or on [`PollerHandle::stop`].
pub struct PollerHandle {
    task: tokio::task::JoinHandle<()>,
}

impl PollerHandle {
    /// Stops the poller.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for PollerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls the table's DynamoDB Stream (every shard, from its trim horizon)
/// and hands each batch to the relay; for local use and tests. Batches
/// that fail are retried from the same iterator.
pub fn spawn_poller(
    streams: aws_sdk_dynamodbstreams::Client,
    relay: Relay,
    interval: Duration,
) -> PollerHandle {
    spawn_poller_with(streams, relay, interval, |_| async {})
}

/// [`spawn_poller`], handing each batch's [`RelayOutput`] (its feed
/// entries and notifications) to `on_output`, awaited before the next batch
/// is read. The output of a batch is handed over once: the relay's
/// checkpoint has moved past it by then.
pub fn spawn_poller_with<F, Fut>(
    streams: aws_sdk_dynamodbstreams::Client,
    relay: Relay,
    interval: Duration,
    on_output: F,
) -> PollerHandle
where
    F: Fn(RelayOutput) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let task = tokio::spawn(async move {
        loop {
            if let Err(e) = poll_forever(&streams, &relay, interval, &on_output).await {
                tracing::warn!(error = %e, "relay poller failed; restarting");
                tokio::time::sleep(interval).await;
            }
        }
    });
    PollerHandle { task }
}

async fn poll_forever<F, Fut>(
    streams: &aws_sdk_dynamodbstreams::Client,
    relay: &Relay,
    interval: Duration,
    on_output: &F,
) -> Result<(), DynamoError>
where
    F: Fn(RelayOutput) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let table = relay
        .store
        .client()
        .describe_table()
        .table_name(relay.store.table())
        .send()
        .await
        .map_err(|e| DynamoError::request("DescribeTable", DisplayErrorContext(e)))?;
    let arn = table
        .table()
        .and_then(|t| t.latest_stream_arn())
        .ok_or_else(|| DynamoError::Schema("the table has no stream".into()))?
        .to_string();
    let mut iterators: HashMap<String, Option<String>> = HashMap::new();
    loop {
        let desc = streams
            .describe_stream()
            .stream_arn(&arn)
            .send()
            .await
            .map_err(|e| DynamoError::request("DescribeStream", DisplayErrorContext(e)))?;
        for shard in desc
            .stream_description()
            .map(|d| d.shards())
            .unwrap_or_default()
        {
            let Some(id) = shard.shard_id() else { continue };
            if !iterators.contains_key(id) {
                let it = streams
                    .get_shard_iterator()
                    .stream_arn(&arn)
                    .shard_id(id)
                    .shard_iterator_type(
                        aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon,
                    )
                    .send()
                    .await
                    .map_err(|e| {
                        DynamoError::request("GetShardIterator", DisplayErrorContext(e))
                    })?;
                iterators.insert(id.to_string(), it.shard_iterator().map(str::to_string));
            }
        }
        let mut any = false;
        for (shard, iterator) in iterators.iter_mut() {
            let Some(it) = iterator.clone() else { continue };
            let out = streams
                .get_records()
                .shard_iterator(it)
                .limit(1000)
                .send()
                .await
                .map_err(|e| DynamoError::request("GetRecords", DisplayErrorContext(e)))?;
            let records: Vec<ChangeRecord> = out
                .records()
                .iter()
                .filter_map(|r| ChangeRecord::from_streams_record(shard, r))
                .collect();
            if !records.is_empty() {
                any = true;
                let output = relay.process(&records).await?;
                if !output.entries.is_empty() {
                    on_output(output).await;
                }
            }
            *iterator = out.next_shard_iterator().map(str::to_string);
        }
        if !any {
            tokio::time::sleep(interval).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_order_by_value() {
        assert!(seq_gt("100", "99"));
        assert!(seq_gt("1100000000017454423010", "1100000000017454423009"));
        assert!(!seq_gt("5", "5"));
    }

    #[test]
    fn pages_parse_with_positions_and_reject_forgeries() {
        let mut page = items::key(items::FEED_PK, pad(7));
        page.insert(
            "g".into(),
            AttributeValue::L(vec![s("order|o-1|3|2"), s("cart|c:9|1|1")]),
        );
        let e = parse_page(&page).unwrap();
        assert_eq!((e[0].position, e[0].first_revision, e[0].count), (7, 3, 2));
        assert_eq!((e[1].position, e[1].stream.stream_id.as_str()), (9, "c:9"));
        page.insert("g".into(), AttributeValue::L(vec![s("order|o-1|3")]));
        assert!(parse_page(&page).is_err());
    }
}
