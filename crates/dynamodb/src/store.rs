//! [`DynamoStore`]: the [`EventStore`] over one DynamoDB table, and its
//! stream reads and listings. The append path is in `append.rs`, the feed
//! paths in `feed.rs`; the item layout and its costs are documented in
//! `docs/dynamodb.md`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::Select;

use eventstore_core::{
    AppendOutcome, AppendRequest, DeleteOutcome, Direction, EventStore, FeedFilter, FeedPage,
    Position, RecordedEvent, Revision, StoreError, StreamCursor, StreamId, StreamInfo, StreamKey,
    StreamListPage, StreamRead, StreamSlice, StreamType, StreamTypeCount, Timestamp,
};

use crate::codec;
use crate::error::DynamoError;
use crate::items::{self, Chunk, Item, Listing, TIP_SK, Tip, cond, pad, s};
use crate::progress::RelayProgress;

pub use crate::append::{CHUNK_BYTES, ID_CAP, ID_WINDOW, TIP_BYTES, request_token};

impl Tip {
    pub(crate) fn info(&self, stream: &StreamKey) -> StreamInfo {
        StreamInfo {
            stream_id: stream.stream_id.clone(),
            stream_type: stream.stream_type.clone(),
            revision: Revision::new(self.revision),
            first_revision: Revision::new(self.first_kept()),
            updated_at: Timestamp::from_micros(self.updated),
            created_at: Timestamp::from_micros(self.created),
        }
    }

    /// The tip's own events with their revisions.
    pub(crate) fn events(&self) -> Result<Vec<(u64, codec::StoredEvent)>, DynamoError> {
        let mut rev = self.base;
        let mut out = Vec::new();
        for blob in &self.blobs {
            for e in codec::decode(blob)? {
                rev += 1;
                out.push((rev, e));
            }
        }
        Ok(out)
    }
}

/// The DynamoDB backend.
#[derive(Clone)]
pub struct DynamoStore {
    pub(crate) client: Client,
    pub(crate) table: String,
    pub(crate) progress: Option<Arc<RelayProgress>>,
    /// `createdAt` of streams seen by this process (it never changes), so
    /// that a transactional append needs no read to answer with it.
    pub(crate) created: Arc<std::sync::Mutex<HashMap<StreamKey, i64>>>,
    /// New streams are of tip format (the design before append items),
    /// for tables shared with processes of an earlier version and for the
    /// tests of that format. Streams keep the format they were created in.
    pub(crate) tip_format: bool,
}

pub(crate) fn sdk_err<E, R>(operation: &'static str, err: SdkError<E, R>) -> DynamoError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    DynamoError::classify(operation, err)
}

