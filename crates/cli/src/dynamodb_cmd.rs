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
use eventstore_core::EventStore;
use eventstore_dynamodb::{DynamoStore, PollerHandle, Relay, RelayProgress, spawn_poller_with};
use eventstore_lambda::notify::SnsPublisher;

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
            let sdk = sdk_config().await?;
            let client = aws_sdk_dynamodb::Client::from_conf(
                eventstore_dynamodb::dynamodb_config(&sdk).build(),
            );
            eventstore_dynamodb::create_table(&client, &args.name)
                .await
                .with_context(|| format!("creating table {}", args.name))?;
            println!("created table {}", args.name);
            Ok(())
        }
    }
}

/// AWS settings from the environment; a missing region is an error here
/// rather than on the first request.
async fn sdk_config() -> anyhow::Result<aws_config::SdkConfig> {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    if sdk.region().is_none() {
        anyhow::bail!("no AWS region: set AWS_REGION (or a profile with a region)");
    }
    Ok(sdk)
}

/// The store of `serve --backend dynamodb` and, with `relay`, the running
/// relay (it stops when the handle is dropped).
pub struct Opened {
    /// The store.
    pub store: Arc<dyn EventStore>,
    /// The in-process relay, if any.
    pub relay: Option<PollerHandle>,
}

/// Checks that the table exists (and has a stream, when the relay runs
/// here), then opens the store and starts the relay if asked.
pub async fn open(settings: &DynamoSettings) -> anyhow::Result<Opened> {
    let sdk = sdk_config().await?;
    let client =
        aws_sdk_dynamodb::Client::from_conf(eventstore_dynamodb::dynamodb_config(&sdk).build());
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
            relay: None,
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
    let relay = Relay::new(store.clone()).with_progress(progress);
    let streams = aws_sdk_dynamodbstreams::Client::from_conf(
        aws_sdk_dynamodbstreams::config::Builder::from(&sdk)
            .retry_config(eventstore_dynamodb::sdk_config_retry())
            .build(),
    );
    let publisher = settings.sns_topic_arn.as_ref().map(|arn| {
        let sns = aws_sdk_sns::Client::from_conf(
            aws_sdk_sns::config::Builder::from(&sdk)
                .retry_config(eventstore_dynamodb::sdk_config_retry())
                .build(),
        );
        Arc::new(SnsPublisher::new(sns, arn.clone()))
    });
    tracing::info!(
        table = %table,
        sns = publisher.is_some(),
        "relay running in this process"
    );
    let poller = spawn_poller_with(streams, relay, POLL_INTERVAL, move |output| {
        let publisher = publisher.clone();
        async move {
            let Some(publisher) = publisher else { return };
            let lost = publisher.publish_all(&output.notifications).await;
            if !lost.is_empty() {
                tracing::error!(
                    lost = lost.len(),
                    of = output.notifications.len(),
                    "notifications not published to SNS after every retry"
                );
            }
        }
    });
    Ok(Opened {
        store: Arc::new(store),
        relay: Some(poller),
    })
}
