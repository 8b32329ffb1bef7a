//! `event-store read TYPE ID`.

use std::io::Write;

use futures::{StreamExt, TryStreamExt};

use eventstore_client::{Revision, StreamId, StreamRead, StreamType};

use super::conn::ConnArgs;
use super::exit::usage;
use super::output::{OutArgs, Table, cut, json_line};

/// Options of `read`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The stream's type.
    #[arg(value_name = "TYPE")]
    pub stream_type: String,
    /// The stream's id.
    #[arg(value_name = "ID")]
    pub stream_id: String,
    /// Newest first.
    #[arg(long)]
    pub backward: bool,
    /// First revision to show (included); backward: counting down from it.
    #[arg(long, value_name = "REV")]
    pub from: Option<u64>,
    /// Show at most this many events.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub out: OutArgs,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Runs `read`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let t = StreamType::parse(args.stream_type.as_str()).map_err(|e| usage(e.to_string()))?;
    let id = StreamId::parse(args.stream_id.as_str()).map_err(|e| usage(e.to_string()))?;
    if args.limit == Some(0) {
        return Err(usage("--limit must be at least 1"));
    }
    let client = args.conn.client().await?;
    // Fail with "not found" rather than print an empty table.
    client.stream_details(&t, &id).await?;
    let page = args.limit.unwrap_or(1000).min(1000);
    let read = if args.backward {
        StreamRead::backward(args.from.map(|r| Revision::new(r.saturating_add(1))), page)
    } else {
        StreamRead::forward_after(
            Revision::new(args.from.unwrap_or(1).saturating_sub(1)),
            page,
        )
    };
    let events = client.read_stream(&t, &id, read);
    let mut events = std::pin::pin!(events.take(args.limit.unwrap_or(usize::MAX)));
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut table = Table::new(vec![
        "REV",
        "POSITION",
        "EVENT TYPE",
        "CREATED AT",
        "EVENT ID",
        "PAYLOAD",
    ]);
    while let Some(e) = events.try_next().await? {
        if args.out.json {
            json_line(&mut out, &e)?;
        } else {
            table.row(vec![
                e.revision.to_string(),
                e.position
                    .map(|p| p.to_string())
                    .unwrap_or_else(|| "-".into()),
                e.event_type.to_string(),
                e.created_at.to_string(),
                e.event_id.to_string(),
                cut(e.payload.get(), 80),
            ]);
        }
    }
    if !args.out.json {
        table.print(&mut out)?;
    }
    out.flush()?;
    Ok(())
}
