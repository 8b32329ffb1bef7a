//! `event-store delete TYPE ID` and `event-store truncate TYPE ID --before N`.

use std::io::{BufRead, IsTerminal, Write};

use eventstore_client::{Revision, StreamId, StreamType};

use super::conn::ConnArgs;
use super::exit::usage;

/// Options of `delete`.
#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    /// The stream's type.
    #[arg(value_name = "TYPE")]
    pub stream_type: String,
    /// The stream's id.
    #[arg(value_name = "ID")]
    pub stream_id: String,
    /// Delete only if the stream is at this revision (exit 3 otherwise).
    #[arg(long, value_name = "REV")]
    pub expected_revision: Option<u64>,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Options of `truncate`.
#[derive(Debug, clap::Args)]
pub struct TruncateArgs {
    /// The stream's type.
    #[arg(value_name = "TYPE")]
    pub stream_type: String,
    /// The stream's id.
    #[arg(value_name = "ID")]
    pub stream_id: String,
    /// The first revision to keep: every event below it is removed.
    #[arg(long, value_name = "REV")]
    pub before: u64,
    /// Truncate only if the stream is at this revision (exit 3 otherwise).
    #[arg(long, value_name = "REV")]
    pub expected_revision: Option<u64>,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

fn stream(t: &str, id: &str) -> anyhow::Result<(StreamType, StreamId)> {
    Ok((
        StreamType::parse(t).map_err(|e| usage(e.to_string()))?,
        StreamId::parse(id).map_err(|e| usage(e.to_string()))?,
    ))
}

/// Asks on the terminal for the stream's id before an erasure; refuses
/// without a terminal (use `--yes` in scripts).
fn confirm(what: &str, id: &StreamId) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(usage(format!(
            "{what}: refusing without confirmation; stdin is not a terminal, pass --yes"
        )));
    }
    let mut err = std::io::stderr().lock();
    write!(
        err,
        "{what}. This cannot be undone. Type the stream id to confirm: "
    )?;
    err.flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    if answer.trim() != id.as_str() {
        return Err(usage("not confirmed; nothing was changed"));
    }
    Ok(())
}

/// Runs `delete`.
pub async fn delete(args: DeleteArgs) -> anyhow::Result<()> {
    let (t, id) = stream(&args.stream_type, &args.stream_id)?;
    if !args.yes {
        confirm(&format!("Delete stream {t}/{id} and erase its events"), &id)?;
    }
    let client = args.conn.client().await?;
    client
        .delete_stream(&t, &id, args.expected_revision.map(Revision::new))
        .await?;
    println!("deleted {t}/{id}");
    Ok(())
}

/// Runs `truncate`.
pub async fn truncate(args: TruncateArgs) -> anyhow::Result<()> {
    let (t, id) = stream(&args.stream_type, &args.stream_id)?;
    if args.before == 0 {
        return Err(usage("--before must be at least 1"));
    }
    if !args.yes {
        confirm(
            &format!(
                "Erase the events of stream {t}/{id} below revision {}",
                args.before
            ),
            &id,
        )?;
    }
    let client = args.conn.client().await?;
    let info = client
        .truncate_stream(
            &t,
            &id,
            Revision::new(args.before),
            args.expected_revision.map(Revision::new),
        )
        .await?;
    println!(
        "truncated {t}/{id}: revisions {} to {} kept",
        info.first_revision, info.revision
    );
    Ok(())
}
