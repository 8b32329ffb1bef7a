//! The relay's publish-then-acknowledge step, the one place the Lambda
//! relay function, the in-process relay of `serve --backend dynamodb` and
//! `relay replay-failures` announce appends.
//!
//! [`Relay::process`] puts a batch's appends into the feed and returns an
//! [`Announcement`] per append not yet announced. [`Announcer::announce`]
//! hands them to a [`Publisher`] (SNS: [`crate::sns::SnsPublisher`]) and,
//! only once every one is published, acknowledges the batch
//! ([`Relay::acknowledge`]), so that a later delivery of the same records
//! announces nothing. When one is not published, nothing is acknowledged:
//! the next delivery of the records announces them again (at least once,
//! never zero times).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use eventstore_dynamodb::{
    Announcement, ChangeRecord, DynamoError, PollerHandle, Relay, RelayOutput, spawn_poller_with,
};

/// Where announcements go.
#[async_trait]
pub trait Publisher: Send + Sync {
    /// Publishes one message per announcement, in order, retrying as it
    /// sees fit; returns the announcements still unpublished after every
    /// attempt (empty: all published).
    async fn publish(&self, announcements: &[Announcement]) -> Vec<Announcement>;
}

/// What announcing a batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Announced {
    /// Announcements published.
    pub published: usize,
    /// Announcements not published after every retry (then nothing was
    /// acknowledged).
    pub unpublished: Vec<Announcement>,
}

impl Announced {
    /// Whether every announcement was published.
    pub fn complete(&self) -> bool {
        self.unpublished.is_empty()
    }
}

/// A relay and the publisher of its announcements. Cheap to clone.
#[derive(Clone)]
pub struct Announcer {
    relay: Relay,
    publisher: Arc<dyn Publisher>,
}

impl Announcer {
    /// Announces `relay`'s appends through `publisher`.
    pub fn new(relay: Relay, publisher: Arc<dyn Publisher>) -> Self {
        Self { relay, publisher }
    }

    /// The relay.
    pub fn relay(&self) -> &Relay {
        &self.relay
    }

    /// Publishes `output`'s announcements; once every one is published,
    /// acknowledges `output`. An acknowledgement that fails is logged and
    /// not retried: a later delivery of these records announces them again,
    /// which at-least-once allows.
    pub async fn announce(&self, output: &RelayOutput) -> Announced {
        let unpublished = self.publisher.publish(&output.announcements).await;
        let announced = Announced {
            published: output.announcements.len() - unpublished.len(),
            unpublished,
        };
        if announced.complete() {
            if let Err(e) = self.relay.acknowledge(output).await {
                tracing::warn!(error = %e, "announcements published but not acknowledged");
            }
        } else {
            for a in &announced.unpublished {
                tracing::error!(
                    stream_type = %a.entry.stream.stream_type,
                    stream_id = %a.entry.stream.stream_id,
                    first_revision = a.entry.first_revision,
                    position = a.entry.position,
                    "append not announced after every retry; the batch is handed over again"
                );
            }
        }
        announced
    }

    /// Replays records a relay gave up on ([`Relay::replay`]: the appends
    /// not yet in the feed are put into it) and publishes an announcement
    /// of every append of the records (again, for those an earlier delivery
    /// had put into the feed). Nothing is acknowledged. Run it again after
    /// a failure: it adds nothing to the feed twice.
    pub async fn replay(
        &self,
        records: &[ChangeRecord],
    ) -> Result<(RelayOutput, Announced), DynamoError> {
        let output = self.relay.replay(records).await?;
        let unpublished = self.publisher.publish(&output.announcements).await;
        let announced = Announced {
            published: output.announcements.len() - unpublished.len(),
            unpublished,
        };
        Ok((output, announced))
    }

    /// Polls the table's DynamoDB Stream in this process
    /// ([`spawn_poller_with`]), announcing each batch: a batch not wholly
    /// published is handed over again after a pause.
    pub fn spawn_poller(
        &self,
        streams: aws_sdk_dynamodbstreams::Client,
        interval: Duration,
    ) -> PollerHandle {
        let announcer = self.clone();
        spawn_poller_with(streams, self.relay.clone(), interval, move |output| {
            let announcer = announcer.clone();
            async move { announcer.announce(&output).await.complete() }
        })
    }
}
