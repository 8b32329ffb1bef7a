//! SNS `PublishBatch` limits, against moto behind the fidelity layer of
//! `scripts/moto/server.py` (which refuses a batch over 256 KiB with
//! `BatchRequestTooLong`, as SNS does): announcements of large appends are
//! published in batches sized by bytes, none is lost.

use std::time::Duration;

use eventstore_aws::{SnsPublisher, config};
use eventstore_core::{EventType, StreamId, StreamKey, StreamType};
use eventstore_dynamodb::{Announcement, FeedEntry};
use eventstore_testkit::moto;
use eventstore_testkit::sns::Messaging;

#[tokio::test]
async fn announcements_of_large_appends_are_published_in_batches_sized_by_bytes() {
    let sdk = moto::sdk_config().await;
    let messaging = Messaging::new(&sdk);
    let name = moto::table_name("batches");
    let (topic, queue) = messaging.topic_with_queue(&name).await;
    // Ten appends of 100 events with 200-character types (600 bytes each):
    // ~120 KB per message with its EventTypes attribute, ~1.2 MB for ten.
    let kind = EventType::parse("✓".repeat(200)).unwrap();
    let announcements: Vec<Announcement> = (0..10)
        .map(|i| Announcement {
            entry: FeedEntry {
                stream: StreamKey::new(
                    StreamType::parse("order").unwrap(),
                    StreamId::parse(format!("o-{i}")).unwrap(),
                ),
                first_revision: 1,
                count: 100,
                position: 1 + 100 * i,
            },
            event_types: vec![kind.clone(); 100],
        })
        .collect();
    let publisher = SnsPublisher::new(config::sns_client(&sdk), topic);
    let lost = publisher.publish_all(&announcements).await;
    assert!(
        lost.is_empty(),
        "{} announcements not published",
        lost.len()
    );
    let received = messaging
        .receive(&queue.url, 10, Duration::from_secs(20))
        .await;
    assert_eq!(received.len(), 10, "every append is announced once");
    for m in &received {
        assert_eq!(m.body["EventTypes"].as_array().map(Vec::len), Some(100));
    }
}
