//! The relay function: a batch of the table's DynamoDB Stream records (one
//! shard, in order) -> [`Relay::process`] (feed positions, listings) -> one
//! SNS message per append not yet announced, then [`Relay::acknowledge`]
//! (both by [`Announcer::announce`], shared with the binary).
//!
//! Failures are reported per record (`ReportBatchItemFailures`): when the
//! batch fails as a whole, its records are relayed one by one in order up
//! to the first that fails, and only that record's sequence number is
//! returned, so Lambda retries from it and the records before it are
//! neither blocked nor relayed twice (the relay's per-shard checkpoint also
//! skips any record it already put into the feed).
//!
//! When a notification cannot be published after the publisher's retries,
//! nothing is acknowledged and the batch's first record is reported as
//! failed: Lambda delivers the batch again, and the relay hands back the
//! notifications of every record not acknowledged (from the positions
//! already in the feed, adding nothing to it), so they are published again.
//! The same holds when the function dies between the feed write and the
//! publishing. Subscribers may thus see an append twice, never zero times.

use aws_lambda_events::dynamodb::{EventRecord, TimeWindowEvent, TimeWindowEventResponse};
use aws_lambda_events::streams::DynamoDbBatchItemFailure;
use eventstore_aws::{Announcer, SnsPublisher, config};
use eventstore_dynamodb::{ChangeRecord, DynamoStore, Relay, RelayOutput};

use crate::LambdaError;
use crate::config::RelayConfig;

/// The relay function's state, built once per cold start.
#[derive(Clone)]
pub struct RelayFunction {
    announcer: Announcer,
}

/// What one invocation did (for logs and tests).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchReport {
    /// Records in the batch.
    pub records: usize,
    /// Notifications published.
    pub published: usize,
    /// Sequence number of the first record that failed, if any.
    pub failed_at: Option<String>,
    /// Notifications that could not be published after every retry.
    pub unpublished: usize,
}

impl RelayFunction {
    /// From a relay and the announcer of its appends.
    pub fn new(announcer: Announcer) -> Self {
        Self { announcer }
    }

    /// Clients from the Lambda environment (credentials, region).
    pub async fn from_config(relay_config: &RelayConfig) -> Self {
        Self::from_sdk_config(&config::load().await, relay_config)
    }

    /// Clients from given AWS settings.
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig, relay_config: &RelayConfig) -> Self {
        let relay = Relay::new(DynamoStore::new(
            config::dynamodb_client(sdk),
            relay_config.table_name.clone(),
        ));
        let publisher = SnsPublisher::new(config::sns_client(sdk), relay_config.topic_arn.clone());
        Self::new(Announcer::new(relay, std::sync::Arc::new(publisher)))
    }

    fn relay(&self) -> &Relay {
        self.announcer.relay()
    }

    /// Handles one invocation of the event source mapping.
    pub async fn handle(
        &self,
        event: TimeWindowEvent,
    ) -> Result<TimeWindowEventResponse, LambdaError> {
        let newest_age = crate::emf::newest_record_age(&event);
        let (report, response) = self.handle_with_report(event).await?;
        crate::emf::relay_batch(
            report.records,
            newest_age,
            report.published,
            report.unpublished,
        );
        tracing::info!(
            records = report.records,
            published = report.published,
            unpublished = report.unpublished,
            failed_at = report.failed_at.as_deref(),
            "batch relayed"
        );
        Ok(response)
    }

    /// [`RelayFunction::handle`], also returning what happened.
    pub async fn handle_with_report(
        &self,
        event: TimeWindowEvent,
    ) -> Result<(BatchReport, TimeWindowEventResponse), LambdaError> {
        let shard = event
            .time_window_properties
            .shard_id
            .clone()
            .ok_or_else(|| {
                LambdaError::BadEvent(
                    "no shardId: the DynamoDB event source mapping must use a tumbling window"
                        .into(),
                )
            })?;
        let records = change_records(&shard, &event.dynamo_db_event.records)?;
        let mut report = BatchReport {
            records: records.len(),
            ..BatchReport::default()
        };
        let mut response = TimeWindowEventResponse::default();
        if records.is_empty() {
            return Ok((report, response));
        }
        let output = match self.relay().process(&records).await {
            Ok(out) => out,
            Err(e) => {
                tracing::warn!(shard = %shard, error = %e, "batch failed; relaying its records one by one");
                let (out, failed_at) = self.one_by_one(&records).await;
                report.failed_at = failed_at;
                out
            }
        };
        crate::emf::positions_assigned(&output.entries);
        let announced = self.announcer.announce(&output).await;
        report.published = announced.published;
        report.unpublished = announced.unpublished.len();
        if !announced.complete() {
            // Nothing was acknowledged: Lambda delivers the whole batch
            // again and its appends are announced again.
            report.failed_at = Some(records[0].sequence_number.clone());
        }
        if let Some(seq) = &report.failed_at {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = Some(seq.clone());
            response.batch_item_failures.push(failure);
        }
        Ok((report, response))
    }

    /// Replays records the event source gave up on (one shard's, read back
    /// from the stream with [`eventstore_dynamodb::read_failed_batch`]):
    /// [`Relay::replay`] puts the appends not yet in the feed into it, and
    /// every append of the records is announced (again, for those a
    /// failed delivery had already put into the feed). `failed_at` is the
    /// first record's sequence number when the replay or a publish failed:
    /// run it again (it adds nothing to the feed twice).
    pub async fn replay(&self, records: &[ChangeRecord]) -> BatchReport {
        let mut report = BatchReport {
            records: records.len(),
            ..BatchReport::default()
        };
        match self.announcer.replay(records).await {
            Ok((_, announced)) => {
                report.published = announced.published;
                report.unpublished = announced.unpublished.len();
                if !announced.complete() {
                    report.failed_at = records.first().map(|r| r.sequence_number.clone());
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "replay failed");
                report.failed_at = records.first().map(|r| r.sequence_number.clone());
            }
        }
        report
    }

    /// Relays records one at a time, stopping at the first failure.
    async fn one_by_one(&self, records: &[ChangeRecord]) -> (RelayOutput, Option<String>) {
        let mut output = RelayOutput::default();
        for r in records {
            match self.relay().process(std::slice::from_ref(r)).await {
                Ok(out) => output.extend(out),
                Err(e) => {
                    tracing::error!(
                        shard = %r.shard_id,
                        sequence_number = %r.sequence_number,
                        error = %e,
                        "record failed; Lambda retries from it"
                    );
                    return (output, Some(r.sequence_number.clone()));
                }
            }
        }
        (output, None)
    }
}

