//! The store's notifications as subscribers receive them.
//!
//! After every committed append the store publishes one
//! [`Notification`]. On AWS it goes to an SNS topic; a subscriber usually
//! reads it from an SQS queue subscribed to that topic. The queue's message
//! body is then either the notification itself (SNS raw message delivery)
//! or an SNS envelope `{"Type":"Notification","Message":"<json string>",...}`
//! whose `Message` is the notification's JSON text. [`parse_body`] accepts
//! both.
//!
//! - `NotificationConsumer` (feature `sqs`): receives and acknowledges
//!   (deletes) messages from a queue.
//! - `from_sqs_event` (feature `lambda-events`): the notifications of the
//!   `SqsEvent` a Lambda function subscribed to the queue receives.
//!
//! Delivery is at least once: a consumer must tolerate seeing a
//! notification twice (the stream's revision tells it what it has seen).

pub use eventstore_api::Notification;

use crate::error::{Error, Result};

/// Parses an SQS message body: a raw notification or an SNS envelope whose
/// `Message` is one.
///
/// ```
/// let raw = r#"{"StreamId":"s-1","StreamType":"order","StreamRevision":"3",
///               "FirstRevision":"2","EventTypes":["a","b"],"Position":"17"}"#;
/// let n = eventstore_client::notifications::parse_body(raw).unwrap();
/// assert_eq!(n.stream_revision.get(), 3);
///
/// let envelope = serde_json::json!({"Type": "Notification", "Message": raw}).to_string();
/// assert_eq!(eventstore_client::notifications::parse_body(&envelope).unwrap(), n);
/// ```
pub fn parse_body(body: &str) -> Result<Notification> {
    let value: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| Error::Decode(format!("notification body is not JSON: {e}")))?;
    let is_envelope = value.get("Type").and_then(|t| t.as_str()) == Some("Notification")
        && value.get("Message").is_some_and(|m| m.is_string());
    if is_envelope {
        let message = value["Message"].as_str().unwrap_or_default();
        return serde_json::from_str(message)
            .map_err(|e| Error::Decode(format!("SNS message is not a notification: {e}")));
    }
    serde_json::from_value(value)
        .map_err(|e| Error::Decode(format!("message is not a notification: {e}")))
}

/// The notifications of the `SqsEvent` a Lambda function receives, one per
/// record and in the records' order, with the record's message id.
#[cfg(feature = "lambda-events")]
pub fn from_sqs_event(
    event: &aws_lambda_events::event::sqs::SqsEvent,
) -> Vec<(Option<String>, Result<Notification>)> {
    event
        .records
        .iter()
        .map(|r| {
            let parsed = match r.body.as_deref() {
                Some(body) => parse_body(body),
                None => Err(Error::Decode("SQS record without a body".into())),
            };
            (r.message_id.clone(), parsed)
        })
        .collect()
}

#[cfg(feature = "sqs")]
pub use consumer::{Delivery, NotificationConsumer};

#[cfg(feature = "sqs")]
mod consumer {
    use std::time::Duration;

    use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;

    use super::{Notification, parse_body};
    use crate::error::{Error, Result};

    /// One received message: its notification (or why it could not be
    /// parsed) and the handle that acknowledges it.
    #[derive(Debug)]
    pub struct Delivery {
        /// SQS's id of the message.
        pub message_id: Option<String>,
        /// The handle [`NotificationConsumer::ack`] needs.
        pub receipt_handle: String,
        /// The notification, or a [`Error::Decode`] for a message that is
        /// not one (acknowledge it to drop it, or let it go to a dead-letter
        /// queue).
        pub notification: Result<Notification>,
    }

    /// Receives the store's notifications from an SQS queue and
    /// acknowledges them.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), eventstore_client::Error> {
    /// use eventstore_client::notifications::NotificationConsumer;
    ///
    /// let consumer = NotificationConsumer::from_default_chain("https://sqs.eu-west-1.amazonaws.com/123/store").await;
    /// loop {
    ///     for delivery in consumer.receive().await? {
    ///         if let Ok(n) = &delivery.notification {
    ///             println!("{}/{} is at revision {}", n.stream_type, n.stream_id, n.stream_revision);
    ///         }
    ///         consumer.ack(&delivery).await?;
    ///     }
    /// }
    /// # }
    /// ```
    #[derive(Debug, Clone)]
    pub struct NotificationConsumer {
        sqs: aws_sdk_sqs::Client,
        queue_url: String,
        max_messages: i32,
        wait: Duration,
        visibility_timeout: Option<Duration>,
    }

    impl NotificationConsumer {
        /// A consumer of `queue_url` using this SQS client.
        pub fn new(sqs: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
            Self {
                sqs,
                queue_url: queue_url.into(),
                max_messages: 10,
                wait: Duration::from_secs(20),
                visibility_timeout: None,
            }
        }

        /// A consumer with an SQS client configured from the environment
        /// (AWS default chain for region and credentials).
        pub async fn from_default_chain(queue_url: impl Into<String>) -> Self {
            let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            Self::new(aws_sdk_sqs::Client::new(&config), queue_url)
        }

