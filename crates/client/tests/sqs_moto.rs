//! The notification consumer against moto's SNS and SQS over HTTP: a topic
//! with two subscribed queues, one with raw message delivery and one with
//! SNS envelopes, on the emulator of `eventstore_testkit::moto`.

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use eventstore_client::Credentials;
use eventstore_client::notifications::{Delivery, Notification, NotificationConsumer};
use eventstore_client::{EventType, Position, Revision, StreamId, StreamType};

use eventstore_testkit::moto;

async fn config(url: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .load()
        .await
}

fn notification(n: u64) -> Notification {
    Notification {
        stream_id: StreamId::parse(format!("s-{n}")).unwrap(),
        stream_type: StreamType::parse("order").unwrap(),
        stream_revision: Revision::new(n + 2),
        first_revision: Revision::new(n + 1),
        event_types: vec![
            EventType::parse("a").unwrap(),
            EventType::parse("b").unwrap(),
        ],
        position: Some(Position::new(100 + n)),
    }
}

async fn receive_all(consumer: &NotificationConsumer, want: usize) -> Vec<Delivery> {
    let mut got = Vec::new();
    for _ in 0..20 {
        got.extend(consumer.receive().await.unwrap());
        if got.len() >= want {
            break;
        }
    }
    got
}

#[tokio::test]
async fn consumes_raw_and_enveloped_notifications_from_sqs() {
    let config = config(&moto::endpoint()).await;
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let tag = uuid_like();
    let topic = sns
        .create_topic()
        .name(format!("store-{tag}"))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let mut consumers = Vec::new();
    for raw in [true, false] {
        let name = format!("sub-{tag}-{raw}");
        let url = sqs
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        let arn = format!("arn:aws:sqs:us-east-1:123456789012:{name}");
        let mut sub = sns
            .subscribe()
            .topic_arn(&topic)
            .protocol("sqs")
            .endpoint(arn);
        if raw {
            sub = sub.attributes("RawMessageDelivery", "true");
        }
        sub.send().await.unwrap();
        consumers.push(
            NotificationConsumer::new(sqs.clone(), url)
                .wait(Duration::from_secs(1))
                .visibility_timeout(Duration::from_secs(1)),
        );
    }
    let sent: Vec<_> = (0..3).map(notification).collect();
    for n in &sent {
        sns.publish()
            .topic_arn(&topic)
            .message(serde_json::to_string(n).unwrap())
            .send()
            .await
            .unwrap();
    }
    for consumer in &consumers {
        let got = receive_all(consumer, 3).await;
        let mut parsed: Vec<Notification> = got
            .iter()
            .map(|d| d.notification.as_ref().unwrap().clone())
            .collect();
        parsed.sort_by_key(|n| n.position);
        assert_eq!(parsed, sent);
        consumer.ack_all(&got).await.unwrap();
        // Acknowledged messages do not come back after the visibility timeout.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(consumer.receive().await.unwrap().is_empty());
    }

    // A message that is not a notification is delivered as a decode error,
    // and can be acknowledged one by one.
    let junk_queue = sqs
        .create_queue()
        .queue_name(format!("junk-{tag}"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    sqs.send_message()
        .queue_url(&junk_queue)
        .message_body(r#"{"hello":"world"}"#)
        .send()
        .await
        .unwrap();
    let consumer = NotificationConsumer::new(sqs.clone(), &junk_queue)
        .wait(Duration::from_secs(1))
        .visibility_timeout(Duration::from_secs(1));
    let got = receive_all(&consumer, 1).await;
    assert_eq!(got.len(), 1);
    assert!(matches!(
        got[0].notification,
        Err(eventstore_client::Error::Decode(_))
    ));
    consumer.ack(&got[0]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(consumer.receive().await.unwrap().is_empty());
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}
