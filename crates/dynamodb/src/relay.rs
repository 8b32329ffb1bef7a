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
//! makes the feed idempotent: records at or below it are never put into
//! the feed again. Listings are written before the page, idempotently, so a
//! crash between the two is repaired by the replay.
//!
//! Announcing is a second phase: the caller publishes the notifications
//! [`Relay::process`] returns, then calls [`Relay::acknowledge`], which
//! moves the shard's announcement mark (item `p = "A"`, `s` = shard). A
//! delivery of records at or below the mark returns nothing; records above
//! the mark but already in the feed (their first delivery died or failed
//! between the feed write and the publishing) get their notifications
//! again, rebuilt from the records and the positions their feed page
//! holds. So every append is announced at least once, and twice only when
//! a delivery failed or died before its acknowledgement.

use std::collections::{BTreeMap, HashMap, HashSet};
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

pub mod replay;

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
        // Positions and revisions stay below u64::MAX: an entry's last
        // position and revision and the next entry's position all exist.
        if first_revision == 0
            || count == 0
            || first_revision.checked_add(count).is_none()
            || position.checked_add(count).is_none()
        {
            return Err(bad());
        }
        out.push(FeedEntry {
            stream,
            first_revision,
            count,
            position,
        });
        position += count;
    }
    if let Some(last) = get_u64(page, "l")?
        && position.checked_sub(1) != Some(last)
    {
        return Err(DynamoError::Corrupt(format!(
            "feed page {sk}: entries end at {}, page says {last}",
            position.saturating_sub(1)
        )));
    }
    Ok(out)
}

/// Parses an item of a type's feed index (entries `id|first|count|position`).
pub fn parse_type_feed_item(
    stream_type: &StreamType,
    item: &Item,
) -> Result<Vec<FeedEntry>, DynamoError> {
    let Some(AttributeValue::L(list)) = item.get("g") else {
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

#[derive(Default)]
struct ProgressState {
    committed: HashMap<StreamKey, u64>,
    relayed: HashMap<StreamKey, u64>,
    position: u64,
    type_positions: HashMap<StreamType, u64>,
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
            let t = st
                .type_positions
                .entry(e.stream.stream_type.clone())
                .or_default();
            *t = (*t).max(e.position + e.count - 1);
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

    /// Waits (at most `timeout`) until a position of `stream_type` past
    /// `after` is relayed.
    pub async fn wait_type_position(
        &self,
        stream_type: &StreamType,
        after: u64,
        timeout: Duration,
    ) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let reached = self
                .state
                .lock()
                .expect("poisoned")
                .type_positions
                .get(stream_type)
                .is_some_and(|p| *p > after);
            if reached || tokio::time::timeout_at(deadline, notified).await.is_err() {
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
    /// The appends this call put into the feed, in feed order (empty when
    /// every record of the batch was already in the feed).
    pub entries: Vec<FeedEntry>,
    /// One notification per append of the batch not yet announced, in feed
    /// order: the appends of `entries`, preceded by the appends an earlier
    /// delivery of the same records put into the feed without their
    /// announcement being acknowledged ([`Relay::acknowledge`]).
    pub notifications: Vec<Notification>,
    /// Per shard, the last record the notifications account for.
    covered: BTreeMap<String, String>,
}

impl RelayOutput {
    /// Adds the output of a later batch (of the same or another shard).
    pub fn extend(&mut self, later: RelayOutput) {
        self.entries.extend(later.entries);
        self.notifications.extend(later.notifications);
        for (shard, seq) in later.covered {
            let mark = self.covered.entry(shard).or_default();
            if mark.is_empty() || seq_gt(&seq, mark) {
                *mark = seq;
            }
        }
    }
}

/// Orders stream sequence numbers (decimal strings of varying length).
fn seq_gt(a: &str, b: &str) -> bool {
    (a.len(), a) > (b.len(), b)
}

/// A sequence number as a string that orders like the number (DynamoDB
/// Streams sequence numbers have at most 40 digits).
fn seq_key(seq: &str) -> String {
    format!("{seq:0>48}")
}

/// The greatest of some sequence numbers.
fn max_seq<'a>(seqs: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    seqs.into_iter().fold(None, |m, s| match m {
        Some(m) if !seq_gt(s, m) => Some(m),
        _ => Some(s),
    })
}

