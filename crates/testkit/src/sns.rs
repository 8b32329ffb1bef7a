//! SNS topics and SQS queues on the emulator, for the tests that watch
//! what the relay announces: a topic, queues subscribed to it (raw
//! delivery, a filter policy), and the messages a queue holds.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;

/// An SQS queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    /// Its URL (for requests).
    pub url: String,
    /// Its ARN (for subscriptions).
    pub arn: String,
}

/// How a queue is subscribed to a topic.
#[derive(Debug, Clone, Copy, Default)]
pub struct Delivery<'a> {
    /// Raw message delivery: the queue's message body is the published
    /// message, its attributes the message attributes (otherwise SNS wraps
    /// both in a JSON envelope).
    pub raw: bool,
    /// A filter policy on the message attributes.
    pub filter_policy: Option<&'a str>,
}

impl Delivery<'static> {
    /// Raw delivery, no filter.
    pub const RAW: Self = Self {
        raw: true,
        filter_policy: None,
    };
}

/// A message taken from a queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// The body, parsed as JSON.
    pub body: serde_json::Value,
    /// The message attributes: name -> (data type, string value).
    pub attributes: HashMap<String, (String, String)>,
}

/// SNS and SQS clients on one AWS endpoint.
#[derive(Debug, Clone)]
pub struct Messaging {
    /// The SNS client.
    pub sns: aws_sdk_sns::Client,
    /// The SQS client.
    pub sqs: aws_sdk_sqs::Client,
}

impl Messaging {
    /// Clients on the test process's emulator ([`crate::moto::sdk_config`]).
    pub async fn on_emulator() -> Self {
        Self::new(&crate::moto::sdk_config().await)
    }

    /// Clients from given settings.
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Self {
            sns: aws_sdk_sns::Client::new(sdk),
            sqs: aws_sdk_sqs::Client::new(sdk),
        }
    }

    /// Creates (or finds: same name, same ARN) a topic; its ARN.
    pub async fn topic(&self, name: &str) -> String {
        self.sns
            .create_topic()
            .name(name)
            .send()
            .await
            .expect("create the topic")
            .topic_arn()
            .expect("the topic's ARN")
            .to_string()
    }

    /// Creates a queue.
    pub async fn queue(&self, name: &str) -> Queue {
        let url = self
            .sqs
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .expect("create the queue")
            .queue_url()
            .expect("the queue's URL")
            .to_string();
        let arn = self
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("read the queue's ARN")
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .expect("the queue's ARN")
            .clone();
        Queue { url, arn }
    }

    /// Creates a queue and subscribes it to `topic`.
    pub async fn subscribed_queue(&self, topic: &str, name: &str, delivery: Delivery<'_>) -> Queue {
        let queue = self.queue(name).await;
        let mut sub = self
            .sns
            .subscribe()
            .topic_arn(topic)
            .protocol("sqs")
            .endpoint(&queue.arn);
        if let Some(policy) = delivery.filter_policy {
            sub = sub.attributes("FilterPolicy", policy);
        }
        if delivery.raw {
            sub = sub.attributes("RawMessageDelivery", "true");
        }
        sub.send().await.expect("subscribe the queue");
        queue
    }

    /// A topic named `name` with a queue of the same name subscribed with
    /// raw delivery: (the topic's ARN, the queue).
    pub async fn topic_with_queue(&self, name: &str) -> (String, Queue) {
        let topic = self.topic(name).await;
        let queue = self.subscribed_queue(&topic, name, Delivery::RAW).await;
        (topic, queue)
    }

    /// One receive of up to ten messages (waiting up to `wait` seconds for
    /// the first), each deleted once taken.
    async fn take(&self, url: &str, wait: i32) -> Vec<Received> {
        let got = self
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .wait_time_seconds(wait)
            .send()
            .await
            .expect("receive from the queue");
        let mut out = Vec::new();
        for m in got.messages() {
            let attributes = m
                .message_attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| {
                            let value = v.string_value().unwrap_or_default().to_string();
                            (k.clone(), (v.data_type().to_string(), value))
                        })
                        .collect()
                })
                .unwrap_or_default();
            let body = m.body().unwrap_or_default();
            out.push(Received {
                body: serde_json::from_str(body)
                    .unwrap_or_else(|e| panic!("a message body that is not JSON ({e}): {body}")),
                attributes,
            });
            self.sqs
                .delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().expect("a receipt handle"))
                .send()
                .await
                .expect("delete the message");
        }
        out
    }

    /// Every message the queue holds now, deleted: received until a
    /// receive (waiting `wait` seconds) comes back empty.
    pub async fn drain(&self, url: &str, wait: i32) -> Vec<Received> {
        let mut out = Vec::new();
        loop {
            let got = self.take(url, wait).await;
            if got.is_empty() {
                return out;
            }
            out.extend(got);
        }
    }

    /// Messages from the queue, deleted, until `count` are taken or
    /// `timeout` has passed (what was taken by then).
    pub async fn receive(&self, url: &str, count: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < count && Instant::now() < deadline {
            out.extend(self.take(url, 1).await);
        }
        out
    }

    /// Messages in the queue, visible or not (SQS's approximate counts).
    pub async fn messages_in(&self, url: &str) -> u64 {
        use QueueAttributeName as A;
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("read the queue's counts");
        let attrs = out.attributes().expect("the queue's counts");
        [
            A::ApproximateNumberOfMessages,
            A::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .map(|k| {
            attrs
                .get(k)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
    }
}