impl DynamoStore {
    /// A store over `table` (created with [`crate::create_table`]).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            progress: None,
            created: Arc::default(),
            tip_format: false,
        }
    }

    /// Creates new streams in tip format, the design before append items
    /// (docs/dynamodb.md, "Tables written by earlier versions"); a stream
    /// of append items stays one.
    /// For tables still written by processes of an earlier version, and
    /// for the tests of that format.
    pub fn with_tip_format(mut self) -> Self {
        self.tip_format = true;
        self
    }

    /// Shares progress with a relay running in this process: listings then
    /// wait until this process's own appends are indexed (read your writes),
    /// and feed waits wake up when the relay publishes.
    pub fn with_progress(mut self, progress: Arc<RelayProgress>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// The SDK client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The stream's tip, when the stream exists and is not deleted.
    pub(crate) async fn live_tip(&self, stream: &StreamKey) -> Result<Tip, StoreError> {
        match self.get_tip(stream).await? {
            None => Err(StoreError::StreamNotFound(stream.clone())),
            Some(t) if t.deleted.is_some() => Err(StoreError::StreamDeleted(stream.clone())),
            Some(t) => Ok(t),
        }
    }

    /// The item of partition `pk` with the greatest sort key at most
    /// `at` (one consistent `Query`, newest first, limit 1).
    pub(crate) async fn item_at_or_below(
        &self,
        pk: &str,
        at: &str,
    ) -> Result<Option<Item>, DynamoError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression(cond::SORT_AT_MOST)
            .expression_attribute_values(":p", s(pk))
            .expression_attribute_values(":s", s(at))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_err("Query", e))?;
        Ok(out.items().first().cloned())
    }

    /// The stream's state: its tip item (a stream of tip format), or what
    /// its newest append item and its meta item say (a stream of append
    /// items); `None`: no stream. One `Query` of the partition's newest
    /// key up to `tip` (append-id items of append-item streams sort before
    /// revisions, so it finds the tip, the meta item or the newest append
    /// item), and a second for the newest append item when the first found
    /// a meta item.
    pub(crate) async fn get_tip(&self, stream: &StreamKey) -> Result<Option<Tip>, DynamoError> {
        let pk = items::stream_pk(stream);
        let Some(item) = self.item_at_or_below(&pk, TIP_SK).await? else {
            return Ok(None);
        };
        let item = &item;
        let sk = items::get_str(item, items::SK)?;
        if sk.starts_with(items::CLAIM_PREFIX) {
            // Append-id items sort first: the stream has only claims of
            // appends that have not been put (yet).
            return Ok(None);
        }
        let meta = if sk.starts_with(items::APPEND_ID_PREFIX) {
            // An append-id item of tip format without a tip: a large
            // append's claim whose transaction failed. The stream has no
            // tip; it may have append items.
            None
        } else if sk != TIP_SK {
            return self.head_tip(stream, item, None).map(Some);
        } else {
            match items::Meta::from_item(item)? {
                Some(meta) => Some(meta),
                None => return Tip::from_item(item),
            }
        };
        // The newest revision key (append-id items of this format sort
        // below revisions: a `#…` key found is none).
        let head = self
            .item_at_or_below(&pk, &pad(u64::MAX))
            .await?
            .filter(|i| {
                items::get_str(i, items::SK).is_ok_and(|k| !k.starts_with(items::CLAIM_PREFIX))
            });
        match (head.as_ref(), meta) {
            (Some(head), meta) => self.head_tip(stream, head, meta.as_ref()).map(Some),
            (None, None) => Ok(None),
            (None, Some(_)) => Err(DynamoError::Corrupt(format!(
                "stream {stream}: a meta item without an append item"
            ))),
        }
    }

    fn head_tip(
        &self,
        stream: &StreamKey,
        head: &Item,
        meta: Option<&items::Meta>,
    ) -> Result<Tip, DynamoError> {
        match items::AppendItem::from_item(head)? {
            Some(h) => Ok(h.head_tip(meta)),
            None => Err(DynamoError::Corrupt(format!(
                "stream {stream}: newest item {} is no append item",
                items::get_str(head, items::SK).unwrap_or("?")
            ))),
        }
    }

    /// Events `from..=to` of a stream whose tip is `tip`, from its first
    /// kept revision on (a truncation's removed events are not read).
    pub(crate) async fn read_range(
        &self,
        stream: &StreamKey,
        tip: &Tip,
        from: u64,
        to: u64,
    ) -> Result<Vec<RecordedEvent>, DynamoError> {
        let to = to.min(tip.revision);
        let from = from.max(tip.first_kept());
        if from == 0 || from > to {
            return Ok(Vec::new());
        }
        let mut found: BTreeMap<u64, codec::StoredEvent> = BTreeMap::new();
        if from <= tip.base {
            let pk = items::stream_pk(stream);
            // The chunk holding `from`, then the chunks starting after it.
            let mut chunks: Vec<Item> = self
                .item_at_or_below(&pk, &pad(from))
                .await?
                .filter(|i| {
                    items::get_str(i, items::SK).is_ok_and(|k| !k.starts_with(items::CLAIM_PREFIX))
                })
                .into_iter()
                .collect();
            let hi = to.min(tip.base);
            if hi > from {
                let mut start: Option<Item> = None;
                loop {
                    let page = self
                        .client
                        .query()
                        .table_name(&self.table)
                        .key_condition_expression(cond::SORT_BETWEEN)
                        .expression_attribute_values(":p", s(&pk))
                        .expression_attribute_values(":lo", s(pad(from + 1)))
                        .expression_attribute_values(":hi", s(pad(hi)))
                        .consistent_read(true)
                        .set_exclusive_start_key(start)
                        .send()
                        .await
                        .map_err(|e| sdk_err("Query", e))?;
                    chunks.extend(page.items().iter().cloned());
                    start = page.last_evaluated_key().cloned();
                    if start.is_none() {
                        break;
                    }
                }
            }
            for item in chunks {
                let chunk = Chunk::from_item(&item)?;
                let mut rev = chunk.first - 1;
                for blob in &chunk.blobs {
                    for e in codec::decode(blob)? {
                        rev += 1;
                        if (from..=to).contains(&rev) {
                            found.insert(rev, e);
                        }
                    }
                }
            }
        }
        for (rev, e) in tip.events()? {
            if (from..=to).contains(&rev) {
                found.insert(rev, e);
            }
        }
        if found.len() as u64 != to - from + 1 {
            return Err(DynamoError::Corrupt(format!(
                "stream {stream}: revisions {from}..={to} incomplete ({} found)",
                found.len()
            )));
        }
        Ok(found
            .into_iter()
            .map(|(rev, e)| e.into_recorded(stream, Revision::new(rev)))
            .collect())
    }

    /// Where the request's ids already sit, as far as the tip's window, the
    /// tip's events and the retry candidate range can tell.
    pub(crate) async fn await_indexed(&self, stream_type: Option<&StreamType>) {
        if let Some(p) = &self.progress {
            p.wait_indexed(stream_type, Duration::from_secs(30)).await;
        }
    }

    async fn query_all(
        &self,
        pk: &str,
        lower_exclusive: Option<String>,
        limit: Option<i32>,
        count_only: bool,
    ) -> Result<(Vec<Item>, u64), DynamoError> {
        let mut out = Vec::new();
        let mut count = 0u64;
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":p", s(pk))
                .consistent_read(true)
                .set_exclusive_start_key(start.take());
            q = match &lower_exclusive {
                Some(lo) => q
                    .key_condition_expression(cond::SORT_AFTER_LO)
                    .expression_attribute_values(":lo", s(lo)),
                None => q.key_condition_expression(cond::PARTITION),
            };
            if let Some(l) = limit {
                q = q.limit(l - out.len() as i32);
            }
            if count_only {
                q = q.select(Select::Count);
            }
            let page = q.send().await.map_err(|e| sdk_err("Query", e))?;
            count += page.count() as u64;
            out.extend(page.items().iter().cloned());
            start = page.last_evaluated_key().cloned();
            if start.is_none() || limit.is_some_and(|l| out.len() as i32 >= l) {
                return Ok((out, count));
            }
        }
    }
}