/// A shard's feed checkpoint as read: the last record of the shard in the
/// feed, and the checkpoint item's value (the condition of the next page's
/// transaction; `None`: no item).
#[derive(Debug, Clone, Default)]
struct Checkpoint {
    seq: Option<String>,
    item: Option<String>,
}

/// Most distinct stream types on one feed page: the page, the checkpoint
/// and one type-index item per type are one transaction (at most 100
/// items).
const PAGE_TYPES: usize = 64;
/// Most bytes of entries on one feed page (items hold at most 400 KB).
const PAGE_BYTES: usize = 256 * 1024;

struct TipChange {
    stream: StreamKey,
    tip: Tip,
    count: u64,
    previous_update: u64,
}

impl TipChange {
    fn first_revision(&self) -> u64 {
        self.tip.revision - self.count + 1
    }
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
    progress: Option<Arc<RelayProgress>>,
    skip_unreadable: bool,
}

impl Relay {
    /// A relay writing into the store's table.
    pub fn new(store: DynamoStore) -> Self {
        Self {
            store,
            progress: None,
            skip_unreadable: false,
        }
    }

    /// Leaves a stream record it cannot read (an item this crate did not
    /// write, an event blob it cannot decode) out of the feed, with an
    /// error in the log, instead of failing the batch. For a consumer with
    /// no failure queue — the in-process poller, which would otherwise
    /// stop the feed of every stream at that record. The relay function
    /// keeps the default: the batch fails from that record, Lambda retries
    /// it and then moves it to the failure queue, where it stays visible
    /// and can be replayed.
    pub fn skipping_unreadable(mut self) -> Self {
        self.skip_unreadable = true;
        self
    }

    /// Publishes progress to a store in the same process.
    pub fn with_progress(mut self, progress: Arc<RelayProgress>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// The last sequence number of `shard` already in the feed, read from
    /// the table every time, never from memory: Lambda does not pin a
    /// shard to one execution environment, so another instance may have
    /// relayed this shard's records since this one last did, and a batch
    /// judged against an old checkpoint would be put into the feed a
    /// second time.
    ///
    /// The shard's checkpoint item (`C`, one consistent `GetItem`) is
    /// written in the same transaction as every feed page of the shard, so
    /// it always names the shard's last record in the feed. Without one (a
    /// table written before it existed), the feed's pages are read back
    /// from the newest to the shard's newest.
    async fn checkpoint(&self, shard: &str) -> Result<Checkpoint, DynamoError> {
        let client = self.store.client();
        let saved = client
            .get_item()
            .table_name(self.store.table())
            .set_key(Some(items::key(items::CHECKPOINT_PK, shard)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| DynamoError::request("GetItem", DisplayErrorContext(e)))?;
        if let Some(item) = saved.item() {
            let q = get_str(item, "q")?.to_string();
            return Ok(Checkpoint {
                seq: Some(q.clone()),
                item: Some(q),
            });
        }
        let mut start: Option<Item> = None;
        loop {
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
                    return Ok(Checkpoint {
                        seq: Some(get_str(page, "q")?.to_string()),
                        item: None,
                    });
                }
            }
            start = out.last_evaluated_key().cloned();
            if start.is_none() {
                return Ok(Checkpoint::default());
            }
        }
    }

