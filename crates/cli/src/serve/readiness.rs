//! Readiness of the DynamoDB backend: a background probe asks DynamoDB for
//! the table (`DescribeTable`) every few seconds, and the store the router
//! serves answers `/readiness-check` with 503 while the table is missing,
//! not `ACTIVE`, or DynamoDB cannot be reached. Everything else is handed
//! to the store unchanged.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use eventstore_core::{
    AppendOutcome, AppendRequest, EventStore, FeedFilter, FeedPage, Position, StoreError,
    StreamCursor, StreamInfo, StreamKey, StreamListPage, StreamRead, StreamSlice, StreamType,
    StreamTypeCount, Timestamp,
};

/// How often the table is probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);
/// How long one probe may take before the table counts as unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the table cannot take writes, or `None` when it can.
type Verdict = Arc<Mutex<Option<String>>>;

/// A store whose readiness also depends on the probe's last verdict.
pub struct ProbedStore {
    inner: Arc<dyn EventStore>,
    verdict: Verdict,
}

/// One probe: `None` when the table is `ACTIVE`.
async fn probe(client: &aws_sdk_dynamodb::Client, table: &str) -> Option<String> {
    let call = client.describe_table().table_name(table).send();
    match tokio::time::timeout(PROBE_TIMEOUT, call).await {
        Err(_) => Some(format!(
            "DynamoDB did not answer about table {table} in time"
        )),
        Ok(Err(e)) => {
            let missing = e
                .as_service_error()
                .is_some_and(|se| se.is_resource_not_found_exception());
            Some(if missing {
                format!("table {table} does not exist")
            } else {
                format!("DynamoDB cannot be reached for table {table}")
            })
        }
        Ok(Ok(out)) => {
            let status = out.table().and_then(|t| t.table_status()).cloned();
            match status {
                Some(aws_sdk_dynamodb::types::TableStatus::Active) | None => None,
                Some(other) => Some(format!("table {table} is {}", other.as_str())),
            }
        }
    }
}

impl ProbedStore {
    /// Wraps `inner` and starts probing `table` (first probe at once; the
    /// store counts as ready until it answers, as `open` just found the
    /// table). The probe stops when the returned store is dropped. `sdk`
    /// is the configuration the store was opened with.
    pub fn start(
        inner: Arc<dyn EventStore>,
        sdk: &aws_config::SdkConfig,
        table: String,
    ) -> Arc<Self> {
        let client = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(sdk)
                .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
                .build(),
        );
        let verdict: Verdict = Arc::default();
        let store = Arc::new(Self {
            inner,
            verdict: verdict.clone(),
        });
        let weak = Arc::downgrade(&store);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PROBE_INTERVAL);
            loop {
                tick.tick().await;
                if weak.strong_count() == 0 {
                    break;
                }
                let found = probe(&client, &table).await;
                let mut v = verdict.lock().unwrap_or_else(|e| e.into_inner());
                if *v != found {
                    match &found {
                        Some(reason) => tracing::warn!(%reason, "not ready"),
                        None => tracing::info!(table = %table, "table reachable again: ready"),
                    }
                }
                *v = found;
            }
        });
        store
    }
}

#[async_trait]
impl EventStore for ProbedStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        self.inner.append(request).await
    }

    async fn stream_info(&self, stream: &StreamKey) -> Result<Option<StreamInfo>, StoreError> {
        self.inner.stream_info(stream).await
    }

    async fn read_stream(
        &self,
        stream: &StreamKey,
        read: StreamRead,
    ) -> Result<StreamSlice, StoreError> {
        self.inner.read_stream(stream, read).await
    }

    async fn list_streams(
        &self,
        stream_type: &StreamType,
        updated_after: Option<Timestamp>,
        cursor: Option<StreamCursor>,
        limit: usize,
    ) -> Result<StreamListPage, StoreError> {
        self.inner
            .list_streams(stream_type, updated_after, cursor, limit)
            .await
    }

    async fn stream_types(&self) -> Result<Vec<StreamTypeCount>, StoreError> {
        self.inner.stream_types().await
    }

    async fn read_feed(
        &self,
        filter: &FeedFilter,
        after: Position,
        limit: usize,
    ) -> Result<FeedPage, StoreError> {
        self.inner.read_feed(filter, after, limit).await
    }

    async fn wait_for_feed(&self, after: Position) -> Result<(), StoreError> {
        self.inner.wait_for_feed(after).await
    }

    async fn wait_for_type_feed(
        &self,
        stream_type: &StreamType,
        after: Position,
    ) -> Result<(), StoreError> {
        self.inner.wait_for_type_feed(stream_type, after).await
    }

    fn readiness(&self) -> Result<(), String> {
        if let Some(reason) = self
            .verdict
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Err(reason);
        }
        self.inner.readiness()
    }
}
