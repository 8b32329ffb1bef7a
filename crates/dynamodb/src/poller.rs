//! The in-process poller: reads the table's DynamoDB Stream (every shard,
//! parents before children) and hands each batch to a [`Relay`]; for
//! local serving and tests (on AWS the relay function gets its batches
//! from Lambda's event source mapping).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_dynamodb::error::DisplayErrorContext;

use crate::error::DynamoError;
use crate::relay::{ChangeRecord, Relay, RelayOutput};

/// A running poller; stops when dropped or on [`PollerHandle::stop`].
pub struct PollerHandle {
    task: tokio::task::JoinHandle<()>,
}

impl PollerHandle {
    /// Stops the poller.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for PollerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls the table's DynamoDB Stream (every shard, from its trim horizon)
/// and hands each batch to the relay; for local use and tests. Batches
/// that fail are retried from the same iterator. Nothing is published:
/// each batch's announcements are acknowledged as soon as it is relayed.
pub fn spawn_poller(
    streams: aws_sdk_dynamodbstreams::Client,
    relay: Relay,
    interval: Duration,
) -> PollerHandle {
    let acknowledging = relay.clone();
    spawn_poller_with(streams, relay, interval, move |output| {
        let relay = acknowledging.clone();
        async move {
            match relay.acknowledge(&output).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "batch relayed but not acknowledged");
                    false
                }
            }
        }
    })
}

/// [`spawn_poller`], handing each batch's [`RelayOutput`] that has
/// announcements to `on_output`, awaited before the next batch is read.
/// `on_output` publishes them and then acknowledges the output
/// ([`Relay::acknowledge`]; `eventstore-aws` does both), and answers
/// whether it did: then the poller moves on; otherwise the same batch is
/// read and handed over again (its announcements re-derived from the feed)
/// after a pause, until it is handled. Appends are thus announced at least
/// once, also across a crash of the process between the feed write and the
/// publishing.
pub fn spawn_poller_with<F, Fut>(
    streams: aws_sdk_dynamodbstreams::Client,
    relay: Relay,
    interval: Duration,
    on_output: F,
) -> PollerHandle
where
    F: Fn(RelayOutput) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    // No failure queue here: a record that cannot be read is logged and
    // skipped, or the feed of every stream would stop at it.
    let relay = relay.skipping_unreadable();
    let task = tokio::spawn(async move {
        loop {
            if let Err(e) = poll_forever(&streams, &relay, interval, &on_output).await {
                tracing::warn!(error = %e, "relay poller failed; restarting");
                tokio::time::sleep(interval).await;
            }
        }
    });
    PollerHandle { task }
}

async fn poll_forever<F, Fut>(
    streams: &aws_sdk_dynamodbstreams::Client,
    relay: &Relay,
    interval: Duration,
    on_output: &F,
) -> Result<(), DynamoError>
where
    F: Fn(RelayOutput) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let table = relay
        .store
        .client()
        .describe_table()
        .table_name(relay.store.table())
        .send()
        .await
        .map_err(|e| DynamoError::request("DescribeTable", DisplayErrorContext(e)))?;
    let arn = table
        .table()
        .and_then(|t| t.latest_stream_arn())
        .ok_or_else(|| DynamoError::Schema("the table has no stream".into()))?
        .to_string();
    // Per shard: its parent, and its iterator (`None` once a closed shard
    // has been read to its end).
    let mut parents: HashMap<String, Option<String>> = HashMap::new();
    let mut iterators: HashMap<String, Option<String>> = HashMap::new();
    loop {
        // Every shard, over DescribeStream's pages (100 shards each).
        let mut start: Option<String> = None;
        loop {
            let desc = streams
                .describe_stream()
                .stream_arn(&arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .map_err(|e| DynamoError::request("DescribeStream", DisplayErrorContext(e)))?;
            let Some(d) = desc.stream_description() else {
                break;
            };
            for shard in d.shards() {
                if let Some(id) = shard.shard_id() {
                    parents
                        .entry(id.to_string())
                        .or_insert_with(|| shard.parent_shard_id().map(str::to_string));
                }
            }
            start = d.last_evaluated_shard_id().map(str::to_string);
            if start.is_none() {
                break;
            }
        }
        let finished: HashSet<&str> = iterators
            .iter()
            .filter(|(_, it)| it.is_none())
            .map(|(id, _)| id.as_str())
            .collect();
        let ready: Vec<String> = readable_shards(&parents, &finished)
            .into_iter()
            .filter(|id| !iterators.contains_key(*id))
            .map(str::to_string)
            .collect();
        for id in ready {
            let it = streams
                .get_shard_iterator()
                .stream_arn(&arn)
                .shard_id(&id)
                .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
                .send()
                .await
                .map_err(|e| DynamoError::request("GetShardIterator", DisplayErrorContext(e)))?;
            iterators.insert(id, it.shard_iterator().map(str::to_string));
        }
        let mut any = false;
        let mut stalled = false;
        for (shard, iterator) in iterators.iter_mut() {
            let Some(it) = iterator.clone() else { continue };
            let out = streams
                .get_records()
                .shard_iterator(it)
                .limit(1000)
                .send()
                .await
                .map_err(|e| DynamoError::request("GetRecords", DisplayErrorContext(e)))?;
            let records: Vec<ChangeRecord> = out
                .records()
                .iter()
                .filter_map(|r| ChangeRecord::from_streams_record(shard, r))
                .collect();
            if !records.is_empty() {
                any = true;
                let output = relay.process(&records).await?;
                if !output.announcements.is_empty() && !on_output(output).await {
                    // Not announced: read the batch again (from the same
                    // iterator) after a pause.
                    tracing::warn!(shard = %shard, "batch not announced; handing it over again");
                    stalled = true;
                    continue;
                }
            }
            *iterator = out.next_shard_iterator().map(str::to_string);
        }
        if !any || stalled {
            tokio::time::sleep(interval).await;
        }
    }
}

/// The shards whose records may be read now, parents first: a shard whose
/// parent is known and not yet read to its end waits, so that a stream's
/// records (which move to the child shards when a shard splits) are relayed
/// in order. A parent no longer listed (trimmed after 24 hours) does not
/// hold its children back.
fn readable_shards<'a>(
    parents: &'a HashMap<String, Option<String>>,
    finished: &HashSet<&str>,
) -> Vec<&'a str> {
    let mut out: Vec<&str> = parents
        .iter()
        .filter(|(_, parent)| {
            parent
                .as_deref()
                .is_none_or(|p| !parents.contains_key(p) || finished.contains(p))
        })
        .map(|(id, _)| id.as_str())
        .collect();
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_wait_until_their_parent_is_read_to_its_end() {
        let parents: HashMap<String, Option<String>> = [
            ("root", None),
            ("left", Some("root")),
            ("right", Some("root")),
            ("grandchild", Some("left")),
            ("orphan", Some("trimmed-long-ago")),
        ]
        .into_iter()
        .map(|(id, p)| (id.to_string(), p.map(str::to_string)))
        .collect();
        let none = HashSet::new();
        assert_eq!(readable_shards(&parents, &none), ["orphan", "root"]);
        let root_done: HashSet<&str> = ["root"].into();
        assert_eq!(
            readable_shards(&parents, &root_done),
            ["left", "orphan", "right", "root"]
        );
        let left_done: HashSet<&str> = ["root", "left"].into();
        assert!(readable_shards(&parents, &left_done).contains(&"grandchild"));
    }
}
