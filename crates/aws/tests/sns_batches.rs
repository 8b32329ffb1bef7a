//! SNS `PublishBatch` limits, against moto behind the fidelity layer of
//! `scripts/moto/server.py` (which refuses a batch over 256 KiB with
//! `BatchRequestTooLong`, as SNS does): notifications of large appends are
//! published in batches sized by bytes, none is lost.

use eventstore_testkit::moto;

use aws_sdk_sns::config::{Credentials, Region};
use eventstore_api::Notification;
use eventstore_core::{EventType, Position, Revision, StreamId, StreamType};
use eventstore_lambda::notify::SnsPublisher;

async fn sdk() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(moto::endpoint())
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .load()
        .await
}

#[tokio::test]
async fn notifications_of_large_appends_are_published_in_batches_sized_by_bytes() {
    let sdk = sdk().await;
    let sns = aws_sdk_sns::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let name = format!(
        "batches-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let topic = sns
        .create_topic()
        .name(&name)
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_string();
    let queue = sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(queue_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();
    // Ten appends of 100 events with 200-character types (600 bytes each):
    // ~120 KB per message with its EventTypes attribute, ~1.2 MB for ten.
    let kind = EventType::parse("✓".repeat(200)).unwrap();
    let notifications: Vec<Notification> = (0..10)
        .map(|i| Notification {
            stream_id: StreamId::parse(format!("o-{i}")).unwrap(),
            stream_type: StreamType::parse("order").unwrap(),
            stream_revision: Revision::new(100),
            first_revision: Revision::new(1),
            event_types: vec![kind.clone(); 100],
            position: Some(Position::new(1 + 100 * i)),
        })
        .collect();
    let publisher = SnsPublisher::new(sns, topic);
    let lost = publisher.publish_all(&notifications).await;
    assert!(
        lost.is_empty(),
        "{} notifications not published",
        lost.len()
    );
    let mut received = 0;
    for _ in 0..20 {
        let got = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in got.messages() {
            received += 1;
            sqs.delete_message()
                .queue_url(&queue)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
        if received >= 10 {
            break;
        }
    }
    assert_eq!(received, 10, "every notification is delivered once");
}
