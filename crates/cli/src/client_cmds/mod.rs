//! The client commands of `event-store`: they talk to any store over HTTP
//! (a local server or a Lambda Function URL) through `eventstore-client`.
//!
//! Each command has an `Args` struct and a `run` function; [`run`] maps
//! every failure to one of the documented exit codes ([`EXIT_CODES`]).

mod append;
mod conn;
mod exit;
mod export;
mod import;
mod lifecycle;
mod output;
mod read;
mod streams;
mod tail;

use std::process::ExitCode;

use clap::Subcommand;

pub use exit::EXIT_CODES;

/// Commands that talk to a store over HTTP.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// List the stream types with their number of streams, or the streams of one type.
    #[command(after_help = EXIT_CODES)]
    Streams(streams::Args),
    /// Read a stream's events.
    #[command(after_help = EXIT_CODES)]
    Read(read::Args),
    /// Append events to a stream (from arguments, or JSON / NDJSON on stdin).
    #[command(after_help = EXIT_CODES)]
    Append(append::Args),
    /// Follow the global feed (or one type's feed) live.
    #[command(after_help = EXIT_CODES)]
    Tail(tail::Args),
    /// Write every event (or one type's events) as NDJSON, in feed order.
    #[command(after_help = EXIT_CODES)]
    Export(export::Args),
    /// Append the events of an export (NDJSON) to a store, keeping event ids; safe to re-run.
    #[command(after_help = EXIT_CODES)]
    Import(import::Args),
    /// Delete a stream and erase its events (asks for confirmation unless --yes).
    #[command(after_help = EXIT_CODES)]
    Delete(lifecycle::DeleteArgs),
    /// Erase a stream's events below a revision (asks for confirmation unless --yes).
    #[command(after_help = EXIT_CODES)]
    Truncate(lifecycle::TruncateArgs),
}

/// Runs a client command and turns its outcome into the documented exit code.
pub async fn run(command: ClientCommand) -> ExitCode {
    let result = match command {
        ClientCommand::Streams(args) => streams::run(args).await,
        ClientCommand::Read(args) => read::run(args).await,
        ClientCommand::Append(args) => append::run(args).await,
        ClientCommand::Tail(args) => tail::run(args).await,
        ClientCommand::Export(args) => export::run(args).await,
        ClientCommand::Import(args) => import::run(args).await,
        ClientCommand::Delete(args) => lifecycle::delete(args).await,
        ClientCommand::Truncate(args) => lifecycle::truncate(args).await,
    };
    exit::report(result)
}
