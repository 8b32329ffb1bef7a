//! SNS messages for committed appends: the body is the
//! [`Notification`] JSON of API.md, the
//! message attributes `StreamType` (String) and `EventTypes` (String.Array)
//! let subscribers filter. [`SnsPublisher`] publishes the relay's
//! [`Announcement`]s in `PublishBatch` calls sized by count and bytes.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use eventstore_api::Notification;
use eventstore_core::{Position, Revision};
use eventstore_dynamodb::Announcement;

use crate::announce::Publisher;

/// A `PublishBatch` call that failed as a whole, or an entry that could
/// not be built.
#[derive(Debug, thiserror::Error)]
#[error("publishing to SNS failed: {0}")]
pub struct PublishError(String);

/// The notification (API.md) announcing `a`.
pub fn notification(a: &Announcement) -> Notification {
    let e = &a.entry;
    Notification {
        stream_id: e.stream.stream_id.clone(),
        stream_type: e.stream.stream_type.clone(),
        stream_revision: Revision::new(e.first_revision + e.count - 1),
        first_revision: Revision::new(e.first_revision),
        event_types: a.event_types.clone(),
        position: Some(Position::new(e.position)),
    }
}

/// SNS accepts at most this many entries per PublishBatch call.
const BATCH: usize = 10;
/// SNS accepts at most this many bytes per PublishBatch call, all messages
/// and their attributes together (`BatchRequestTooLong` beyond).
pub const BATCH_BYTES: usize = 256 * 1024;
/// Attempts per entry before a notification is reported as not published.
const ATTEMPTS: u32 = 6;

/// The message published for one notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsMessage {
    /// The JSON body.
    pub body: String,
    /// Value of the `StreamType` attribute (data type `String`).
    pub stream_type: String,
    /// Value of the `EventTypes` attribute (data type `String.Array`): a
    /// JSON array of the append's event types, in order.
    pub event_types: String,
}

impl SnsMessage {
    /// The message for `n`.
    pub fn of(n: &Notification) -> Self {
        Self {
            body: serde_json::to_string(n).expect("a notification always serializes"),
            stream_type: n.stream_type.to_string(),
            event_types: serde_json::to_string(&n.event_types).expect("event types serialize"),
        }
    }

    /// Bytes SNS counts for this message against a batch's
    /// [`BATCH_BYTES`]: the body, and each attribute's name, data type and
    /// value.
    pub fn size(&self) -> usize {
        self.body.len()
            + "StreamType".len()
            + "String".len()
            + self.stream_type.len()
            + "EventTypes".len()
            + "String.Array".len()
            + self.event_types.len()
    }

    fn attributes(&self) -> Result<Vec<(String, MessageAttributeValue)>, PublishError> {
        let attr = |data_type: &str, value: &str| {
            MessageAttributeValue::builder()
                .data_type(data_type)
                .string_value(value)
                .build()
                .map_err(|e| PublishError(e.to_string()))
        };
        Ok(vec![
            ("StreamType".to_string(), attr("String", &self.stream_type)?),
            (
                "EventTypes".to_string(),
                attr("String.Array", &self.event_types)?,
            ),
        ])
    }
}

/// Publishes notifications to one topic.
#[derive(Debug, Clone)]
pub struct SnsPublisher {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl SnsPublisher {
    /// A publisher to `topic_arn`.
    pub fn new(client: aws_sdk_sns::Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }

    /// Publishes one message per announcement, in order, in PublishBatch
    /// calls of at most ten entries and [`BATCH_BYTES`] ([`batches`]).
    /// Entries SNS refuses or that fail in transit are retried with
    /// backoff; returns the announcements still unpublished after every
    /// attempt.
    pub async fn publish_all(&self, announcements: &[Announcement]) -> Vec<Announcement> {
        let messages: Vec<SnsMessage> = announcements
            .iter()
            .map(|a| SnsMessage::of(&notification(a)))
            .collect();
        let sizes: Vec<usize> = messages.iter().map(SnsMessage::size).collect();
        let mut lost = Vec::new();
        for range in batches(&sizes) {
            let failed = self.publish_chunk(&messages[range.clone()]).await;
            lost.extend(
                failed
                    .into_iter()
                    .map(|i| announcements[range.start + i].clone()),
            );
        }
        lost
    }

    /// Publishes a chunk that fits one call; the indexes of the messages
    /// still unpublished after every attempt.
    async fn publish_chunk(&self, chunk: &[SnsMessage]) -> Vec<usize> {
        let mut pending: Vec<(usize, &SnsMessage)> = chunk.iter().enumerate().collect();
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=ATTEMPTS {
            match self.try_publish(&pending).await {
                Ok(failed) if failed.is_empty() => return Vec::new(),
                Ok(failed) => {
                    tracing::warn!(
                        attempt,
                        failed = failed.len(),
                        "SNS refused some entries; retrying"
                    );
                    pending.retain(|(i, _)| failed.contains(i));
                }
                Err(e) => tracing::warn!(attempt, error = %e, "PublishBatch failed; retrying"),
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(delay).await;
                delay = (delay * 3).min(Duration::from_secs(5));
            }
        }
        pending.into_iter().map(|(i, _)| i).collect()
    }

