//! `event-store tail`.

use std::io::Write;
use std::time::Duration;

use futures::StreamExt;

use eventstore_client::{Client, FeedFilter, FeedOptions, Position, StreamType};

use super::conn::ConnArgs;
use super::exit::usage;
use super::output::{OutArgs, event_line, json_line};

/// Options of `tail`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only events of streams of this type.
    #[arg(long = "type", value_name = "T")]
    pub stream_type: Option<String>,
    /// Start after this feed position (0: from the first event). Default: the
    /// current end of the feed.
    #[arg(long, value_name = "P")]
    pub from_position: Option<u64>,
    /// Stop after this many events.
    #[arg(long, value_name = "N")]
    pub count: Option<usize>,
    /// Seconds one long poll waits for new events (0–30).
    #[arg(long, default_value_t = 20, value_name = "SECS")]
    pub wait: u64,
    #[command(flatten)]
    pub out: OutArgs,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Whether the feed has an event past `after`.
async fn has_events_after(
    client: &Client,
    filter: &FeedFilter,
    after: u64,
) -> anyhow::Result<bool> {
    let page = client
        .feed_page(filter, Position::new(after), 1, None)
        .await?;
    Ok(!page.events.is_empty())
}

/// The position of the last event of the feed (0 when it is empty), found
/// with O(log n) one-event reads: "is there an event after P?" holds for
/// every P below the last position and for none from it on, so doubling
/// and then bisecting P finds it without reading the feed through.
async fn end_of_feed(client: &Client, filter: &FeedFilter) -> anyhow::Result<Position> {
    if !has_events_after(client, filter, 0).await? {
        return Ok(Position::ZERO);
    }
    // Invariant: events after `below`, none after `end`.
    let (mut below, mut end) = (0u64, 1u64);
    while has_events_after(client, filter, end).await? {
        below = end;
        end = end.saturating_mul(2);
    }
    while end - below > 1 {
        let mid = below + (end - below) / 2;
        if has_events_after(client, filter, mid).await? {
            below = mid;
        } else {
            end = mid;
        }
    }
    Ok(Position::new(end))
}

/// Runs `tail`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    if args.wait > eventstore_client::MAX_WAIT_SECS {
        return Err(usage("--wait must be at most 30"));
    }
    let filter = match &args.stream_type {
        Some(t) => {
            FeedFilter::StreamType(StreamType::parse(t.as_str()).map_err(|e| usage(e.to_string()))?)
        }
        None => FeedFilter::All,
    };
    let client = args.conn.client().await?;
    let start = match args.from_position {
        Some(p) => Position::new(p),
        None => end_of_feed(&client, &filter).await?,
    };
    let options = FeedOptions::from_start()
        .after(start)
        .follow_with_wait(Duration::from_secs(args.wait));
    let feed = match &filter {
        FeedFilter::StreamType(t) => client.type_feed(t, options).boxed(),
        _ => client.feed(options).boxed(),
    };
    let mut feed = feed.take(args.count.unwrap_or(usize::MAX));
    let stdout = std::io::stdout();
    while let Some(item) = feed.next().await {
        match item {
            Ok(e) => {
                let mut out = stdout.lock();
                if args.out.json {
                    json_line(&mut out, &e)?;
                } else {
                    writeln!(out, "{}", event_line(&e))?;
                }
                out.flush()?;
            }
            // The feed keeps going after transient failures.
            Err(e) if e.is_transient() => eprintln!("warning: {e}; retrying"),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
