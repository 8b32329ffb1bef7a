//! `event-store relay ...`: operations on the feed relay of a deployed
//! DynamoDB backend.
//!
//! `replay-failures` empties the relay function's failure queue: each
//! message there is Lambda's record of a stream batch it gave up on after
//! every retry (`DDBStreamBatchInfo`: shard, first and last sequence
//! numbers). The batch's records are read back from the table's stream
//! (kept 24 hours), their appends put into the feed unless already there
//! ([`eventstore_dynamodb::Relay::replay`]), announced on the topic when
//! one is given, and only then is the message deleted. A message that
//! cannot be handled stays in the queue and is reported.

use std::collections::HashSet;

use anyhow::Context;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use eventstore_aws::{Announcer, SnsPublisher, config};
use eventstore_dynamodb::{DynamoStore, FailedBatch, Relay, ReplayError, read_failed_batch};

use crate::config::check_table_name;

/// `event-store relay ...`.
#[derive(Debug, clap::Subcommand)]
pub enum RelayCommand {
    /// Replay the stream batches the relay function gave up on: read its
    /// failure queue, put each batch's appends into the feed (once), announce
    /// them, and delete each message once handled.
    #[command(after_help = REPLAY_EXIT_CODES)]
    ReplayFailures(ReplayArgs),
}

const REPLAY_EXIT_CODES: &str = "Exit codes: 0 every message was handled and deleted; \
1 some message is left in the queue (reported on stderr: not a failed batch, its records \
are no longer in the stream, or a request failed; run again later); 2 bad arguments.";

/// Options of `event-store relay replay-failures`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// The event store's table.
    #[arg(long, env = "EVENT_STORE_TABLE_NAME")]
    pub table: String,
    /// URL of the relay's failure queue (the event source mapping's
    /// on-failure destination; the stack's `EsRelayFailuresQueue` output).
    #[arg(long)]
    pub queue_url: String,
    /// Topic to announce the replayed appends on. Without it they are put
    /// into the feed but not announced.
    #[arg(long, env = "EVENT_STORE_TOPIC_ARN")]
    pub sns_topic_arn: Option<String>,
    /// Seconds a received message stays invisible to other readers while
    /// it is handled.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(i32).range(30..=43_200))]
    pub visibility_timeout: i32,
}

/// Runs a `relay` subcommand.
pub async fn run(command: RelayCommand) -> anyhow::Result<std::process::ExitCode> {
    match command {
        RelayCommand::ReplayFailures(args) => replay_failures(args).await,
    }
}

async fn replay_failures(args: ReplayArgs) -> anyhow::Result<std::process::ExitCode> {
    check_table_name(&args.table)?;
    let sdk = config::load_with_region().await?;
    let streams = config::streams_client(&sdk);
    let sqs = config::sqs_client(&sdk);
    let relay = Relay::new(DynamoStore::new(
        config::dynamodb_client(&sdk),
        args.table.clone(),
    ));
    let announcer = args.sns_topic_arn.as_ref().map(|topic| {
        let publisher = SnsPublisher::new(config::sns_client(&sdk), topic.clone());
        Announcer::new(relay.clone(), std::sync::Arc::new(publisher))
    });
    if announcer.is_none() {
        eprintln!("no --sns-topic-arn: replayed appends go into the feed but are not announced");
    }

    let mut seen: HashSet<String> = HashSet::new();
    let (mut replayed, mut left) = (0usize, 0usize);
    loop {
        let got = sqs
            .receive_message()
            .queue_url(&args.queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(args.visibility_timeout)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(e)))
            .with_context(|| format!("reading the failure queue {}", args.queue_url))?;
        let fresh: Vec<_> = got
            .messages()
            .iter()
            .filter(|m| m.message_id().is_none_or(|id| !seen.contains(id)))
            .collect();
        if fresh.is_empty() {
            break;
        }
        for m in fresh {
            let id = m.message_id().unwrap_or_default().to_string();
            seen.insert(id.clone());
            let outcome = handle(
                &relay,
                announcer.as_ref(),
                &streams,
                m.body().unwrap_or_default(),
            )
            .await;
            match outcome {
                Ok(line) => {
                    if let Some(receipt) = m.receipt_handle() {
                        sqs.delete_message()
                            .queue_url(&args.queue_url)
                            .receipt_handle(receipt)
                            .send()
                            .await
                            .map_err(|e| anyhow::anyhow!("{}", DisplayErrorContext(e)))
                            .with_context(|| format!("deleting message {id} (it was replayed; a replay run again adds nothing)"))?;
                    }
                    println!("{line}");
                    replayed += 1;
                }
                Err(why) => {
                    eprintln!("message {id} left in the queue: {why}");
                    left += 1;
                }
            }
        }
    }
    println!("{replayed} batch(es) replayed, {left} left in the queue");
    Ok(if left == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::from(1)
    })
}

/// One message: replayed (a line saying what was done), or why not.
async fn handle(
    relay: &Relay,
    announcer: Option<&Announcer>,
    streams: &aws_sdk_dynamodbstreams::Client,
    body: &str,
) -> Result<String, String> {
    let batch = FailedBatch::from_message(body).map_err(|e| e.to_string())?;
    let records = read_failed_batch(streams, &batch)
        .await
        .map_err(|e: ReplayError| e.to_string())?;
    let what = format!(
        "shard {} records {}..={} ({})",
        batch.shard_id,
        batch.start_sequence_number,
        batch.end_sequence_number,
        records.len()
    );
    match announcer {
        Some(announcer) => {
            let (_, announced) = announcer
                .replay(&records)
                .await
                .map_err(|e| format!("{what}: {e}"))?;
            if !announced.complete() {
                return Err(format!(
                    "{what}: {} of its announcements failed (see the log)",
                    announced.unpublished.len()
                ));
            }
            Ok(format!(
                "replayed {what}: {} append(s) announced",
                announced.published
            ))
        }
        None => {
            let out = relay
                .replay(&records)
                .await
                .map_err(|e| format!("{what}: {e}"))?;
            Ok(format!(
                "replayed {what}: {} append(s) put into the feed, {} already there, none announced",
                out.entries.len(),
                out.announcements.len() - out.entries.len(),
            ))
        }
    }
}
