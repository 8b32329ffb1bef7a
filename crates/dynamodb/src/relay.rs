//! The feed relay: from the table's DynamoDB Stream to the global feed,
//! the per-type listings and the announcements of appends.
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
//! Announcing is a second phase: the caller publishes the
//! [`Announcement`]s [`Relay::process`] returns (this crate builds no
//! message: `eventstore-aws` turns them into SNS notifications), then calls
//! [`Relay::acknowledge`], which
//! moves the shard's announcement mark (item `p = "A"`, `s` = shard). A
//! delivery of records at or below the mark returns nothing; records above
//! the mark but already in the feed (their first delivery died or failed
//! between the feed write and the publishing) get their announcements
//! again, rebuilt from the records and the positions their feed page
//! holds. So every append is announced at least once, and twice only when
//! a delivery failed or died before its acknowledgement.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use eventstore_core::{EventType, StreamKey, StreamType, Timestamp};

use crate::codec;
use crate::error::DynamoError;
use crate::items::{self, Item, cond, get_str, get_u64, n, pad, req_u64, s};
pub use crate::items::{FeedEntry, parse_page, parse_type_feed_item};
use crate::items::{Tip, attr};
pub use crate::poller::{PollerHandle, spawn_poller, spawn_poller_with};
pub use crate::progress::RelayProgress;
use crate::store::DynamoStore;

pub mod replay;

/// A projection of a feed page's keys and `names`.
fn page_projection(names: &[&str]) -> String {
    let mut all = vec![items::PK, items::SK];
    all.extend_from_slice(names);
    all.join(", ")
}

/// One record of the table's stream, reduced to what the relay needs.
#[derive(Debug, Clone)]
pub struct ChangeRecord {
    /// The shard the record came from.
    pub shard_id: String,
    /// Its sequence number within the shard.
    pub sequence_number: String,
    /// The item after the change (absent for deletes).
    pub new_image: Option<Item>,
    /// The item before the change (absent for inserts, and when the
    /// table's stream does not carry old images).
    pub old_image: Option<Item>,
}

