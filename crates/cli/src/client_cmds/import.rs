//! `event-store import`: appends an export to a store, exactly once.
//!
//! Consecutive events of one stream are grouped into batch appends that
//! expect the exact revision before their first event, with the events'
//! original ids. A re-run after an interruption therefore recognises what
//! is already stored: a batch that was committed comes back as a retry
//! (200) and writes nothing; where batches fall differently (another
//! `--batch-size`), the conflict answer's actual revision tells how far the
//! stream got, the stored ids are compared with the input, and only the
//! rest is appended.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::Context;
use futures::TryStreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use eventstore_client::{
    Client, Error, Expectation, NewEvent, RecordedEvent, Revision, StreamRead,
};

use super::conn::ConnArgs;
use super::exit::{conflict, usage};
use super::output::{OutArgs, json_line};

/// Options of `import`.
#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "Reads the NDJSON that `event-store export` writes. Stream types, \
stream ids, revisions, event types, payloads, metadata and event ids are kept (times and feed \
positions are the target's). Events of one stream must come in revision order, starting where \
the target stream is. Interrupted imports can be re-run: nothing is written twice."
)]
pub struct Args {
    /// NDJSON file to read; stdin when absent or `-`.
    #[arg(value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Most events per append (1–100).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=100))]
    pub batch_size: u16,
    #[command(flatten)]
    pub out: OutArgs,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Room for one request body, below the API's 1 MiB.
const BODY_BUDGET: usize = 900 * 1024;
/// JSON overhead of one event in a request besides payload and metadata.
const EVENT_OVERHEAD: usize = 200;

#[derive(Debug, Default)]
struct Stats {
    events: u64,
    written: u64,
    present: u64,
    appends: u64,
}

struct Importer {
    client: Client,
    batch_size: usize,
    batch: Vec<RecordedEvent>,
    batch_bytes: usize,
    stats: Stats,
}

fn to_new(e: &RecordedEvent) -> NewEvent {
    NewEvent {
        event_id: e.event_id,
        event_type: e.event_type.clone(),
        payload: e.payload.clone(),
        metadata: e.metadata.clone(),
    }
}

impl Importer {
    async fn push(&mut self, event: RecordedEvent) -> anyhow::Result<()> {
        let size = event.payload.len() + event.metadata.len() + EVENT_OVERHEAD;
        if let Some(last) = self.batch.last() {
            let same_stream =
                last.stream_type == event.stream_type && last.stream_id == event.stream_id;
            if same_stream && event.revision != last.revision.next() {
                return Err(usage(format!(
                    "input is not in stream order: {}/{} revision {} follows revision {}",
                    event.stream_type, event.stream_id, event.revision, last.revision
                )));
            }
            if !same_stream
                || self.batch.len() >= self.batch_size
                || self.batch_bytes + size > BODY_BUDGET
            {
                self.flush().await?;
            }
        }
        if event.revision == Revision::ZERO {
            return Err(usage(format!(
                "{}/{}: revision 0 is not an event's revision",
                event.stream_type, event.stream_id
            )));
        }
        self.batch_bytes += size;
        self.batch.push(event);
        Ok(())
    }

    /// Appends the pending batch, recognising what the target already has.
    async fn flush(&mut self) -> anyhow::Result<()> {
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let Some(head) = batch.first() else {
            return Ok(());
        };
        let (t, id) = (head.stream_type.clone(), head.stream_id.clone());
        let mut rest: &[RecordedEvent] = &batch;
        while let Some(first) = rest.first() {
            let before = Revision::new(first.revision.get() - 1);
            let last = rest[rest.len() - 1].revision;
            let events = rest.iter().map(to_new).collect();
            self.stats.appends += 1;
            match self
                .client
                .append(&t, &id, Expectation::Exact(before), events)
                .await
            {
                Ok(outcome) => {
                    let n = rest.len() as u64;
                    if outcome.already_appended {
                        self.stats.present += n;
                    } else {
                        self.stats.written += n;
                    }
                    return Ok(());
                }
                Err(Error::WrongExpectedRevision {
                    actual: Some(actual),
                    ..
                }) if actual > before => {
                    // The target has (some of) these revisions: they must be
                    // these very events.
                    let covered = actual.min(last);
                    let n = (covered.get() - before.get()) as usize;
                    let stored: Vec<RecordedEvent> = self
                        .client
                        .read_stream(&t, &id, StreamRead::forward_after(before, n.min(1000)))
                        .take_while_revision(covered)
                        .try_collect()
                        .await?;
                    let same = stored.len() == n
                        && stored
                            .iter()
                            .zip(rest)
                            .all(|(s, i)| s.event_id == i.event_id);
                    if !same {
                        return Err(conflict(format!(
                            "{t}/{id} revisions {}..{covered} hold other events than the input",
                            first.revision
                        )));
                    }
                    self.stats.present += n as u64;
                    rest = &rest[n..];
                }
                Err(e) => {
                    return Err(anyhow::Error::from(e).context(format!(
                        "appending {t}/{id} revisions {}..{last}",
                        first.revision
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Stops a stream of events after the given revision.
trait TakeWhileRevision:
    futures::Stream<Item = eventstore_client::Result<RecordedEvent>> + Sized
{
    fn take_while_revision(
        self,
        last: Revision,
    ) -> impl futures::Stream<Item = eventstore_client::Result<RecordedEvent>> {
        self.try_take_while(move |e| futures::future::ready(Ok(e.revision <= last)))
    }
}

impl<S: futures::Stream<Item = eventstore_client::Result<RecordedEvent>>> TakeWhileRevision for S {}

/// Runs `import`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let (reader, total): (Box<dyn BufRead>, Option<u64>) = match &args.input {
        Some(path) if path.as_os_str() != "-" => {
            let file = std::fs::File::open(path)
                .with_context(|| format!("opening {}", path.display()))
                .map_err(|e| usage(format!("{e:#}")))?;
            let len = file.metadata().ok().map(|m| m.len());
            (Box::new(std::io::BufReader::new(file)), len)
        }
        _ => (Box::new(std::io::BufReader::new(std::io::stdin())), None),
    };
    let client = args.conn.client().await?;
    let progress = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    let template = if total.is_some() {
        "{bar:40} {bytes}/{total_bytes} {msg} (eta {eta})"
    } else {
        "{spinner} {bytes} read {msg}"
    };
    progress.set_style(ProgressStyle::with_template(template).expect("valid template"));
    let mut importer = Importer {
        client,
        batch_size: usize::from(args.batch_size),
        batch: Vec::new(),
        batch_bytes: 0,
        stats: Stats::default(),
    };
    for (n, line) in reader.lines().enumerate() {
        let line = line.context("reading the input")?;
        progress.inc(line.len() as u64 + 1);
        if line.trim().is_empty() {
            continue;
        }
        let event: RecordedEvent = serde_json::from_str(&line)
            .map_err(|e| usage(format!("line {}: not an exported event: {e}", n + 1)))?;
        importer.stats.events += 1;
        importer.push(event).await?;
        if importer.stats.events.is_multiple_of(500) {
            progress.set_message(format!("{} events", importer.stats.events));
        }
    }
    importer.flush().await?;
    progress.finish_and_clear();
    let s = &importer.stats;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.out.json {
        json_line(
            &mut out,
            &serde_json::json!({
                "events": s.events, "written": s.written,
                "alreadyPresent": s.present, "appends": s.appends,
            }),
        )?;
    } else {
        writeln!(
            out,
            "imported {} events: {} written, {} already present ({} appends)",
            s.events, s.written, s.present, s.appends
        )?;
    }
    out.flush()?;
    Ok(())
}
