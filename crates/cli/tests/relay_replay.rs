//! `event-store relay replay-failures` end to end, against moto behind
//! the fidelity layer (two stream shards; SQS and SNS emulated): a relay
//! that skipped batches the way Lambda does after every retry (the
//! records' description in the failure queue, the shard's later records
//! relayed), one of them after its failed delivery had already written
//! its feed page; the command puts every skipped append into the feed
//! once, announces them, deletes the messages it handled and leaves (and
//! reports) the one it cannot read. Run again, it adds nothing.

use std::collections::{BTreeMap, HashSet};
use std::process::Stdio;

use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use eventstore_core::{
    AppendRequest, EventStore, EventType, Expectation, FeedFilter, JsonValue, NewEvent, Position,
    StreamId, StreamKey, StreamType,
};
use eventstore_dynamodb::items::{self, attr};
use eventstore_dynamodb::{ChangeRecord, DynamoStore, Relay, create_table};
use eventstore_testkit::moto;
use eventstore_testkit::sns::{Delivery, Messaging};
use serde_json::json;

fn replay_command(args: &[&str]) -> std::process::Output {
    let env = moto::aws_env();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend([("RUST_LOG", "warn"), ("RUST_BACKTRACE", "0")]);
    eventstore_testkit::process::command(env!("CARGO_BIN_EXE_event-store"), args, &env)
        .stdin(Stdio::null())
        .output()
        .expect("run event-store")
}

/// Every record of a shard so far.
async fn shard_records(
    streams: &aws_sdk_dynamodbstreams::Client,
    arn: &str,
    shard: &str,
) -> Vec<ChangeRecord> {
    let mut it = streams
        .get_shard_iterator()
        .stream_arn(arn)
        .shard_id(shard)
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator()
        .map(str::to_string);
    let mut out = Vec::new();
    while let Some(i) = it {
        let page = streams
            .get_records()
            .shard_iterator(i)
            .send()
            .await
            .unwrap();
        if page.records().is_empty() {
            break;
        }
        out.extend(
            page.records()
                .iter()
                .filter_map(|r| ChangeRecord::from_streams_record(shard, r)),
        );
        it = page.next_shard_iterator().map(str::to_string);
    }
    out
}