#[async_trait]
impl EventStore for DynamoStore {
    #[tracing::instrument(skip_all, fields(stream = %request.stream()))]
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        self.append_request(request).await
    }

    async fn stream_info(&self, stream: &StreamKey) -> Result<Option<StreamInfo>, StoreError> {
        match self.live_tip(stream).await {
            Ok(t) => Ok(Some(t.info(stream))),
            Err(StoreError::StreamNotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn read_stream(
        &self,
        stream: &StreamKey,
        read: StreamRead,
    ) -> Result<StreamSlice, StoreError> {
        let tip = self.live_tip(stream).await?;
        let total = tip.revision;
        // Revisions below the first kept one were truncated away.
        let first = tip.first_kept();
        let limit = read.limit.max(1) as u64;
        match read.direction {
            Direction::Forward => {
                let after = read.from.map_or(0, |r| r.get()).max(first - 1);
                if after >= total {
                    return Ok(StreamSlice {
                        events: vec![],
                        has_more: false,
                        last_evaluated_revision: Revision::new(after),
                    });
                }
                let end = (after + limit).min(total);
                let events = self.read_range(stream, &tip, after + 1, end).await?;
                Ok(StreamSlice {
                    last_evaluated_revision: Revision::new(end),
                    has_more: end < total,
                    events,
                })
            }
            Direction::Backward => {
                let before = read.from.map_or(total + 1, |r| r.get());
                let end = before.saturating_sub(1).min(total);
                if end < first {
                    return Ok(StreamSlice {
                        events: vec![],
                        has_more: false,
                        last_evaluated_revision: Revision::new(before),
                    });
                }
                let start = (end.saturating_sub(limit) + 1).max(first);
                let mut events = self.read_range(stream, &tip, start, end).await?;
                events.reverse();
                Ok(StreamSlice {
                    last_evaluated_revision: Revision::new(start),
                    has_more: start > first,
                    events,
                })
            }
        }
    }

    async fn list_streams(
        &self,
        stream_type: &StreamType,
        updated_after: Option<Timestamp>,
        cursor: Option<StreamCursor>,
        limit: usize,
    ) -> Result<StreamListPage, StoreError> {
        let mut lower: Option<String> = None;
        if let Some(t) = updated_after {
            // Every stream updated at or before `t` sorts before this key.
            let micros = t.as_micros().max(0) as u64;
            lower = Some(format!("{}#~", pad(micros)));
        }
        if let Some(c) = &cursor {
            let micros = c.updated_at.as_micros();
            if micros < 0 {
                return Err(StoreError::InvalidRequest(
                    "the page key does not name a position in this listing".into(),
                ));
            }
            let key = items::listing_sk(micros as u64, c.stream_id.as_str());
            if lower.as_ref().is_none_or(|l| key > *l) {
                lower = Some(key);
            }
        }
        self.await_indexed(Some(stream_type)).await;
        let limit = limit.clamp(1, eventstore_core::Limits::MAX_READ_LIMIT);
        let (found, _) = self
            .query_all(
                &items::listing_pk(stream_type),
                lower,
                Some(limit as i32 + 1),
                false,
            )
            .await?;
        let more = found.len() > limit;
        let mut streams = Vec::with_capacity(limit);
        for item in found.iter().take(limit) {
            let entry = Listing::from_item(item)?;
            streams.push(StreamInfo {
                stream_id: StreamId::parse(entry.stream_id)
                    .map_err(|e| DynamoError::Corrupt(e.to_string()))?,
                stream_type: stream_type.clone(),
                revision: Revision::new(entry.revision),
                first_revision: Revision::new(entry.first.unwrap_or(1).max(1)),
                updated_at: Timestamp::from_micros(entry.updated as i64),
                created_at: Timestamp::from_micros(entry.created),
            });
        }
        let next = if more {
            streams.last().map(|s| StreamCursor {
                updated_at: s.updated_at,
                stream_id: s.stream_id.clone(),
            })
        } else {
            None
        };
        Ok(StreamListPage { streams, next })
    }

    async fn stream_types(&self) -> Result<Vec<StreamTypeCount>, StoreError> {
        self.await_indexed(None).await;
        let (types, _) = self.query_all(items::TYPES_PK, None, None, false).await?;
        let mut out = Vec::new();
        for item in types {
            let t = StreamType::parse(items::get_str(&item, items::SK)?)
                .map_err(|e| DynamoError::Corrupt(e.to_string()))?;
            let (_, count) = self
                .query_all(&items::listing_pk(&t), None, None, true)
                .await?;
            if count == 0 {
                // Every stream of the type was deleted.
                continue;
            }
            out.push(StreamTypeCount {
                stream_type: t,
                streams: count,
            });
        }
        out.sort_by(|a, b| a.stream_type.cmp(&b.stream_type));
        Ok(out)
    }

    async fn read_feed(
        &self,
        filter: &FeedFilter,
        after: Position,
        limit: usize,
    ) -> Result<FeedPage, StoreError> {
        self.read_feed_page(filter, after, limit).await
    }

    async fn wait_for_feed(&self, after: Position) -> Result<(), StoreError> {
        self.wait_feed(after).await
    }

    async fn wait_for_type_feed(
        &self,
        stream_type: &StreamType,
        after: Position,
    ) -> Result<(), StoreError> {
        self.wait_type_feed(stream_type, after).await
    }

    #[tracing::instrument(skip_all, fields(stream = %stream))]
    async fn delete_stream(
        &self,
        stream: &StreamKey,
        expected: Option<Revision>,
    ) -> Result<DeleteOutcome, StoreError> {
        self.delete_inner(stream, expected).await
    }

    #[tracing::instrument(skip_all, fields(stream = %stream))]
    async fn truncate_stream(
        &self,
        stream: &StreamKey,
        before: Revision,
        expected: Option<Revision>,
    ) -> Result<StreamInfo, StoreError> {
        self.truncate_inner(stream, before, expected).await
    }
}