        /// Messages per receive, 1–10 (default 10).
        #[must_use]
        pub fn max_messages(mut self, n: i32) -> Self {
            self.max_messages = n.clamp(1, 10);
            self
        }

        /// Long-poll wait of a receive, at most 20 s (default 20 s).
        #[must_use]
        pub fn wait(mut self, wait: Duration) -> Self {
            self.wait = wait.min(Duration::from_secs(20));
            self
        }

        /// How long received messages stay hidden from other consumers
        /// (default: the queue's setting).
        #[must_use]
        pub fn visibility_timeout(mut self, timeout: Duration) -> Self {
            self.visibility_timeout = Some(timeout);
            self
        }

        /// Receives up to `max_messages` messages, waiting up to `wait` when
        /// the queue is empty. An empty result is normal.
        pub async fn receive(&self) -> Result<Vec<Delivery>> {
            let mut req = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(self.max_messages)
                .wait_time_seconds(i32::try_from(self.wait.as_secs()).unwrap_or(20));
            if let Some(v) = self.visibility_timeout {
                req = req.visibility_timeout(i32::try_from(v.as_secs()).unwrap_or(i32::MAX));
            }
            let out = req
                .send()
                .await
                .map_err(|e| Error::Aws(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
            Ok(out
                .messages
                .unwrap_or_default()
                .into_iter()
                .filter_map(|m| {
                    let receipt_handle = m.receipt_handle?;
                    let notification = match m.body.as_deref() {
                        Some(body) => parse_body(body),
                        None => Err(Error::Decode("SQS message without a body".into())),
                    };
                    Some(Delivery {
                        message_id: m.message_id,
                        receipt_handle,
                        notification,
                    })
                })
                .collect())
        }

        /// Acknowledges (deletes) one message.
        pub async fn ack(&self, delivery: &Delivery) -> Result<()> {
            self.sqs
                .delete_message()
                .queue_url(&self.queue_url)
                .receipt_handle(&delivery.receipt_handle)
                .send()
                .await
                .map_err(|e| Error::Aws(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
            Ok(())
        }

        /// Acknowledges many messages with batch deletes (10 per call).
        /// Fails when SQS reports any message it could not delete.
        pub async fn ack_all(&self, deliveries: &[Delivery]) -> Result<()> {
            for chunk in deliveries.chunks(10) {
                let entries = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, d)| {
                        DeleteMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .receipt_handle(&d.receipt_handle)
                            .build()
                            .map_err(|e| Error::Aws(e.to_string()))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let out = self
                    .sqs
                    .delete_message_batch()
                    .queue_url(&self.queue_url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(|e| {
                        Error::Aws(aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
                    })?;
                if let Some(failed) = out.failed.first() {
                    return Err(Error::Aws(format!(
                        "{} of {} messages not deleted: {} {}",
                        out.failed.len(),
                        chunk.len(),
                        failed.code,
                        failed.message.as_deref().unwrap_or("")
                    )));
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: &str = include_str!("../tests/fixtures/notification-raw.json");
    const ENVELOPE: &str = include_str!("../tests/fixtures/notification-sns-envelope.json");

    #[test]
    fn parses_raw_delivery_and_sns_envelope_alike() {
        let raw = parse_body(RAW).unwrap();
        let env = parse_body(ENVELOPE).unwrap();
        assert_eq!(raw, env);
        assert_eq!(raw.stream_type.as_str(), "order");
        assert_eq!(
            raw.stream_id.as_str(),
            "0193c8a4-1b2e-7c3d-9e8f-0a1b2c3d4e5f"
        );
        assert_eq!(raw.stream_revision.get(), 18);
        assert_eq!(raw.first_revision.get(), 16);
        assert_eq!(raw.event_types.len(), 3);
        assert_eq!(raw.position.map(|p| p.get()), Some(4711));
    }

    #[test]
    fn rejects_what_is_not_a_notification() {
        assert!(matches!(parse_body("not json"), Err(Error::Decode(_))));
        assert!(matches!(parse_body("{}"), Err(Error::Decode(_))));
        let bad_inner = r#"{"Type":"Notification","Message":"{\"StreamId\":\"x\"}"}"#;
        assert!(matches!(parse_body(bad_inner), Err(Error::Decode(_))));
        let bad_revision = RAW.replace("\"18\"", "\"-1\"");
        assert!(matches!(parse_body(&bad_revision), Err(Error::Decode(_))));
    }

    #[cfg(feature = "lambda-events")]
    #[test]
    fn lambda_sqs_event_yields_one_notification_per_record() {
        let event: aws_lambda_events::event::sqs::SqsEvent =
            serde_json::from_str(include_str!("../tests/fixtures/lambda-sqs-event.json")).unwrap();
        let out = from_sqs_event(&event);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].0.as_deref(), Some("m-1"));
        let first = out[0].1.as_ref().unwrap();
        let second = out[1].1.as_ref().unwrap();
        assert_eq!(first, &parse_body(RAW).unwrap());
        assert_eq!(second.stream_type.as_str(), "invoice");
        assert!(second.position.is_none());
        assert!(matches!(out[2].1, Err(Error::Decode(_))));
    }
}