/// Lambda's on-failure record of a batch.
fn failure_message(arn: &str, records: &[ChangeRecord]) -> String {
    json!({
        "requestContext": {
            "requestId": "00000000-0000-0000-0000-000000000000",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:relay",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 3
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": "2026-11-29T23:00:00.000Z",
        "DDBStreamBatchInfo": {
            "shardId": records[0].shard_id,
            "startSequenceNumber": records[0].sequence_number,
            "endSequenceNumber": records.last().unwrap().sequence_number,
            "approximateArrivalOfFirstRecord": "2026-11-29T22:59:58Z",
            "approximateArrivalOfLastRecord": "2026-11-29T22:59:59Z",
            "batchSize": records.len(),
            "streamArn": arn
        }
    })
    .to_string()
}

async fn feed(store: &DynamoStore) -> Vec<eventstore_core::RecordedEvent> {
    let mut seen = Vec::new();
    let mut after = Position::ZERO;
    loop {
        let page = store.read_feed(&FeedFilter::All, after, 100).await.unwrap();
        after = page.last_position;
        seen.extend(page.events);
        if !page.has_more {
            return seen;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_failures_puts_dead_lettered_appends_into_the_feed_once_and_announces_them() {
    let sdk = moto::sdk_config().await;
    let table = format!("cli-replay-{}", uuid::Uuid::now_v7().simple());
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    create_table(&dynamo, &table).await.unwrap();
    moto::fidelity(
        "PUT",
        &format!("{table}-shards"),
        &format!(r#"{{"stream_shards":2,"shards_match":"{table}"}}"#),
    );
    let store = DynamoStore::new(dynamo.clone(), table.clone());
    let mut appends = HashSet::new();
    let mut events = 0;
    for a in 0..4 {
        for s in 0..6 {
            let key = StreamKey::new(
                StreamType::parse("order").unwrap(),
                StreamId::parse(format!("o-{s}")).unwrap(),
            );
            let n = 1 + (a + s) % 2;
            let batch = (0..n)
                .map(|i| {
                    NewEvent::new(
                        EventType::parse("Placed").unwrap(),
                        JsonValue::from_text(format!(r#"{{"a":{a},"i":{i}}}"#)).unwrap(),
                    )
                })
                .collect();
            let out = store
                .append(AppendRequest::new(key, Expectation::Any, batch).unwrap())
                .await
                .unwrap();
            appends.insert((format!("o-{s}"), out.first_revision.get()));
            events += n;
        }
    }

    let messaging = Messaging::new(&sdk);
    let sqs = &messaging.sqs;
    let topic = messaging.topic(&table).await;
    let announced = messaging
        .subscribed_queue(&topic, &format!("{table}-announced"), Delivery::RAW)
        .await;
    let failures = messaging.queue(&format!("{table}-failures")).await.url;

    // The relay, shard by shard, as Lambda ran it: the first records
    // relayed, the next few given up on (dead-lettered), the rest relayed.
    // On the first shard the given-up batch had its feed page written
    // before the delivery failed (so the replay must not add it again).
    let arn = dynamo
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap()
        .table()
        .unwrap()
        .latest_stream_arn()
        .unwrap()
        .to_string();
    let streams = aws_sdk_dynamodbstreams::Client::new(&sdk);
    let shards: Vec<String> = streams
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .unwrap()
        .stream_description()
        .unwrap()
        .shards()
        .iter()
        .map(|s| s.shard_id().unwrap().to_string())
        .collect();
    assert_eq!(shards.len(), 2);
    let relay = Relay::new(store.clone());
    let mut messages = Vec::new();
    let mut skipped_appends = HashSet::new();
    for (i, shard) in shards.iter().enumerate() {
        let records = shard_records(&streams, &arn, shard).await;
        assert!(records.len() >= 6, "{} records in {shard}", records.len());
        let (head, rest) = records.split_at(2);
        let (skipped, tail) = rest.split_at(3);
        let out = relay.process(head).await.unwrap();
        relay.acknowledge(&out).await.unwrap();
        if i == 0 {
            relay.process(skipped).await.unwrap();
        }
        let out = relay.process(tail).await.unwrap();
        relay.acknowledge(&out).await.unwrap();
        messages.push(failure_message(&arn, skipped));
        for r in skipped {
            let img = r.new_image.as_ref().unwrap();
            let get = |k: &str| img.get(k).cloned();
            // An append's record: its append item's first write (marked by
            // its count), or a tip's write in tip format.
            let sk = get(items::SK).and_then(|v| v.as_s().ok().cloned());
            let last = if sk.as_deref() == Some(items::TIP_SK) {
                attr::tip::REVISION
            } else if img.contains_key(attr::append::COUNT)
                && !img.contains_key(attr::append::DELETED)
            {
                attr::chunk::LAST
            } else {
                continue;
            };
            let pk = get(items::PK).unwrap().as_s().unwrap().clone();
            let stream = items::parse_stream_pk(&pk).unwrap().unwrap();
            let num = |k: &str| get(k).unwrap().as_n().unwrap().parse::<u64>().unwrap();
            skipped_appends.insert((
                stream.stream_id.to_string(),
                num(last) - num(attr::append::COUNT) + 1,
            ));
        }
    }
    for body in messages
        .iter()
        .map(String::as_str)
        .chain(["not a failure record"])
    {
        sqs.send_message()
            .queue_url(&failures)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let before = feed(&store).await;
    assert!(before.len() < events, "the feed misses the skipped appends");

    let out = replay_command(&[
        "relay",
        "replay-failures",
        "--table",
        &table,
        "--queue-url",
        &failures,
        "--sns-topic-arn",
        &topic,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(out.status.code(), Some(1), "a message is left in the queue");
    assert_eq!(stdout.matches("replayed shard").count(), 2, "{stdout}");
    assert!(
        stdout.contains("2 batch(es) replayed, 1 left in the queue"),
        "{stdout}"
    );
    assert!(
        stderr.contains("not a failed DynamoDB stream batch"),
        "{stderr}"
    );
    assert_eq!(
        messaging.messages_in(&failures).await,
        1,
        "only the unreadable message is left"
    );

    let after = feed(&store).await;
    let ids: HashSet<_> = after.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), after.len(), "no event twice in the feed");
    assert_eq!(after.len(), events, "every event in the feed");
    assert_eq!(
        &after[..before.len()],
        &before[..],
        "the feed's start unchanged"
    );
    // The appends of the replayed batches announced (the relay above
    // published nothing).
    let got: HashSet<(String, u64)> = messaging
        .drain(&announced.url, 0)
        .await
        .into_iter()
        .map(|m| {
            (
                m.body["StreamId"].as_str().unwrap().to_string(),
                m.body["FirstRevision"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    let missing: HashSet<(String, u64)> = appends
        .iter()
        .filter(|(id, first)| {
            !before
                .iter()
                .any(|e| e.stream_id.as_str() == id && e.revision.get() == *first)
        })
        .cloned()
        .collect();
    assert!(!missing.is_empty());
    assert!(missing.is_subset(&skipped_appends));
    assert_eq!(
        got, skipped_appends,
        "every append of the replayed batches announced, the ones already in the feed too"
    );
    // The listing shows each stream once, at its current revision.
    let listed = store
        .list_streams(&StreamType::parse("order").unwrap(), None, None, 100)
        .await
        .unwrap();
    let revisions: BTreeMap<String, u64> = listed
        .streams
        .iter()
        .map(|s| (s.stream_id.as_str().to_string(), s.revision.get()))
        .collect();
    assert_eq!(listed.streams.len(), 6, "each stream listed once");
    for (id, rev) in &revisions {
        let max = appends.iter().filter(|(s, _)| s == id).count();
        assert!(*rev as usize >= max, "{id} listed at revision {rev}");
    }

    // The same messages again, alone in a queue: handled, nothing added.
    let again = messaging.queue(&format!("{table}-again")).await.url;
    for body in &messages {
        sqs.send_message()
            .queue_url(&again)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let out = replay_command(&[
        "relay",
        "replay-failures",
        "--table",
        &table,
        "--queue-url",
        &again,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert_eq!(
        stdout.matches("0 append(s) put into the feed").count(),
        2,
        "{stdout}"
    );
    assert_eq!(messaging.messages_in(&again).await, 0);
    assert_eq!(feed(&store).await, after, "a replay run again adds nothing");
}