    /// The last sequence number of `shard` whose notifications were
    /// acknowledged: read from the shard's mark item every time (one small
    /// consistent `GetItem`), never from memory, for the reason given at
    /// [`Relay::checkpoint`].
    async fn announced(&self, shard: &str) -> Result<Option<String>, DynamoError> {
        let out = self
            .store
            .client()
            .get_item()
            .table_name(self.store.table())
            .set_key(Some(items::key(items::ANNOUNCED_PK, shard)))
            .projection_expression("q")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| DynamoError::request("GetItem", DisplayErrorContext(e)))?;
        Ok(match out.item() {
            Some(item) => Some(get_str(item, "q")?.to_string()),
            None => None,
        })
    }

    /// Records that every notification of `output` has been published (or
    /// handed to whoever announces them), so that a later delivery of the
    /// same records announces nothing again. Until then, each delivery of
    /// those records returns their notifications anew.
    ///
    /// One small conditional `PutItem` per shard of the output that had
    /// notifications; the mark only moves forward.
    pub async fn acknowledge(&self, output: &RelayOutput) -> Result<(), DynamoError> {
        for (shard, seq) in &output.covered {
            let mut item = items::key(items::ANNOUNCED_PK, shard.as_str());
            item.insert("q".into(), s(seq));
            item.insert("k".into(), s(seq_key(seq)));
            item.insert("w".into(), n(Timestamp::now().as_micros()));
            let put = self
                .store
                .client()
                .put_item()
                .table_name(self.store.table())
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(p) OR k < :k")
                .expression_attribute_values(":k", s(seq_key(seq)))
                .send()
                .await;
            match put {
                Ok(_) => {}
                // A later mark is already there.
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|se| se.is_conditional_check_failed_exception()) => {}
                Err(e) => return Err(DynamoError::request("PutItem", DisplayErrorContext(e))),
            }
        }
        Ok(())
    }

    /// Relays a batch of one shard's records, in stream order.
    ///
    /// Records whose notifications were acknowledged are skipped; records
    /// already in the feed but not acknowledged (a delivery whose
    /// announcement failed or whose process died after the feed write) get
    /// their notifications again, with the positions the feed holds for
    /// them; the other records are put into the feed. The caller publishes
    /// the notifications, then calls [`Relay::acknowledge`].
    pub async fn process(&self, records: &[ChangeRecord]) -> Result<RelayOutput, DynamoError> {
        let mut by_shard: BTreeMap<&str, Vec<&ChangeRecord>> = BTreeMap::new();
        for r in records {
            by_shard.entry(r.shard_id.as_str()).or_default().push(r);
        }
        let mut output = RelayOutput::default();
        for (shard, records) in by_shard {
            output.extend(self.process_shard(shard, &records).await?);
        }
        Ok(output)
    }

    async fn process_shard(
        &self,
        shard: &str,
        records: &[&ChangeRecord],
    ) -> Result<RelayOutput, DynamoError> {
        let announced = self.announced(shard).await?;
        let pending: Vec<&ChangeRecord> = records
            .iter()
            .copied()
            .filter(|r| {
                announced
                    .as_deref()
                    .is_none_or(|a| seq_gt(&r.sequence_number, a))
            })
            .collect();
        let Some(last_seq) = max_seq(pending.iter().map(|r| r.sequence_number.as_str())) else {
            return Ok(RelayOutput::default());
        };
        // A record that cannot be read (an item this crate did not write,
        // or a format it cannot decode) fails the batch, or, when skipping
        // (`skipping_unreadable`), is logged and left out of the feed.
        let unreadable = |seq: &str, stream: Option<&StreamKey>, e: DynamoError| {
            if !self.skip_unreadable {
                return Err(e);
            }
            tracing::error!(
                shard,
                sequence_number = seq,
                stream = stream.map(tracing::field::display),
                error = %e,
                "stream record cannot be read: left out of the feed and not announced"
            );
            Ok(())
        };
        let mut changes: Vec<(&str, TipChange)> = Vec::new();
        for r in &pending {
            if let Some(img) = &r.new_image {
                match parse_tip_change(img) {
                    Ok(Some(c)) => changes.push((r.sequence_number.as_str(), c)),
                    Ok(None) => {}
                    Err(e) => unreadable(&r.sequence_number, None, e)?,
                }
            }
        }
        changes.sort_by(|a, b| (a.0.len(), a.0).cmp(&(b.0.len(), b.0)));
        let mut types = Vec::with_capacity(changes.len());
        let mut readable = Vec::with_capacity(changes.len());
        for (seq, c) in changes {
            match self.event_types(&c).await {
                Ok(t) => {
                    types.push(t);
                    readable.push((seq, c));
                }
                Err(e @ DynamoError::Corrupt(_)) => unreadable(seq, Some(&c.stream), e)?,
                Err(e) => return Err(e),
            }
        }
        let changes = readable;
        if changes.is_empty() {
            return Ok(RelayOutput::default());
        }
        // Per change, in stream order: its feed entry (`None`: behind the
        // checkpoint but in no page).
        let mut all: Vec<Option<FeedEntry>> = Vec::with_capacity(changes.len());
        let mut written: Vec<FeedEntry> = Vec::new();
        let mut backoff = crate::retry::Backoff::default();
        let mut checkpoint = self.checkpoint(shard).await?;
        while all.len() < changes.len() {
            let rest = &changes[all.len()..];
            // Records up to the checkpoint are in the feed already.
            let split = rest
                .iter()
                .position(|(seq, _)| checkpoint.seq.as_deref().is_none_or(|c| seq_gt(seq, c)))
                .unwrap_or(rest.len());
            if split > 0 {
                all.extend(self.find_entries(shard, &rest[..split]).await?);
                continue;
            }
            let group = page_group(rest);
            let fresh: Vec<&TipChange> = rest[..group].iter().map(|(_, c)| c).collect();
            // The last group's page covers the batch's last record (also
            // records that are not appends); an earlier one its own last.
            let covers = if group == rest.len() {
                last_seq
            } else {
                rest[group - 1].0
            };
            self.write_listings(&fresh).await?;
            match self
                .write_page_after(shard, covers, &fresh, &checkpoint)
                .await?
            {
                Some(entries) => {
                    all.extend(entries.iter().cloned().map(Some));
                    written.extend(entries);
                    checkpoint = Checkpoint {
                        seq: Some(covers.to_string()),
                        item: Some(covers.to_string()),
                    };
                }
                None => {
                    // The checkpoint moved since it was read (another
                    // instance relayed these records, or this relay's own
                    // transaction was applied and its answer lost): sort
                    // the records again against it.
                    if !backoff.wait().await {
                        return Err(DynamoError::Contention(backoff.attempts()));
                    }
                    checkpoint = self.checkpoint(shard).await?;
                }
            }
        }
        let known: Vec<FeedEntry> = all.iter().flatten().cloned().collect();
        if let Some(p) = &self.progress {
            p.relayed(&known);
        }
        let notifications = all
            .into_iter()
            .zip(types)
            .filter_map(|(e, event_types)| {
                let e = e?;
                Some(Notification {
                    stream_id: e.stream.stream_id.clone(),
                    stream_type: e.stream.stream_type.clone(),
                    stream_revision: Revision::new(e.first_revision + e.count - 1),
                    first_revision: Revision::new(e.first_revision),
                    event_types,
                    position: Some(Position::new(e.position)),
                })
            })
            .collect::<Vec<_>>();
        let mut covered = BTreeMap::new();
        if !notifications.is_empty() {
            covered.insert(shard.to_string(), last_seq.to_string());
        }
        Ok(RelayOutput {
            entries: written,
            notifications,
            covered,
        })
    }

    /// The event types of an append: from the tip image, or read from the
    /// table for an append written as a chunk.
    async fn event_types(&self, c: &TipChange) -> Result<Vec<EventType>, DynamoError> {
        let first = c.first_revision();
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
            Ok(t)
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
            Ok(events.into_iter().map(|e| e.event_type).collect())
        }
    }

    /// The feed entries of appends whose records are already in the feed
    /// (at or below the shard's checkpoint), from the shard's newest pages
    /// back to the first page that covers only earlier records. A record
    /// in no page (given up on by an earlier delivery, so never put into
    /// the feed) is logged and has no entry.
    async fn find_entries(
        &self,
        shard: &str,
        stale: &[(&str, TipChange)],
    ) -> Result<Vec<Option<FeedEntry>>, DynamoError> {
        let oldest = stale[0].0;
        let mut wanted: HashMap<(StreamKey, u64), Vec<usize>> = HashMap::new();
        for (i, (_, c)) in stale.iter().enumerate() {
            wanted
                .entry((c.stream.clone(), c.first_revision()))
                .or_default()
                .push(i);
        }
        let mut found: Vec<Option<FeedEntry>> = vec![None; stale.len()];
        let mut missing = wanted.len();
        let mut start: Option<Item> = None;
        'pages: for _ in 0..1000 {
            let out = self
                .store
                .client()
                .query()
                .table_name(self.store.table())
                .key_condition_expression("p = :p")
                .expression_attribute_values(":p", s(items::FEED_PK))
                .projection_expression("p, s, h, q, g")
                .scan_index_forward(false)
                .consistent_read(true)
                .limit(25)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| DynamoError::request("Query", DisplayErrorContext(e)))?;
            for page in out.items() {
                if get_str(page, "h").ok() != Some(shard) {
                    continue;
                }
                if seq_gt(oldest, get_str(page, "q")?) {
                    // This page and the older ones hold earlier records only.
                    break 'pages;
                }
                for e in parse_page(page)? {
                    if let Some(at) = wanted.remove(&(e.stream.clone(), e.first_revision)) {
                        for i in at {
                            found[i] = Some(e.clone());
                        }
                        missing -= 1;
                    }
                }
                if missing == 0 {
                    break 'pages;
                }
            }
            start = out.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        for (i, (seq, c)) in stale.iter().enumerate() {
            if found[i].is_none() {
                tracing::warn!(
                    shard,
                    sequence_number = seq,
                    stream_type = %c.stream.stream_type,
                    stream_id = %c.stream.stream_id,
                    first_revision = c.first_revision(),
                    "record behind the feed checkpoint but in no feed page: not announced"
                );
            }
        }
        Ok(found)
    }

    /// One listing entry per stream (moved to its new `updatedAt`), and the
    /// type's registry entry for new streams. Idempotent.
    async fn write_listings(&self, changes: &[&TipChange]) -> Result<(), DynamoError> {
        let mut first_prev: HashMap<&StreamKey, u64> = HashMap::new();
        let mut last: HashMap<&StreamKey, &TipChange> = HashMap::new();
        for &c in changes {
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

    /// [`Self::write_page_after`] the checkpoint item of `label` as it is
    /// now (none: its first page); for pages written under a label of
    /// their own (replays).
    async fn write_page(
        &self,
        label: &str,
        covers: &str,
        changes: &[&TipChange],
    ) -> Result<Option<Vec<FeedEntry>>, DynamoError> {
        let saved = self
            .store
            .client()
            .get_item()
            .table_name(self.store.table())
            .set_key(Some(items::key(items::CHECKPOINT_PK, label)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| DynamoError::request("GetItem", DisplayErrorContext(e)))?;
        let item = match saved.item() {
            Some(item) => Some(get_str(item, "q")?.to_string()),
            None => None,
        };
        let checkpoint = Checkpoint {
            seq: item.clone(),
            item,
        };
        self.write_page_after(label, covers, changes, &checkpoint)
            .await
    }

    /// Appends one page to the feed at the next free position, in one
    /// transaction with the shard's checkpoint item (moved to `covers`,
    /// conditioned on its value as read) and the page's per-type index
    /// items. `None` when the checkpoint moved since it was read (another
    /// relay instance put these records into the feed, or this call's own
    /// transaction was applied and its answer lost), so that the caller
    /// sorts the records again; a position taken by another shard's page
    /// is tried again at the new head.
    async fn write_page_after(
        &self,
        shard: &str,
        covers: &str,
        changes: &[&TipChange],
        checkpoint: &Checkpoint,
    ) -> Result<Option<Vec<FeedEntry>>, DynamoError> {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
        let client = self.store.client();
        let table = self.store.table();
        let total = changes
            .iter()
            .try_fold(0u64, |sum, c| sum.checked_add(c.count))
            .ok_or_else(|| DynamoError::Corrupt("append counts overflow".into()))?;
        let put = |item: Item, condition: Option<(&str, Option<(&str, AttributeValue)>)>| {
            let mut p = Put::builder().table_name(table).set_item(Some(item));
            if let Some((expr, value)) = condition {
                p = p.condition_expression(expr);
                if let Some((name, v)) = value {
                    p = p.expression_attribute_values(name, v);
                }
            }
            p.build()
                .map(|p| TransactWriteItem::builder().put(p).build())
                .map_err(|e| DynamoError::request("TransactWriteItems", e))
        };
        let mut backoff = crate::retry::Backoff::default();
        loop {
            let head = client
                .query()
                .table_name(table)
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
                Some(page) => req_u64(page, "l")?.checked_add(1).ok_or_else(|| {
                    DynamoError::Corrupt("the feed's last position is u64::MAX".into())
                })?,
                None => 1,
            };
            let last = next
                .checked_add(total - 1)
                .ok_or_else(|| DynamoError::Corrupt("the feed has run out of positions".into()))?;
            let mut entries = Vec::with_capacity(changes.len());
            let mut position = next;
            let mut texts = Vec::with_capacity(changes.len());
            let mut by_type: BTreeMap<&StreamType, Vec<AttributeValue>> = BTreeMap::new();
            let mut type_first: HashMap<&StreamType, (u64, u64)> = HashMap::new();
            for c in changes {
                let first = c.first_revision();
                texts.push(s(format!(
                    "{}|{}|{}|{}",
                    c.stream.stream_type, c.stream.stream_id, first, c.count
                )));
                by_type
                    .entry(&c.stream.stream_type)
                    .or_default()
                    .push(s(format!(
                        "{}|{}|{}|{position}",
                        c.stream.stream_id, first, c.count
                    )));
                let range = type_first
                    .entry(&c.stream.stream_type)
                    .or_insert((position, position));
                range.1 = position + c.count - 1;
                entries.push(FeedEntry {
                    stream: c.stream.clone(),
                    first_revision: first,
                    count: c.count,
                    position,
                });
                position += c.count;
            }
            let mut page = items::key(items::FEED_PK, pad(next));
            page.insert("l".into(), n(last));
            page.insert("h".into(), s(shard));
            page.insert("q".into(), s(covers));
            page.insert("w".into(), n(Timestamp::now().as_micros()));
            page.insert("g".into(), AttributeValue::L(texts));
            let mut cp = items::key(items::CHECKPOINT_PK, shard);
            cp.insert("q".into(), s(covers));
            cp.insert("a".into(), n(next));
            let mut writes = vec![
                put(page, Some(("attribute_not_exists(p)", None)))?,
                put(
                    cp,
                    Some(match &checkpoint.item {
                        Some(q) => ("q = :q", Some((":q", s(q)))),
                        None => ("attribute_not_exists(p)", None),
                    }),
                )?,
            ];
            for (t, list) in by_type {
                let (first, last) = type_first[t];
                let mut item = items::key(items::type_feed_pk(t), pad(first));
                item.insert("l".into(), n(last));
                item.insert("g".into(), AttributeValue::L(list));
                writes.push(put(item, None)?);
            }
            let result = client
                .transact_write_items()
                .set_transact_items(Some(writes))
                .send()
                .await;
            let retry = match result {
                Ok(_) => return Ok(Some(entries)),
                Err(aws_sdk_dynamodb::error::SdkError::ServiceError(se)) => match se.err() {
                    TransactWriteItemsError::TransactionCanceledException(c) => {
                        let failed = |i: usize| {
                            c.cancellation_reasons().get(i).and_then(|r| r.code())
                                == Some("ConditionalCheckFailed")
                        };
                        if failed(1) {
                            return Ok(None);
                        }
                        // The position is another shard's (`failed(0)`),
                        // or a transient conflict: read the head again.
                        true
                    }
                    other => {
                        if !other.meta().code().is_some_and(crate::retry::is_retryable) {
                            return Err(DynamoError::request(
                                "TransactWriteItems",
                                DisplayErrorContext(
                                    aws_sdk_dynamodb::error::SdkError::ServiceError(se),
                                ),
                            ));
                        }
                        true
                    }
                },
                Err(e) => {
                    return Err(DynamoError::request(
                        "TransactWriteItems",
                        DisplayErrorContext(e),
                    ));
                }
            };
            if retry && !backoff.wait().await {
                return Err(DynamoError::Contention(backoff.attempts()));
            }
        }
    }
}

/// How many of `changes` (in stream order) go on the next feed page: at
/// most [`PAGE_TYPES`] stream types and about [`PAGE_BYTES`] of entries,
/// at least one.
fn page_group(changes: &[(&str, TipChange)]) -> usize {
    let mut types: HashSet<&StreamType> = HashSet::new();
    let mut bytes = 0usize;
    for (i, (_, c)) in changes.iter().enumerate() {
        let size = c.stream.stream_type.as_str().len() + c.stream.stream_id.as_str().len() + 48;
        if i > 0
            && ((!types.contains(&c.stream.stream_type) && types.len() == PAGE_TYPES)
                || bytes + 2 * size > PAGE_BYTES)
        {
            return i;
        }
        types.insert(&c.stream.stream_type);
        bytes += 2 * size;
    }
    changes.len()
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
/// that fail are retried from the same iterator. Nothing is published:
/// each batch's notifications are acknowledged as soon as it is relayed.
pub fn spawn_poller(
    streams: aws_sdk_dynamodbstreams::Client,
    relay: Relay,
    interval: Duration,
) -> PollerHandle {
    spawn_poller_with(streams, relay, interval, |_| async { true })
}

/// [`spawn_poller`], handing each batch's [`RelayOutput`] that has
/// notifications to `on_output`, awaited before the next batch is read.
/// `on_output` answers whether every notification was published: then the
/// output is acknowledged ([`Relay::acknowledge`]) and the poller moves
/// on; otherwise the same batch is read and handed over again (its
/// notifications re-derived from the feed) after a pause, until it is
/// published. Notifications are thus announced at least once, also across
/// a crash of the process between the feed write and the publishing.
pub fn spawn_poller_with<F, Fut>(
    streams: aws_sdk_dynamodbstreams::Client,
    relay: Relay,
    interval: Duration,
    on_output: F,
) -> PollerHandle
where
    F: Fn(RelayOutput) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    // No failure queue here: a record that cannot be read is logged and
    // skipped, or the feed of every stream would stop at it.
    let relay = relay.skipping_unreadable();
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
    Fut: std::future::Future<Output = bool>,
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
    // Per shard: its parent, and its iterator (`None` once a closed shard
    // has been read to its end).
    let mut parents: HashMap<String, Option<String>> = HashMap::new();
    let mut iterators: HashMap<String, Option<String>> = HashMap::new();
    loop {
        // Every shard, over DescribeStream's pages (100 shards each).
        let mut start: Option<String> = None;
        loop {
            let desc = streams
                .describe_stream()
                .stream_arn(&arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .map_err(|e| DynamoError::request("DescribeStream", DisplayErrorContext(e)))?;
            let Some(d) = desc.stream_description() else {
                break;
            };
            for shard in d.shards() {
                if let Some(id) = shard.shard_id() {
                    parents
                        .entry(id.to_string())
                        .or_insert_with(|| shard.parent_shard_id().map(str::to_string));
                }
            }
            start = d.last_evaluated_shard_id().map(str::to_string);
            if start.is_none() {
                break;
            }
        }
        let finished: HashSet<&str> = iterators
            .iter()
            .filter(|(_, it)| it.is_none())
            .map(|(id, _)| id.as_str())
            .collect();
        let ready: Vec<String> = readable_shards(&parents, &finished)
            .into_iter()
            .filter(|id| !iterators.contains_key(*id))
            .map(str::to_string)
            .collect();
        for id in ready {
            let it = streams
                .get_shard_iterator()
                .stream_arn(&arn)
                .shard_id(&id)
                .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
                .send()
                .await
                .map_err(|e| DynamoError::request("GetShardIterator", DisplayErrorContext(e)))?;
            iterators.insert(id, it.shard_iterator().map(str::to_string));
        }
        let mut any = false;
        let mut stalled = false;
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
                if !output.notifications.is_empty() {
                    if !on_output(output.clone()).await {
                        // Not announced: read the batch again (from the
                        // same iterator) after a pause.
                        tracing::warn!(shard = %shard, "batch not announced; handing it over again");
                        stalled = true;
                        continue;
                    }
                    relay.acknowledge(&output).await?;
                }
            }
            *iterator = out.next_shard_iterator().map(str::to_string);
        }
        if !any || stalled {
            tokio::time::sleep(interval).await;
        }
    }
}

