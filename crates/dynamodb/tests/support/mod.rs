//! Shared test harness: an AWS emulator (moto) endpoint and fresh tables.
//!
//! The endpoint is `EVENT_STORE_TEST_DYNAMODB_ENDPOINT` or `AWS_ENDPOINT_URL`
//! when set; otherwise `scripts/moto/server.py` is started once per test
//! binary from the project's `.venv` (made by `scripts/moto/setup.sh`) on a
//! free loopback port, and exits with the test process
//! (`eventstore_testkit::moto`).
#![allow(dead_code)]

use std::time::Duration;

use eventstore_core::{StreamKey, StreamType};
use eventstore_dynamodb::cost::Recorder;
use eventstore_dynamodb::items;
use eventstore_dynamodb::{
    DynamoStore, PollerHandle, Relay, RelayProgress, create_table, spawn_poller,
};

pub use eventstore_testkit::moto::{endpoint, fidelity, sdk_config, table_name};

/// A client, optionally recording its requests.
pub async fn client(recorder: Option<&Recorder>) -> aws_sdk_dynamodb::Client {
    client_with(recorder, false).await
}

/// [`client`]; with `unlimited_retries`, the SDK's retry quota is
/// unlimited. The fault runs inject faults at rates far above real ones
/// (a few percent of every request), which would empty any retry quota
/// that protects a real service from retry storms: these runs check what
/// the store does with faults it retries, not the quota (an exhausted
/// quota is an error the caller sees, never a wrong answer).
pub async fn client_with(
    recorder: Option<&Recorder>,
    unlimited_retries: bool,
) -> aws_sdk_dynamodb::Client {
    use aws_sdk_dynamodb::config::retry::{RetryPartition, TokenBucket};
    let sdk = sdk_config().await;
    let mut conf = eventstore_aws::config::dynamodb_config(&sdk);
    if unlimited_retries {
        conf = conf.retry_partition(
            RetryPartition::custom("tests-with-faults")
                .token_bucket(TokenBucket::unlimited())
                .build(),
        );
    }
    if let Some(r) = recorder {
        conf = conf.interceptor(r.clone());
    }
    aws_sdk_dynamodb::Client::from_conf(conf.build())
}

/// The DynamoDB Streams client.
pub async fn streams_client() -> aws_sdk_dynamodbstreams::Client {
    eventstore_aws::config::streams_client(&sdk_config().await)
}

/// A store over a fresh table, with its relay polling in the background.
pub struct Harness {
    pub store: DynamoStore,
    pub relay: Relay,
    pub poller: Option<PollerHandle>,
}

/// A fresh table with a store and, when `poll`, a relay poller.
pub async fn harness(tag: &str, recorder: Option<&Recorder>, poll: bool) -> Harness {
    harness_with(tag, recorder, poll, false).await
}

