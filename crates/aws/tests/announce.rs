//! The relay's publish-then-acknowledge step ([`Announcer`]) against the
//! emulator, through the in-process poller: a batch whose announcements
//! are not all published is not acknowledged and is announced again; once
//! published it is acknowledged, so that a relay started later announces
//! only what came after it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use eventstore_aws::{Announcer, Publisher, config};
use eventstore_core::{
    AppendRequest, EventStore, EventType, Expectation, JsonValue, NewEvent, StreamId, StreamKey,
    StreamType,
};
use eventstore_dynamodb::{Announcement, DynamoStore, Relay, create_table, items};
use eventstore_testkit::moto;

/// A publisher that refuses everything for its first `refusals` calls,
/// then publishes (records) every announcement.
#[derive(Default)]
struct Flaky {
    refusals: Mutex<u32>,
    calls: Mutex<u32>,
    published: Mutex<Vec<Announcement>>,
}

#[async_trait]
impl Publisher for Flaky {
    async fn publish(&self, announcements: &[Announcement]) -> Vec<Announcement> {
        *self.calls.lock().unwrap() += 1;
        let mut refusals = self.refusals.lock().unwrap();
        if *refusals > 0 {
            *refusals -= 1;
            return announcements.to_vec();
        }
        self.published
            .lock()
            .unwrap()
            .extend_from_slice(announcements);
        Vec::new()
    }
}

impl Flaky {
    fn published(&self) -> Vec<(String, u64)> {
        self.published
            .lock()
            .unwrap()
            .iter()
            .map(|a| (a.entry.stream.stream_id.to_string(), a.entry.first_revision))
            .collect()
    }

    async fn wait_for(&self, n: usize) -> Vec<(String, u64)> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let got = self.published();
            if got.len() >= n || tokio::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The relay's announcement marks in the table (one per shard acknowledged).
async fn marks(client: &aws_sdk_dynamodb::Client, table: &str) -> usize {
    client
        .query()
        .table_name(table)
        .key_condition_expression(items::cond::PARTITION)
        .expression_attribute_values(":p", items::s(items::ANNOUNCED_PK))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .items()
        .len()
}

fn append(id: &str) -> AppendRequest {
    AppendRequest::new(
        StreamKey::new(
            StreamType::parse("order").unwrap(),
            StreamId::parse(id).unwrap(),
        ),
        Expectation::Any,
        vec![NewEvent::new(
            EventType::parse("Placed").unwrap(),
            JsonValue::from_text("{}").unwrap(),
        )],
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpublished_batches_are_announced_again_and_published_ones_never() {
    let sdk = moto::sdk_config().await;
    let client = config::dynamodb_client(&sdk);
    let table = moto::table_name("announce");
    create_table(&client, &table).await.unwrap();
    let store = DynamoStore::new(client.clone(), table.clone());
    for id in ["o-1", "o-2", "o-3"] {
        store.append(append(id)).await.unwrap();
    }

    // The first relay's publisher refuses its first two batches.
    let flaky = Arc::new(Flaky {
        refusals: Mutex::new(2),
        ..Flaky::default()
    });
    let first = Announcer::new(
        Relay::new(DynamoStore::new(client.clone(), table.clone())),
        flaky.clone(),
    )
    .spawn_poller(config::streams_client(&sdk), Duration::from_millis(50));
    let mut got = flaky.wait_for(3).await;
    // The stream's three records came in one batch: once published, it is
    // acknowledged (the shard's mark item is written).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while marks(&client, &table).await == 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.stop();
    assert_eq!(marks(&client, &table).await, 1, "the batch is acknowledged");
    got.sort();
    assert_eq!(
        got,
        [("o-1".to_string(), 1), ("o-2".into(), 1), ("o-3".into(), 1)],
        "every append announced once it could be published"
    );
    assert!(
        *flaky.calls.lock().unwrap() >= 3,
        "the refused batch was handed over again"
    );

    // A relay started later reads the stream from its start: the appends
    // acknowledged above are not announced again, the new one is.
    store.append(append("o-4")).await.unwrap();
    let later = Arc::new(Flaky::default());
    let second = Announcer::new(
        Relay::new(DynamoStore::new(client.clone(), table.clone())),
        later.clone(),
    )
    .spawn_poller(config::streams_client(&sdk), Duration::from_millis(50));
    let got = later.wait_for(1).await;
    second.stop();
    assert_eq!(got, [("o-4".to_string(), 1)]);
}