/// The shards whose records may be read now, parents first: a shard whose
/// parent is known and not yet read to its end waits, so that a stream's
/// records (which move to the child shards when a shard splits) are relayed
/// in order. A parent no longer listed (trimmed after 24 hours) does not
/// hold its children back.
fn readable_shards<'a>(
    parents: &'a HashMap<String, Option<String>>,
    finished: &HashSet<&str>,
) -> Vec<&'a str> {
    let mut out: Vec<&str> = parents
        .iter()
        .filter(|(_, parent)| {
            parent
                .as_deref()
                .is_none_or(|p| !parents.contains_key(p) || finished.contains(p))
        })
        .map(|(id, _)| id.as_str())
        .collect();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_wait_until_their_parent_is_read_to_its_end() {
        let parents: HashMap<String, Option<String>> = [
            ("root", None),
            ("left", Some("root")),
            ("right", Some("root")),
            ("grandchild", Some("left")),
            ("orphan", Some("trimmed-long-ago")),
        ]
        .into_iter()
        .map(|(id, p)| (id.to_string(), p.map(str::to_string)))
        .collect();
        let none = HashSet::new();
        assert_eq!(readable_shards(&parents, &none), ["orphan", "root"]);
        let root_done: HashSet<&str> = ["root"].into();
        assert_eq!(
            readable_shards(&parents, &root_done),
            ["left", "orphan", "right", "root"]
        );
        let left_done: HashSet<&str> = ["root", "left"].into();
        assert!(readable_shards(&parents, &left_done).contains(&"grandchild"));
    }

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