impl ChangeRecord {
    /// Converts a record of the DynamoDB Streams API.
    pub fn from_streams_record(
        shard_id: &str,
        record: &aws_sdk_dynamodbstreams::types::Record,
    ) -> Option<Self> {
        let data = record.dynamodb()?;
        let image = |img: &std::collections::HashMap<
            String,
            aws_sdk_dynamodbstreams::types::AttributeValue,
        >| {
            img.iter()
                .map(|(k, v)| (k.clone(), convert_value(v)))
                .collect()
        };
        Some(Self {
            shard_id: shard_id.to_string(),
            sequence_number: data.sequence_number()?.to_string(),
            new_image: data.new_image().map(image),
            old_image: data.old_image().map(image),
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

/// One append to announce: where the feed put it, and its event types.
/// What a subscriber is told is for the publisher to build from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The append's stream, revisions and feed position.
    pub entry: FeedEntry,
    /// Its event types, in order (one per event).
    pub event_types: Vec<EventType>,
}

/// What one batch produced.
#[derive(Debug, Clone, Default)]
pub struct RelayOutput {
    /// The appends this call put into the feed, in feed order (empty when
    /// every record of the batch was already in the feed).
    pub entries: Vec<FeedEntry>,
    /// One announcement per append of the batch not yet announced, in feed
    /// order: the appends of `entries`, preceded by the appends an earlier
    /// delivery of the same records put into the feed without their
    /// announcement being acknowledged ([`Relay::acknowledge`]).
    pub announcements: Vec<Announcement>,
    /// Per shard, the last record the announcements account for.
    covered: BTreeMap<String, String>,
}

impl RelayOutput {
    /// Adds the output of a later batch (of the same or another shard).
    pub fn extend(&mut self, later: RelayOutput) {
        self.entries.extend(later.entries);
        self.announcements.extend(later.announcements);
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
/// Feed pages per query of [`Relay::search_feed`].
const SEARCH_PAGE: i32 = 25;
/// Most queries the live relay spends looking for records behind its
/// checkpoint ([`Relay::find_entries`]): 25,000 pages back.
const STALE_SEARCH_PAGES: usize = 1000;

/// What a tip change is to the feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChangeKind {
    /// An append of `count` events.
    Append,
    /// The stream's deletion: one `$stream-deleted` entry at revision + 1.
    Deleted,
}

struct TipChange {
    stream: StreamKey,
    tip: Tip,
    count: u64,
    previous_update: u64,
    kind: ChangeKind,
}

impl TipChange {
    fn first_revision(&self) -> u64 {
        match self.kind {
            ChangeKind::Append => self.tip.revision - self.count + 1,
            ChangeKind::Deleted => self.tip.revision + 1,
        }
    }
}

/// A truncation seen in the table's stream: the listing entry at
/// `updated` gets the new first revision, the feed's references to the
/// removed events go, and an interrupted cleanup is finished.
struct Truncation {
    stream: StreamKey,
    first: u64,
    /// The first kept revision before it (from the old image; 1 when the
    /// record has none).
    previous_first: u64,
    created: i64,
    updated: i64,
}

/// What the relay knows of an append's events when it handles its record.
enum Events {
    /// Their types, in order.
    Types(Vec<EventType>),
    /// Its first events were truncated away since: its entry stays (its
    /// kept events are read through it), but it is not announced.
    PartlyErased,
    /// All its events were erased since (the stream deleted, or truncated
    /// past its last event): no feed entry, no announcement.
    Erased,
}

/// What the current `tip` says of an append's events `first..=last`:
/// `None` while they are all readable.
fn erasure(tip: &Tip, first: u64, last: u64) -> Option<Events> {
    if tip.deleted.is_some() || tip.first_kept() > last {
        Some(Events::Erased)
    } else if tip.first_kept() > first {
        Some(Events::PartlyErased)
    } else {
        None
    }
}

/// A tip record as the relay sees it.
enum Change {
    /// An append or a deletion: an entry of the feed.
    Feed(TipChange),
    /// A truncation: no feed entry.
    Truncated(Truncation),
}

fn parse_change(image: &Item, old: Option<&Item>) -> Result<Option<Change>, DynamoError> {
    let (Ok(pk), Ok(sk)) = (get_str(image, items::PK), get_str(image, items::SK)) else {
        return Ok(None);
    };
    if sk != items::TIP_SK && !sk.starts_with(|c: char| c.is_ascii_digit()) {
        return Ok(None);
    }
    let Some(stream) = items::parse_stream_pk(pk)? else {
        return Ok(None);
    };
    if sk != items::TIP_SK {
        return parse_append_item(stream, image);
    }
    if let Some(meta) = items::Meta::from_item(image)? {
        // The meta item of a stream of append items: a truncation sets its
        // bound (a deletion's mark there changes nothing: its tombstone is
        // the change).
        let previous_first = match old {
            Some(img) => items::Meta::from_item(img)?.and_then(|m| m.first),
            None => None,
        }
        .unwrap_or(1);
        return Ok(match (meta.deleted, meta.first) {
            (None, Some(first)) if first > previous_first => Some(Change::Truncated(Truncation {
                stream,
                first,
                previous_first,
                created: meta.created,
                updated: meta.updated,
            })),
            _ => None,
        });
    }
    let Some(tip) = Tip::from_item(image)? else {
        return Ok(None);
    };
    let previous_update = get_u64(image, attr::tip::PREVIOUS_UPDATE)?.unwrap_or(0);
    if tip.deleted.is_some() {
        if tip.revision == u64::MAX {
            return Err(DynamoError::Corrupt(format!(
                "stream {stream}: revision u64::MAX"
            )));
        }
        return Ok(Some(Change::Feed(TipChange {
            stream,
            tip,
            count: 1,
            previous_update,
            kind: ChangeKind::Deleted,
        })));
    }
    let count = get_u64(image, attr::tip::LAST_COUNT)?.unwrap_or(0);
    if count == 0 {
        // A truncation sets the tip's `n` to 0: it is no append.
        let previous_first = match old {
            Some(img) => Tip::from_item(img)?.map_or(1, |t| t.first_kept()),
            None => 1,
        };
        return Ok(tip.first.map(|first| {
            Change::Truncated(Truncation {
                stream,
                first,
                previous_first,
                created: tip.created,
                updated: tip.updated,
            })
        }));
    }
    if count > tip.revision {
        return Ok(None);
    }
    Ok(Some(Change::Feed(TipChange {
        stream,
        tip,
        count,
        previous_update,
        kind: ChangeKind::Append,
    })))
}

/// An append item's record: an append (its last item carries the count),
/// or a deletion's tombstone; `None` for an item that is neither (an
/// append's earlier items, a truncation's rewrite, a chunk of a stream of
/// tip format).
fn parse_append_item(stream: StreamKey, image: &Item) -> Result<Option<Change>, DynamoError> {
    let Some(item) = items::AppendItem::from_item(image)? else {
        return Ok(None);
    };
    let Some(count) = item.count else {
        return Ok(None);
    };
    if item.deleted.is_some() {
        return Ok(Some(Change::Feed(TipChange {
            stream,
            tip: item.head_tip(None),
            count: 1,
            previous_update: item.previous_update.max(0) as u64,
            kind: ChangeKind::Deleted,
        })));
    }
    if count == 0 || count > item.last {
        return Err(DynamoError::Corrupt(format!(
            "stream {stream}: an append of {count} events ending at {}",
            item.last
        )));
    }
    let tip = Tip {
        revision: item.last,
        base: item.first - 1,
        created: item.created,
        updated: item.updated,
        blobs: item.blobs,
        fingerprints: Vec::new(),
        first: item.first_kept,
        deleted: None,
        per_append: true,
    };
    Ok(Some(Change::Feed(TipChange {
        stream,
        tip,
        count,
        previous_update: item.previous_update.max(0) as u64,
        kind: ChangeKind::Append,
    })))
}

/// The relay. Cheap to clone; one per shard consumer.
#[derive(Clone)]
pub struct Relay {
    pub(crate) store: DynamoStore,
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
            let q = get_str(item, attr::checkpoint::SEQUENCE)?.to_string();
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
                .key_condition_expression(cond::PARTITION)
                .expression_attribute_values(":p", s(items::FEED_PK))
                .projection_expression(page_projection(&[attr::page::SHARD, attr::page::COVERS]))
                .scan_index_forward(false)
                .consistent_read(true)
                .limit(100)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| DynamoError::request("Query", DisplayErrorContext(e)))?;
            for page in out.items() {
                if get_str(page, attr::page::SHARD).ok() == Some(shard) {
                    return Ok(Checkpoint {
                        seq: Some(get_str(page, attr::page::COVERS)?.to_string()),
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

    /// The last sequence number of `shard` whose appends were announced and
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
            .projection_expression(attr::mark::SEQUENCE)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| DynamoError::request("GetItem", DisplayErrorContext(e)))?;
        Ok(match out.item() {
            Some(item) => Some(get_str(item, attr::mark::SEQUENCE)?.to_string()),
            None => None,
        })
    }

    /// Records that every announcement of `output` has been published (or
    /// handed to whoever announces them), so that a later delivery of the
    /// same records announces nothing again. Until then, each delivery of
    /// those records returns their announcements anew.
    ///
    /// One small conditional `PutItem` per shard of the output that had
    /// announcements; the mark only moves forward.
    pub async fn acknowledge(&self, output: &RelayOutput) -> Result<(), DynamoError> {
        for (shard, seq) in &output.covered {
            let mut item = items::key(items::ANNOUNCED_PK, shard.as_str());
            item.insert(attr::mark::SEQUENCE.into(), s(seq));
            item.insert(attr::mark::SEQUENCE_KEY.into(), s(seq_key(seq)));
            item.insert(attr::mark::WRITTEN.into(), n(Timestamp::now().as_micros()));
            let put = self
                .store
                .client()
                .put_item()
                .table_name(self.store.table())
                .set_item(Some(item))
                .condition_expression(format!(
                    "{} OR {} < :k",
                    cond::ABSENT,
                    attr::mark::SEQUENCE_KEY
                ))
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
    /// Records whose announcements were acknowledged are skipped; records
    /// already in the feed but not acknowledged (a delivery whose
    /// announcement failed or whose process died after the feed write) get
    /// their announcements again, with the positions the feed holds for
    /// them; the other records are put into the feed. The caller publishes
    /// the announcements, then calls [`Relay::acknowledge`].
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
        let mut truncations: Vec<Truncation> = Vec::new();
        for r in &pending {
            if let Some(img) = &r.new_image {
                match parse_change(img, r.old_image.as_ref()) {
                    Ok(Some(Change::Feed(c))) => changes.push((r.sequence_number.as_str(), c)),
                    Ok(Some(Change::Truncated(t))) => truncations.push(t),
                    Ok(None) => {}
                    Err(e) => unreadable(&r.sequence_number, None, e)?,
                }
            }
        }
        // A deletion's cleanup may have been interrupted: finish it
        // (idempotent; one query when nothing is left).
        for (_, c) in &changes {
            if c.kind == ChangeKind::Deleted {
                self.store.purge_stream(&c.stream).await?;
            }
        }
        changes.sort_by(|a, b| (a.0.len(), a.0).cmp(&(b.0.len(), b.0)));
        let mut types = Vec::with_capacity(changes.len());
        let mut readable = Vec::with_capacity(changes.len());
        for (seq, c) in changes {
            match self.event_types(&c).await {
                // Nothing of it is left to list: no entry, no reference.
                Ok(Events::Erased) => {}
                Ok(Events::Types(t)) => {
                    types.push(Some(t));
                    readable.push((seq, c));
                }
                Ok(Events::PartlyErased) => {
                    types.push(None);
                    readable.push((seq, c));
                }
                Err(e @ DynamoError::Corrupt(_)) => unreadable(seq, Some(&c.stream), e)?,
                Err(e) => return Err(e),
            }
        }
        let changes = readable;
        if changes.is_empty() {
            for t in &truncations {
                self.truncated(t).await?;
            }
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
        // Truncations after the batch's listings: an append of the same
        // batch listed the stream with its older first revision. Both
        // after the batch's pages, which may reference the removed events.
        for t in &truncations {
            self.truncated(t).await?;
        }
        for (_, c) in &changes {
            if c.kind == ChangeKind::Deleted {
                self.deleted_references(c).await?;
            }
        }
        let known: Vec<FeedEntry> = all.iter().flatten().cloned().collect();
        if let Some(p) = &self.progress {
            p.relayed(&known);
        }
        // An append some of whose events were erased before the relay
        // saw it (truncated past its first events) is not announced; one
        // wholly erased has no entry at all, and a deletion has its own
        // announcement.
        let announcements = all
            .into_iter()
            .zip(types)
            .filter_map(|(entry, event_types)| {
                Some(Announcement {
                    entry: entry?,
                    event_types: event_types?,
                })
            })
            .collect::<Vec<_>>();
        let mut covered = BTreeMap::new();
        if !announcements.is_empty() {
            covered.insert(shard.to_string(), last_seq.to_string());
        }
        Ok(RelayOutput {
            entries: written,
            announcements,
            covered,
        })
    }

    /// A truncation's record: the listing entry gets the new first
    /// revision, the feed's references to the removed events go, and a
    /// cleanup the truncation left unfinished is done.
    async fn truncated(&self, t: &Truncation) -> Result<(), DynamoError> {
        self.store.purge_below(&t.stream).await?;
        self.store
            .set_listing_first(&t.stream, t.updated, t.first)
            .await?;
        self.store
            .purge_feed_references(&t.stream, t.first, t.previous_first, t.created)
            .await?;
        Ok(())
    }

    /// A deletion's record, once its `$stream-deleted` entry is in the
    /// feed: the feed's references to the stream's events go (the
    /// deletion's own entry, at revision + 1, stays).
    async fn deleted_references(&self, c: &TipChange) -> Result<(), DynamoError> {
        self.store
            .purge_feed_references(
                &c.stream,
                c.tip.revision + 1,
                c.tip.first_kept(),
                c.tip.created,
            )
            .await?;
        Ok(())
    }

    /// The event types of an append: from the tip image, or read from the
    /// table for an append written as a chunk; [`Events::PartlyErased`] or
    /// [`Events::Erased`] when some or all of its events were erased since
    /// (the stream deleted, or truncated past them). A deletion's entry
    /// has the type `$stream-deleted`.
    async fn event_types(&self, c: &TipChange) -> Result<Events, DynamoError> {
        if c.kind == ChangeKind::Deleted {
            let t = EventType::parse(eventstore_core::STREAM_DELETED)
                .map_err(|e| DynamoError::Corrupt(e.to_string()))?;
            return Ok(Events::Types(vec![t]));
        }
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
            return Ok(Events::Types(t));
        }
        let last = c.tip.revision;
        let erased = |t: &Tip| erasure(t, first, last);
        let tip = match self.store.get_tip(&c.stream).await? {
            Some(t) => match erased(&t) {
                Some(e) => return Ok(e),
                None => t,
            },
            None => c.tip.clone(),
        };
        match self.store.read_range(&c.stream, &tip, first, last).await {
            Ok(events) => Ok(Events::Types(
                events.into_iter().map(|e| e.event_type).collect(),
            )),
            Err(e @ DynamoError::Corrupt(_)) => {
                // Erased between the two reads?
                match self
                    .store
                    .get_tip(&c.stream)
                    .await?
                    .as_ref()
                    .and_then(erased)
                {
                    Some(events) => Ok(events),
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The feed entries of appends whose records are already in the feed
    /// (at or below the shard's checkpoint). A record in no page (given up
    /// on by an earlier delivery, so never put into the feed) is logged and
    /// has no entry.
    async fn find_entries(
        &self,
        shard: &str,
        stale: &[(&str, TipChange)],
    ) -> Result<Vec<Option<FeedEntry>>, DynamoError> {
        let found = self
            .search_feed(shard, None, stale, Some(STALE_SEARCH_PAGES))
            .await?;
        for ((seq, c), f) in stale.iter().zip(&found) {
            if f.is_none() {
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

    /// For each change (in stream order), its feed entry if the feed holds
    /// its append: in a page the shard wrote or, with a `label`, one
    /// written under that label (a replay of the shard). Pages are read
    /// from the newest back to the shard's last page before the oldest
    /// change (that page and older ones hold earlier records only), over at
    /// most `max_queries` queries of [`SEARCH_PAGE`] pages when bounded.
    async fn search_feed(
        &self,
        shard: &str,
        label: Option<&str>,
        changes: &[(&str, TipChange)],
        max_queries: Option<usize>,
    ) -> Result<Vec<Option<FeedEntry>>, DynamoError> {
        let Some(oldest) = changes.first().map(|(seq, _)| *seq) else {
            return Ok(Vec::new());
        };
        let mut wanted: HashMap<(StreamKey, u64), Vec<usize>> = HashMap::new();
        for (i, (_, c)) in changes.iter().enumerate() {
            wanted
                .entry((c.stream.clone(), c.first_revision()))
                .or_default()
                .push(i);
        }
        let mut found: Vec<Option<FeedEntry>> = vec![None; changes.len()];
        let mut start: Option<Item> = None;
        let mut queries = 0usize;
        'pages: while max_queries.is_none_or(|max| queries < max) {
            queries += 1;
            let out = self
                .store
                .client()
                .query()
                .table_name(self.store.table())
                .key_condition_expression(cond::PARTITION)
                .expression_attribute_values(":p", s(items::FEED_PK))
                .projection_expression(page_projection(&[
                    attr::page::SHARD,
                    attr::page::COVERS,
                    attr::page::ENTRIES,
                    attr::page::LAST,
                ]))
                .scan_index_forward(false)
                .consistent_read(true)
                .limit(SEARCH_PAGE)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| DynamoError::request("Query", DisplayErrorContext(e)))?;
            for page in out.items() {
                let writer = get_str(page, attr::page::SHARD).ok();
                let own = writer == Some(shard);
                if !own && (label.is_none() || writer != label) {
                    continue;
                }
                if own && seq_gt(oldest, get_str(page, attr::page::COVERS)?) {
                    break 'pages;
                }
                for e in parse_page(page)? {
                    if let Some(at) = wanted.remove(&(e.stream.clone(), e.first_revision)) {
                        for i in at {
                            found[i] = Some(e.clone());
                        }
                    }
                }
                if wanted.is_empty() {
                    break 'pages;
                }
            }
            start = out.last_evaluated_key().cloned();
            if start.is_none() {
                break;
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
            if c.kind == ChangeKind::Deleted {
                // A deleted stream leaves its type's listing: its entry is
                // where the batch found it, or at the last append's time.
                let mut at = vec![first_prev[stream], c.previous_update, updated];
                at.sort_unstable();
                at.dedup();
                for u in at.into_iter().filter(|u| *u > 0) {
                    writes.push(
                        WriteRequest::builder()
                            .delete_request(
                                DeleteRequest::builder()
                                    .set_key(Some(items::key(
                                        &pk,
                                        items::listing_sk(u, stream.stream_id.as_str()),
                                    )))
                                    .build()
                                    .map_err(|e| DynamoError::request("BatchWriteItem", e))?,
                            )
                            .build(),
                    );
                }
                continue;
            }
            let item = items::Listing {
                stream_id: stream.stream_id.as_str().to_string(),
                revision: c.tip.revision,
                created: c.tip.created,
                updated,
                first: c.tip.first,
            }
            .to_item(&stream.stream_type);
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
        self.write_batches(&writes).await
    }

    /// Writes `writes` in `BatchWriteItem` calls of 25, retrying the
    /// unprocessed ones with backoff.
    async fn write_batches(&self, writes: &[WriteRequest]) -> Result<(), DynamoError> {
        let table = self.store.table();
        for chunk in writes.chunks(25) {
            let mut pending = chunk.to_vec();
            let mut backoff = crate::retry::Backoff::default();
            while !pending.is_empty() {
                let out = self
                    .store
                    .client()
                    .batch_write_item()
                    .request_items(table, pending)
                    .send()
                    .await
                    .map_err(|e| DynamoError::request("BatchWriteItem", DisplayErrorContext(e)))?;
                pending = out
                    .unprocessed_items()
                    .and_then(|m| m.get(table))
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
            Some(item) => Some(get_str(item, attr::checkpoint::SEQUENCE)?.to_string()),
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
                .key_condition_expression(cond::PARTITION)
                .expression_attribute_values(":p", s(items::FEED_PK))
                .projection_expression(page_projection(&[attr::page::LAST]))
                .scan_index_forward(false)
                .limit(1)
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| DynamoError::request("Query", DisplayErrorContext(e)))?;
            let next = match head.items().first() {
                Some(page) => req_u64(page, attr::page::LAST)?
                    .checked_add(1)
                    .ok_or_else(|| {
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
                let entry = FeedEntry {
                    stream: c.stream.clone(),
                    first_revision: c.first_revision(),
                    count: c.count,
                    position,
                };
                texts.push(s(items::PageSlot::Entry(entry.clone()).to_text()));
                by_type
                    .entry(&c.stream.stream_type)
                    .or_default()
                    .push(s(items::type_feed_text(&entry)));
                let range = type_first
                    .entry(&c.stream.stream_type)
                    .or_insert((position, position));
                range.1 = position + c.count - 1;
                entries.push(entry);
                position += c.count;
            }
            let mut page = items::key(items::FEED_PK, pad(next));
            page.insert(attr::page::LAST.into(), n(last));
            page.insert(attr::page::SHARD.into(), s(shard));
            page.insert(attr::page::COVERS.into(), s(covers));
            let written = Timestamp::now().as_micros();
            page.insert(attr::page::WRITTEN.into(), n(written));
            page.insert(attr::page::ENTRIES.into(), AttributeValue::L(texts));
            let mut cp = items::key(items::CHECKPOINT_PK, shard);
            cp.insert(attr::checkpoint::SEQUENCE.into(), s(covers));
            cp.insert(attr::checkpoint::PAGE.into(), n(next));
            let absent = cond::ABSENT;
            let moved = format!("{} = :q", attr::checkpoint::SEQUENCE);
            let mut writes = vec![
                put(page, Some((absent, None)))?,
                put(
                    cp,
                    Some(match &checkpoint.item {
                        Some(q) => (moved.as_str(), Some((":q", s(q)))),
                        None => (absent, None),
                    }),
                )?,
            ];
            for (t, list) in by_type {
                let (first, last) = type_first[t];
                let mut item = items::key(items::type_feed_pk(t), pad(first));
                item.insert(attr::type_feed::LAST.into(), n(last));
                item.insert(attr::type_feed::ENTRIES.into(), AttributeValue::L(list));
                item.insert(attr::type_feed::WRITTEN.into(), n(written));
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
            attr::page::ENTRIES.into(),
            AttributeValue::L(vec![s("order|o-1|3|2"), s("cart|c:9|1|1")]),
        );
        let e = parse_page(&page).unwrap();
        assert_eq!((e[0].position, e[0].first_revision, e[0].count), (7, 3, 2));
        assert_eq!((e[1].position, e[1].stream.stream_id.as_str()), (9, "c:9"));
        page.insert(
            attr::page::ENTRIES.into(),
            AttributeValue::L(vec![s("order|o-1|3")]),
        );
        assert!(parse_page(&page).is_err());
    }
}