/// The batch's records as the relay takes them.
pub fn change_records(
    shard: &str,
    records: &[EventRecord],
) -> Result<Vec<ChangeRecord>, LambdaError> {
    records
        .iter()
        .map(|r| {
            let sequence_number = r.change.sequence_number.clone().ok_or_else(|| {
                LambdaError::BadEvent(format!("record {} has no SequenceNumber", r.event_id))
            })?;
            let (new, old) = (&r.change.new_image, &r.change.old_image);
            Ok(ChangeRecord {
                shard_id: shard.to_string(),
                sequence_number,
                new_image: (!new.is_empty()).then(|| new.clone().into()),
                old_image: (!old.is_empty()).then(|| old.clone().into()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use eventstore_dynamodb::items::{PK, SK, TIP_SK, attr::tip};

    fn event(shard: Option<&str>) -> TimeWindowEvent {
        let mut v = serde_json::json!({
            "Records": [{
                "eventID": "1", "eventName": "INSERT", "eventVersion": "1.1",
                "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
                "dynamodb": {
                    "Keys": {PK: {"S": "S#order#o-1"}, SK: {"S": TIP_SK}},
                    "NewImage": {PK: {"S": "S#order#o-1"}, SK: {"S": TIP_SK},
                                 tip::REVISION: {"N": "2"}, tip::BASE: {"N": "1"},
                                 tip::EVENTS: {"L": [{"B": "AAEC"}, {"B": "Aw=="}]}},
                    "SequenceNumber": "100", "SizeBytes": 30, "StreamViewType": "NEW_AND_OLD_IMAGES"
                }
            }, {
                "eventID": "2", "eventName": "REMOVE", "eventVersion": "1.1",
                "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
                "dynamodb": {"Keys": {PK: {"S": "x"}, SK: {"S": "y"}}, "SequenceNumber": "101", "SizeBytes": 5}
            }],
            "window": {"start": "2026-11-26T04:00:00Z", "end": "2026-11-26T04:15:00Z"},
            "state": {}, "isFinalInvokeForWindow": false, "isWindowTerminatedEarly": false
        });
        if let Some(s) = shard {
            v["shardId"] = s.into();
        }
        serde_json::from_value(v).expect("a windowed DynamoDB event")
    }

    fn function() -> RelayFunction {
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .build();
        RelayFunction::from_sdk_config(
            &sdk,
            &RelayConfig {
                table_name: "t".into(),
                topic_arn: "arn:aws:sns:us-east-1:000000000000:t".into(),
            },
        )
    }

    #[test]
    fn records_keep_order_sequence_numbers_and_binary_images() {
        let e = event(Some("shardId-1"));
        let records = change_records("shardId-1", &e.dynamo_db_event.records).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].sequence_number, "100");
        assert_eq!(records[0].shard_id, "shardId-1");
        let image = records[0].new_image.as_ref().unwrap();
        let blobs = image[tip::EVENTS].as_l().unwrap();
        assert_eq!(blobs[0].as_b().unwrap().as_ref(), &[0, 1, 2]);
        assert_eq!(blobs[1].as_b().unwrap().as_ref(), &[3]);
        assert_eq!(image[tip::REVISION].as_n().unwrap(), "2");
        assert!(records[1].new_image.is_none(), "a delete has no new image");
    }

    #[tokio::test]
    async fn an_event_without_a_shard_id_is_refused_before_any_call() {
        let err = function().handle(event(None)).await.unwrap_err();
        assert!(matches!(err, LambdaError::BadEvent(m) if m.contains("tumbling window")));
    }

    #[tokio::test]
    async fn an_empty_final_window_call_answers_with_state() {
        let mut e = event(Some("s"));
        e.dynamo_db_event.records.clear();
        let response = function().handle(e).await.unwrap();
        let v = serde_json::to_value(&response).unwrap();
        assert_eq!(
            v["state"],
            serde_json::json!({}),
            "Lambda counts a windowed answer without state as failed"
        );
        assert_eq!(v["batchItemFailures"], serde_json::json!([]));
    }
}
