//! `event-store streams [TYPE]`.

use std::io::Write;

use futures::TryStreamExt;

use eventstore_client::{StreamType, Timestamp};

use super::conn::ConnArgs;
use super::exit::usage;
use super::output::{OutArgs, Table, json_line};

/// Options of `streams`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A stream type: list its streams (by last update) instead of the types.
    #[arg(value_name = "TYPE")]
    pub stream_type: Option<String>,
    /// Only streams updated after this time (RFC 3339).
    #[arg(long, value_name = "TIME", requires = "stream_type")]
    pub updated_after: Option<String>,
    #[command(flatten)]
    pub out: OutArgs,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Runs `streams`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = args.conn.client().await?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match &args.stream_type {
        None => {
            let types: Vec<_> = client.stream_types().try_collect().await?;
            if args.out.json {
                for t in &types {
                    json_line(&mut out, t)?;
                }
            } else {
                let mut table = Table::new(vec!["STREAM TYPE", "STREAMS"]);
                for t in &types {
                    table.row(vec![t.stream_type.to_string(), t.streams.to_string()]);
                }
                table.print(&mut out)?;
            }
        }
        Some(t) => {
            let t = StreamType::parse(t.as_str()).map_err(|e| usage(e.to_string()))?;
            let after = args
                .updated_after
                .as_deref()
                .map(|s| {
                    Timestamp::parse(s).map_err(|e| usage(format!("--updated-after {s:?}: {e}")))
                })
                .transpose()?;
            let mut streams = std::pin::pin!(client.list_streams(&t, after));
            let mut table = Table::new(vec!["STREAM ID", "REVISION", "UPDATED AT", "CREATED AT"]);
            while let Some(s) = streams.try_next().await? {
                if args.out.json {
                    json_line(&mut out, &s)?;
                } else {
                    table.row(vec![
                        s.stream_id.to_string(),
                        s.revision.to_string(),
                        s.updated_at.to_string(),
                        s.created_at.to_string(),
                    ]);
                }
            }
            if !args.out.json {
                table.print(&mut out)?;
            }
        }
    }
    out.flush()?;
    Ok(())
}