/// The fault rules of the "faults on" runs, for the requests naming
/// `table` (so that other tests sharing the emulator are not disturbed):
/// every kind of fault the fidelity layer injects, on every operation the
/// store and the relay send, a few percent each.
pub fn standard_faults(table: &str, seed: u64) -> String {
    let rule = |op: &str, fault: &str, p: f64| {
        format!(r#"{{"op":"{op}","fault":"{fault}","probability":{p},"match":"\"{table}\""}}"#)
    };
    let rules = [
        rule("TransactWriteItems", "conflict", 0.05),
        rule("TransactWriteItems", "lost", 0.05),
        rule("TransactWriteItems", "throttle", 0.03),
        rule("TransactWriteItems", "internal", 0.02),
        rule("TransactWriteItems", "in-progress", 0.02),
        rule("TransactGetItems", "conflict", 0.05),
        rule("TransactGetItems", "throttle", 0.03),
        rule("TransactGetItems", "internal", 0.02),
        rule("UpdateItem", "conflict", 0.03),
        rule("UpdateItem", "lost", 0.05),
        rule("UpdateItem", "throughput", 0.03),
        rule("UpdateItem", "internal", 0.02),
        rule("PutItem", "lost", 0.05),
        rule("PutItem", "throttle", 0.03),
        rule("BatchWriteItem", "internal", 0.03),
        rule("GetItem", "throttle", 0.03),
        rule("Query", "throughput", 0.02),
        rule("Query", "internal", 0.02),
    ];
    format!(r#"{{"seed":{seed},"rules":[{}]}}"#, rules.join(","))
}

/// [`harness`], with the fidelity layer's [`standard_faults`] switched on
/// for its table when `faults`.
pub async fn harness_with(
    tag: &str,
    recorder: Option<&Recorder>,
    poll: bool,
    faults: bool,
) -> Harness {
    let client = client_with(recorder, faults).await;
    let table = table_name(tag);
    create_table(&client, &table).await.expect("create table");
    if faults {
        let seed = fastrand::u64(..);
        fidelity("PUT", &table, &standard_faults(&table, seed));
        eprintln!("faults on for table {table}, seed {seed}");
    }
    harness_on(client, &table, poll)
}

/// A store and relay over an existing `table`, with a relay poller when
/// `poll`.
pub fn harness_on(client: aws_sdk_dynamodb::Client, table: &str, poll: bool) -> Harness {
    let table = table.to_string();
    let progress = RelayProgress::new();
    let store = DynamoStore::new(client, table).with_progress(progress.clone());
    let relay = Relay::new(store.clone()).with_progress(progress);
    let poller = poll.then(|| {
        spawn_poller(
            futures_streams_client_blocking(),
            relay.clone(),
            Duration::from_millis(50),
        )
    });
    Harness {
        store,
        relay,
        poller,
    }
}

fn futures_streams_client_blocking() -> aws_sdk_dynamodbstreams::Client {
    let conf = aws_sdk_dynamodbstreams::config::Builder::new()
        .behavior_version(aws_sdk_dynamodbstreams::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodbstreams::config::Region::new("us-east-1"))
        .endpoint_url(endpoint())
        .credentials_provider(aws_sdk_dynamodbstreams::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .build();
    aws_sdk_dynamodbstreams::Client::from_conf(conf)
}

/// Every record currently in the table's stream, in batches of at most
/// `batch` records per shard (as a Lambda event source mapping hands them).
pub async fn stream_batches(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    batch: i32,
) -> Vec<Vec<eventstore_dynamodb::ChangeRecord>> {
    let streams = futures_streams_client_blocking();
    let arn = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .table()
        .unwrap()
        .latest_stream_arn()
        .unwrap()
        .to_string();
    let desc = streams
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
        .unwrap();
    let mut out = Vec::new();
    for shard in desc.stream_description().unwrap().shards() {
        let id = shard.shard_id().unwrap();
        let mut it = streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(id)
            .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator()
            .map(str::to_string);
        while let Some(i) = it {
            let page = streams
                .get_records()
                .shard_iterator(i)
                .limit(batch)
                .send()
                .await
                .unwrap();
            if page.records().is_empty() {
                break;
            }
            out.push(
                page.records()
                    .iter()
                    .filter_map(|r| eventstore_dynamodb::ChangeRecord::from_streams_record(id, r))
                    .collect(),
            );
            it = page.next_shard_iterator().map(str::to_string);
        }
    }
    out
}

/// Serves `table`'s DynamoDB Stream as `n` open shards (the fidelity
/// layer's `stream_shards`, rule set `{table}-shards`): each record goes to
/// a shard by its partition key. Set before any reader lists the shards.
pub fn virtual_shards(table: &str, n: usize) {
    fidelity(
        "PUT",
        &format!("{table}-shards"),
        &format!(r#"{{"stream_shards":{n},"shards_match":"{table}"}}"#),
    );
}

/// Splits one open shard of `table`'s stream now (the one with the most
/// records, or `shard`): it is closed at the stream's last record and two
/// children take its keys' later records. The fidelity layer's answer:
/// `{"closed": ID, "children": [ID, ID], "ending": SEQ}`.
pub fn split_shard(table: &str, shard: Option<&str>) -> serde_json::Value {
    let body = match shard {
        Some(id) => format!(r#"{{"shard":"{id}"}}"#),
        None => "{}".into(),
    };
    let answer = fidelity("POST", &format!("{table}-shards/split"), &body);
    serde_json::from_str(&answer).expect("the fidelity layer's split answer")
}

/// The shards of `table`'s stream as the fidelity layer serves them:
/// `[{"id", "parent", "start", "end", "records"}, ...]`.
pub fn shard_layout(table: &str) -> Vec<serde_json::Value> {
    let answer = fidelity("GET", &format!("{table}-shards/shards"), "");
    let v: serde_json::Value = serde_json::from_str(&answer).expect("shards");
    v["shards"].as_array().cloned().unwrap_or_default()
}

/// Every record of `table`'s stream so far, by shard (over every page of
/// `DescribeStream`), each shard read to its current end: `(shard, parent,
/// records)`.
pub async fn records_by_shard(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Vec<(
    String,
    Option<String>,
    Vec<eventstore_dynamodb::ChangeRecord>,
)> {
    let streams = futures_streams_client_blocking();
    let arn = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap()
        .table()
        .unwrap()
        .latest_stream_arn()
        .unwrap()
        .to_string();
    let mut shards = Vec::new();
    let mut start = None;
    loop {
        let desc = streams
            .describe_stream()
            .stream_arn(&arn)
            .set_exclusive_start_shard_id(start.take())
            .send()
            .await
            .unwrap();
        let d = desc.stream_description().unwrap();
        for s in d.shards() {
            shards.push((
                s.shard_id().unwrap().to_string(),
                s.parent_shard_id().map(str::to_string),
            ));
        }
        start = d.last_evaluated_shard_id().map(str::to_string);
        if start.is_none() {
            break;
        }
    }
    let mut out = Vec::new();
    for (id, parent) in shards {
        let mut it = streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .shard_id(&id)
            .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator()
            .map(str::to_string);
        let mut records = Vec::new();
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
            records.extend(
                page.records()
                    .iter()
                    .filter_map(|r| eventstore_dynamodb::ChangeRecord::from_streams_record(&id, r)),
            );
            it = page.next_shard_iterator().map(str::to_string);
        }
        out.push((id, parent, records));
    }
    out
}

/// Every item of the table (a consistent scan).
pub async fn every_item(store: &DynamoStore) -> Vec<items::Item> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = store
            .client()
            .scan()
            .table_name(store.table())
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        out.extend(page.items().iter().cloned());
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return out;
        }
    }
}

/// A reference to an append in the feed: in a page (`in_index` false) or
/// in its type's index (true).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub stream: StreamKey,
    pub first: u64,
    pub count: u64,
    pub position: u64,
    pub in_index: bool,
}

/// Every reference the feed's pages and type index hold, and the number
/// of positions the pages hold as gaps.
pub async fn references(store: &DynamoStore) -> (Vec<Reference>, u64) {
    let mut refs = Vec::new();
    let mut gaps = 0;
    for item in every_item(store).await {
        let item = &item;
        let pk = items::get_str(item, items::PK).unwrap();
        if pk == items::FEED_PK {
            for slot in items::page_slots(item).unwrap() {
                match slot {
                    items::PageSlot::Entry(e) => refs.push(Reference {
                        stream: e.stream,
                        first: e.first_revision,
                        count: e.count,
                        position: e.position,
                        in_index: false,
                    }),
                    items::PageSlot::Gap(k) => gaps += k,
                }
            }
        } else if let Some(t) = pk.strip_prefix(items::TYPE_FEED_PREFIX) {
            let t = StreamType::parse(t).unwrap();
            for e in items::parse_type_feed_item(&t, item).unwrap() {
                refs.push(Reference {
                    stream: e.stream,
                    first: e.first_revision,
                    count: e.count,
                    position: e.position,
                    in_index: true,
                });
            }
        }
    }
    refs.sort_by_key(|r| (r.in_index, r.position));
    (refs, gaps)
}

/// The references of `stream` that point below revision `below`, the
/// `$stream-deleted` entry (a deleted stream's at `below`) excepted.
pub fn references_below(refs: &[Reference], stream: &StreamKey, below: u64) -> Vec<Reference> {
    refs.iter()
        .filter(|r| &r.stream == stream && r.first < below)
        .cloned()
        .collect()
}
