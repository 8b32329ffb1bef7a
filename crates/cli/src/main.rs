//! `event-store`: the event store's command-line program.
//!
//! `event-store serve` (or no subcommand at all) runs the HTTP API over
//! the embedded store (or the in-memory or DynamoDB one);
//! `event-store dynamodb create-table` prepares a DynamoDB table;
//! `event-store relay replay-failures` replays the relay's dead-lettered batches;
//! `event-store check` and `repair` verify and repair the embedded store. Each subcommand lives in its own module with a
//! `clap::Args` struct and a `run` function; adding one is a variant in
//! [`Command`] and an arm in [`main`].

mod bench;
mod client_cmds;
mod config;
mod dynamodb_cmd;
mod feed_reader;
mod relay_cmd;
mod scale;
mod serve;
mod storage_cmd;
mod telemetry;

use clap::{Parser, Subcommand};

use crate::config::{LogArgs, ServeArgs, ServeSettings};

/// mimalloc rather than the system's allocator: every request allocates
/// (headers, JSON, spans, the answer), and glibc's malloc was over a tenth
/// of the server's CPU time per append in profiles (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "event-store",
    version,
    about = "An event store: append-only event streams over HTTP.",
    args_conflicts_with_subcommands = true,
    after_help = client_cmds::EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Options of `serve`, for running without a subcommand.
    #[command(flatten)]
    serve: ServeArgs,
    #[command(flatten)]
    log: LogArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP API (the default when no subcommand is given).
    Serve(ServeArgs),
    #[command(flatten)]
    Client(client_cmds::ClientCommand),
    /// Measure a running server: append and read throughput, latency.
    Bench(bench::BenchArgs),
    /// Administer the DynamoDB backend (create its table).
    #[command(subcommand)]
    Dynamodb(dynamodb_cmd::DynamoCommand),
    /// Operate the feed relay of a deployed DynamoDB backend (replay the
    /// batches it gave up on).
    #[command(subcommand)]
    Relay(relay_cmd::RelayCommand),
    /// Verify every frame of the embedded store's log and the index built
    /// from them (the server must be stopped).
    #[command(after_help = storage_cmd::STORAGE_EXIT_CODES)]
    Check(storage_cmd::StorageArgs),
    /// Repair a damaged embedded store: keep every intact frame at its
    /// position, move the damaged original aside, print what was lost (the
    /// server must be stopped).
    #[command(after_help = storage_cmd::STORAGE_EXIT_CODES)]
    Repair(storage_cmd::StorageArgs),
    /// Erase now, in the embedded store's files, the events that deletions
    /// and truncations removed, and wait until nothing is left to erase (a
    /// running server does this by itself; the server must be stopped).
    #[command(after_help = storage_cmd::COMPACT_EXIT_CODES)]
    Compact(storage_cmd::StorageArgs),
}

fn main() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    telemetry::init(&cli.log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let command = cli.command.unwrap_or(Command::Serve(cli.serve));
    let result = runtime.block_on(async move {
        match command {
            Command::Serve(args) => serve::run(ServeSettings::from_args(args)?)
                .await
                .map(|()| std::process::ExitCode::SUCCESS),
            Command::Client(command) => Ok(client_cmds::run(command).await),
            Command::Bench(args) => bench::run(args)
                .await
                .map(|()| std::process::ExitCode::SUCCESS),
            Command::Dynamodb(command) => dynamodb_cmd::run(command)
                .await
                .map(|()| std::process::ExitCode::SUCCESS),
            Command::Relay(command) => relay_cmd::run(command).await,
            Command::Check(args) => storage_cmd::check(args),
            Command::Repair(args) => storage_cmd::repair(args),
            Command::Compact(args) => storage_cmd::compact(args).await,
        }
    });
    if let Err(err) = &result {
        tracing::error!(error = format!("{err:#}"), "failed");
    }
    result
}
