//! The harness as an [`EventStore`](eventstore_core::EventStore) (it keeps
//! the relay poller alive as long as the store).

/// A store with its relay poller.
pub struct Store(pub super::Harness);

#[async_trait::async_trait]
impl eventstore_core::EventStore for Store {
    async fn append(
        &self,
        r: eventstore_core::AppendRequest,
    ) -> Result<eventstore_core::AppendOutcome, eventstore_core::StoreError> {
        self.0.store.append(r).await
    }
    async fn stream_info(
        &self,
        s: &eventstore_core::StreamKey,
    ) -> Result<Option<eventstore_core::StreamInfo>, eventstore_core::StoreError> {
        self.0.store.stream_info(s).await
    }
    async fn read_stream(
        &self,
        s: &eventstore_core::StreamKey,
        r: eventstore_core::StreamRead,
    ) -> Result<eventstore_core::StreamSlice, eventstore_core::StoreError> {
        self.0.store.read_stream(s, r).await
    }
    async fn list_streams(
        &self,
        t: &eventstore_core::StreamType,
        a: Option<eventstore_core::Timestamp>,
        c: Option<eventstore_core::StreamCursor>,
        l: usize,
    ) -> Result<eventstore_core::StreamListPage, eventstore_core::StoreError> {
        self.0.store.list_streams(t, a, c, l).await
    }
    async fn stream_types(
        &self,
    ) -> Result<Vec<eventstore_core::StreamTypeCount>, eventstore_core::StoreError> {
        self.0.store.stream_types().await
    }
    async fn read_feed(
        &self,
        f: &eventstore_core::FeedFilter,
        a: eventstore_core::Position,
        l: usize,
    ) -> Result<eventstore_core::FeedPage, eventstore_core::StoreError> {
        self.0.store.read_feed(f, a, l).await
    }
    async fn wait_for_feed(
        &self,
        a: eventstore_core::Position,
    ) -> Result<(), eventstore_core::StoreError> {
        self.0.store.wait_for_feed(a).await
    }
}
