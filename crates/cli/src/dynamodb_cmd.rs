//! The DynamoDB backend from the command line: `event-store dynamodb ...`
//! (table administration) and the opening of the store for
//! `serve --backend dynamodb`, with the feed relay in-process on request.
//!
//! AWS settings come from the usual AWS sources (`AWS_REGION`, credentials,
//! `AWS_ENDPOINT_URL` for an emulator such as moto), read once.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use eventstore_aws::{Announcer, SnsPublisher, config};
use eventstore_core::EventStore;
use eventstore_dynamodb::cost::{RecordedRequest, Recorder};
use eventstore_dynamodb::{DynamoStore, PollerHandle, Relay, RelayProgress, spawn_poller};

use crate::config::{DynamoSettings, check_table_name};

/// How long the in-process relay waits before polling an idle stream
/// again. DynamoDB Streams allows about 5 `GetRecords` calls per second
/// per shard.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// `event-store dynamodb ...`.
#[derive(Debug, clap::Subcommand)]
pub enum DynamoCommand {
    /// Create the event store's table (the schema of
    /// `crates/dynamodb/table-schema.json`, the one the CDK stack creates)
    /// and wait until it is active.
    CreateTable(CreateTableArgs),
}

/// Options of `event-store dynamodb create-table`.
#[derive(Debug, Clone, clap::Args)]
pub struct CreateTableArgs {
    /// Name of the table to create.
    pub name: String,
}

/// Runs a `dynamodb` subcommand.
pub async fn run(command: DynamoCommand) -> anyhow::Result<()> {
    match command {
        DynamoCommand::CreateTable(args) => {
            check_table_name(&args.name)?;
            let sdk = config::load_with_region().await?;
            let client = config::dynamodb_client(&sdk);
            eventstore_dynamodb::create_table(&client, &args.name)
                .await
                .with_context(|| format!("creating table {}", args.name))?;
            println!("created table {}", args.name);
            Ok(())
        }
    }
}

/// How long a stopping server lets its relay index what it committed.
const RELAY_DRAIN: Duration = Duration::from_secs(10);

/// The store of `serve --backend dynamodb` and what runs beside it.
pub struct Opened {
    /// The store.
    pub store: Arc<dyn EventStore>,
    /// The AWS settings it was opened with (for the readiness probe).
    pub sdk: aws_config::SdkConfig,
    /// The in-process relay and the cost recorders, finished at shutdown.
    pub running: Running,
}

/// What runs beside the DynamoDB store: the in-process relay (stopped when
/// dropped) and, with `--cost-report`, the request recorders.
pub struct Running {
    relay: Option<(PollerHandle, Arc<RelayProgress>)>,
    costs: Option<(Recorder, Recorder)>,
}

impl Running {
    /// Lets the relay index (and announce) every append this process
    /// committed, for at most [`RELAY_DRAIN`], then stops it (what is left
    /// is relayed by the next relay that reads the table's stream); then
    /// prints the cost report, if asked for.
    pub async fn finish(self) {
        if let Some((poller, progress)) = self.relay {
            progress.wait_indexed(None, RELAY_DRAIN).await;
            poller.stop();
            tracing::info!("relay stopped");
        }
        if let Some((api, relay)) = self.costs {
            println!("{}", cost_report("api", &api.requests()));
            println!("{}", cost_report("relay", &relay.requests()));
        }
    }
}

/// One line of JSON: the requests of one client by operation, and the
/// capacity they consumed by DynamoDB's published rules, computed from the
/// item sizes (an emulator reports no realistic consumed capacity).
fn cost_report(name: &str, requests: &[RecordedRequest]) -> serde_json::Value {
    let mut by_operation = std::collections::BTreeMap::<&str, u64>::new();
    for r in requests {
        *by_operation.entry(r.operation).or_default() += 1;
    }
    serde_json::json!({
        "costReport": name,
        "requests": requests.len(),
        "failedRequests": requests.iter().filter(|r| !r.succeeded).count(),
        "byOperation": by_operation,
        "wcu": requests.iter().map(|r| r.wcu).sum::<u64>(),
        "rcu": requests.iter().map(|r| r.rcu).sum::<u64>(),
    })
}

/// A DynamoDB client, recording its requests into `recorder` if given.
fn dynamodb_client(
    sdk: &aws_config::SdkConfig,
    recorder: Option<&Recorder>,
) -> aws_sdk_dynamodb::Client {
    let mut conf = config::dynamodb_config(sdk);
    if let Some(r) = recorder {
        conf = conf.interceptor(r.clone());
    }
    aws_sdk_dynamodb::Client::from_conf(conf.build())
}

/// Checks that the table exists (and has a stream, when the relay runs
/// here), then opens the store and starts the relay if asked.
pub async fn open(settings: &DynamoSettings) -> anyhow::Result<Opened> {
    let sdk = config::load_with_region().await?;
    let costs = settings
        .cost_report
        .then(|| (Recorder::new(), Recorder::new()));
    let client = dynamodb_client(&sdk, costs.as_ref().map(|c| &c.0));
    let table = &settings.table;
    let described = client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .map_err(|e| {
            let missing = e
                .as_service_error()
                .is_some_and(|se| se.is_resource_not_found_exception());
            let context = DisplayErrorContext(e);
            if missing {
                anyhow::anyhow!(
                    "table {table} not found: create it with `event-store dynamodb create-table {table}`"
                )
            } else {
                anyhow::anyhow!("reading table {table}: {context}")
            }
        })?;
    let store = DynamoStore::new(client, table.clone());
    if !settings.relay {
        tracing::info!(
            table = %table,
            "dynamodb backend without in-process relay: the feed, the listings and the \
             notifications are filled by the relay function"
        );
        return Ok(Opened {
            store: Arc::new(store),
            sdk,
            running: Running { relay: None, costs },
        });
    }
    if described
        .table()
        .and_then(|t| t.latest_stream_arn())
        .is_none()
    {
        anyhow::bail!("table {table} has no DynamoDB Stream: the relay cannot run");
    }
    let progress = RelayProgress::new();
    let store = store.with_progress(progress.clone());
    // The relay writes through a client of its own, so that its requests
    // are counted apart from the API's.
    let relay_store = DynamoStore::new(
        dynamodb_client(&sdk, costs.as_ref().map(|c| &c.1)),
        table.clone(),
    );
    let relay = Relay::new(relay_store).with_progress(progress.clone());
    let streams = config::streams_client(&sdk);
    tracing::info!(
        table = %table,
        sns = settings.sns_topic_arn.is_some(),
        "relay running in this process"
    );
    // With a topic, each batch is announced, then acknowledged; a batch
    // not wholly published is handed over again (its announcements rebuilt
    // from the feed), so every append is announced at least once.
    let poller = match &settings.sns_topic_arn {
        Some(arn) => {
            let publisher = SnsPublisher::new(config::sns_client(&sdk), arn.clone());
            Announcer::new(relay, Arc::new(publisher)).spawn_poller(streams, POLL_INTERVAL)
        }
        None => spawn_poller(streams, relay, POLL_INTERVAL),
    };
    Ok(Opened {
        store: Arc::new(store),
        sdk,
        running: Running {
            relay: Some((poller, progress)),
            costs,
        },
    })
}