    /// One PublishBatch call; the indexes of the entries that failed.
    async fn try_publish(
        &self,
        entries: &[(usize, &SnsMessage)],
    ) -> Result<Vec<usize>, PublishError> {
        let mut request = self.client.publish_batch().topic_arn(&self.topic_arn);
        for (i, msg) in entries {
            let mut entry = PublishBatchRequestEntry::builder()
                .id(i.to_string())
                .message(msg.body.clone());
            for (name, value) in msg.attributes()? {
                entry = entry.message_attributes(name, value);
            }
            request = request.publish_batch_request_entries(
                entry.build().map_err(|e| PublishError(e.to_string()))?,
            );
        }
        let out = request
            .send()
            .await
            .map_err(|e| PublishError(aws_sdk_sns::error::DisplayErrorContext(e).to_string()))?;
        Ok(out
            .failed()
            .iter()
            .filter_map(|f| f.id().parse().ok())
            .collect())
    }
}

#[async_trait]
impl Publisher for SnsPublisher {
    async fn publish(&self, announcements: &[Announcement]) -> Vec<Announcement> {
        self.publish_all(announcements).await
    }
}

/// Splits messages of the given sizes, in order, into PublishBatch calls
/// of at most ten entries and [`BATCH_BYTES`]. A message is never larger
/// than a batch (a notification names at most 100 event types of at most
/// 800 bytes: about 165 KB with its attribute), but one that were would
/// still get a call of its own, for SNS to refuse it alone.
pub fn batches(sizes: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, size) in sizes.iter().enumerate() {
        if i > start && (i - start == BATCH || bytes + size > BATCH_BYTES) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use eventstore_core::{EventType, Position, Revision, StreamId, StreamType};

    #[test]
    fn body_and_attributes_follow_the_contract() {
        let n = Notification {
            stream_id: StreamId::parse("o-1").unwrap(),
            stream_type: StreamType::parse("order").unwrap(),
            stream_revision: Revision::new(3),
            first_revision: Revision::new(2),
            event_types: vec![
                EventType::parse("Paid").unwrap(),
                EventType::parse("Shipped").unwrap(),
            ],
            position: Some(Position::new(12)),
        };
        let m = SnsMessage::of(&n);
        let body: serde_json::Value = serde_json::from_str(&m.body).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"StreamId":"o-1","StreamType":"order","StreamRevision":"3",
                "FirstRevision":"2","EventTypes":["Paid","Shipped"],"Position":"12"})
        );
        assert_eq!(m.stream_type, "order");
        assert_eq!(m.event_types, r#"["Paid","Shipped"]"#);
        let attrs = m.attributes().unwrap();
        assert_eq!(attrs[0].0, "StreamType");
        assert_eq!(attrs[0].1.data_type(), "String");
        assert_eq!(attrs[1].0, "EventTypes");
        assert_eq!(attrs[1].1.data_type(), "String.Array");
    }

    #[test]
    fn an_announcement_becomes_the_notification_of_its_append() {
        let a = Announcement {
            entry: eventstore_dynamodb::FeedEntry {
                stream: eventstore_core::StreamKey::new(
                    StreamType::parse("order").unwrap(),
                    StreamId::parse("o-1").unwrap(),
                ),
                first_revision: 4,
                count: 2,
                position: 17,
            },
            event_types: vec![
                EventType::parse("Paid").unwrap(),
                EventType::parse("Shipped").unwrap(),
            ],
        };
        let n = notification(&a);
        assert_eq!(
            (n.first_revision, n.stream_revision, n.position),
            (Revision::new(4), Revision::new(5), Some(Position::new(17)))
        );
        assert_eq!(
            (n.stream_id.as_str(), n.stream_type.as_str()),
            ("o-1", "order")
        );
        assert_eq!(n.event_types, a.event_types);
    }

    #[test]
    fn batches_hold_at_most_ten_entries_and_256_kib() {
        assert_eq!(batches(&[]), Vec::<std::ops::Range<usize>>::new());
        assert_eq!(batches(&[100; 25]), vec![0..10, 10..20, 20..25]);
        let big = 120 * 1024;
        assert_eq!(batches(&[big; 5]), vec![0..2, 2..4, 4..5]);
        assert_eq!(batches(&[BATCH_BYTES + 1, 1]), vec![0..1, 1..2]);
        for range in batches(&[big, 10, big, big, 5, 5, 5]) {
            let sizes = [big, 10, big, big, 5, 5, 5];
            assert!(sizes[range].iter().sum::<usize>() <= BATCH_BYTES);
        }
    }

    #[test]
    fn the_largest_notification_fits_one_batch() {
        let widest = EventType::parse("\"".repeat(100) + &"𝄞".repeat(100)).unwrap();
        let n = Notification {
            stream_id: StreamId::parse("x".repeat(200)).unwrap_or(StreamId::parse("o-1").unwrap()),
            stream_type: StreamType::parse("t".repeat(100)).unwrap(),
            stream_revision: Revision::new(u64::MAX),
            first_revision: Revision::new(u64::MAX - 99),
            event_types: vec![widest; 100],
            position: Some(Position::new(u64::MAX)),
        };
        let size = SnsMessage::of(&n).size();
        assert!(size < BATCH_BYTES, "{size}");
    }
}
