//! `event-store export`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use futures::TryStreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use eventstore_client::{FeedOptions, StreamType};

use super::conn::ConnArgs;
use super::exit::usage;
use super::output::json_line;

/// Options of `export`.
#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "Each line is an event as the API returns it (streamType, streamId, \
revision, eventType, payload, metadata, eventId, createdAt, position), in feed order, so \
every stream's events come in revision order. `event-store import` reads this format."
)]
pub struct Args {
    /// Only events of streams of this type.
    #[arg(long = "type", value_name = "T")]
    pub stream_type: Option<String>,
    /// Write to this file (complete only when the command succeeds) instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Runs `export`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let t = args
        .stream_type
        .as_deref()
        .map(|t| StreamType::parse(t).map_err(|e| usage(e.to_string())))
        .transpose()?;
    let client = args.conn.client().await?;
    let options = FeedOptions::from_start().page_size(1000);
    let mut feed = match &t {
        Some(t) => Box::pin(client.type_feed(t, options))
            as std::pin::Pin<Box<dyn futures::Stream<Item = _> + Send>>,
        None => Box::pin(client.feed(options)),
    };
    let progress = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    progress.set_style(
        ProgressStyle::with_template("{spinner} exported {pos} events ({per_sec}) {elapsed}")
            .expect("valid template"),
    );
    let (mut out, partial): (Box<dyn Write>, Option<(PathBuf, PathBuf)>) = match &args.output {
        Some(path) => {
            let tmp = path.with_extension("partial");
            let file = std::fs::File::create(&tmp)
                .with_context(|| format!("creating {}", tmp.display()))?;
            (
                Box::new(std::io::BufWriter::new(file)),
                Some((tmp, path.clone())),
            )
        }
        None => (Box::new(std::io::BufWriter::new(std::io::stdout())), None),
    };
    let mut count = 0u64;
    while let Some(event) = feed.try_next().await? {
        json_line(&mut out, &event)?;
        count += 1;
        progress.inc(1);
    }
    out.flush()?;
    drop(out);
    if let Some((tmp, path)) = partial {
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    }
    progress.finish_and_clear();
    eprintln!("exported {count} events");
    Ok(())
}
