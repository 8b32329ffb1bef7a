//! `event-store append TYPE ID`.

use std::io::{Read, Write};

use eventstore_api::NewEventBody;
use eventstore_client::{
    EventId, EventType, Expectation, JsonObject, JsonValue, NewEvent, Revision, StreamId,
    StreamType,
};

use super::conn::ConnArgs;
use super::exit::usage;
use super::output::{OutArgs, json_line};

/// Options of `append`.
#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "Without --type, events are read from stdin: one JSON object \
{\"eventType\":..,\"payload\":..,\"eventId\"?:..,\"metadata\"?:..}, a JSON array of them, \
or NDJSON (one per line). All events go in one atomic append (at most 100)."
)]
pub struct Args {
    /// The stream's type.
    #[arg(value_name = "TYPE")]
    pub stream_type: String,
    /// The stream's id.
    #[arg(value_name = "ID")]
    pub stream_id: String,
    /// Event type of a single event given on the command line.
    #[arg(long = "type", value_name = "T", requires = "payload")]
    pub event_type: Option<String>,
    /// Payload (any JSON) of the single event given with --type.
    #[arg(long, value_name = "JSON", requires = "event_type")]
    pub payload: Option<String>,
    /// Metadata (a JSON object) of the single event given with --type.
    #[arg(long, value_name = "JSON", requires = "event_type")]
    pub metadata: Option<String>,
    /// Id (UUID) of the single event given with --type; a new one otherwise.
    #[arg(long, value_name = "UUID", requires = "event_type")]
    pub event_id: Option<String>,
    /// What the stream's revision must be: N, no-stream, exists or any.
    #[arg(long, value_name = "N|no-stream|exists|any", default_value = "any", value_parser = parse_expectation)]
    pub expected_revision: Expectation,
    #[command(flatten)]
    pub out: OutArgs,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Parses `--expected-revision`.
pub fn parse_expectation(s: &str) -> Result<Expectation, String> {
    match s {
        "no-stream" => Ok(Expectation::NoStream),
        "exists" => Ok(Expectation::Exists),
        "any" => Ok(Expectation::Any),
        n => Revision::parse(n)
            .map(Expectation::Exact)
            .map_err(|_| format!("{n:?} is not an integer >= 0, no-stream, exists or any")),
    }
}

/// Parses events given as one JSON object, an array, or NDJSON.
pub fn parse_events(text: &str) -> anyhow::Result<Vec<NewEvent>> {
    let trimmed = text.trim_start();
    let bodies: Vec<NewEventBody> = if trimmed.starts_with('[') {
        serde_json::from_str(trimmed).map_err(|e| usage(format!("events on stdin: {e}")))?
    } else {
        serde_json::Deserializer::from_str(text)
            .into_iter::<NewEventBody>()
            .collect::<Result<_, _>>()
            .map_err(|e| usage(format!("events on stdin: {e}")))?
    };
    if bodies.is_empty() {
        return Err(usage(
            "no events given (use --type/--payload or JSON on stdin)",
        ));
    }
    // Ids are fixed here, before the first try, so retries are recognised.
    Ok(bodies
        .into_iter()
        .map(NewEventBody::into_new_event)
        .collect())
}

fn event_from_args(args: &Args) -> anyhow::Result<Option<NewEvent>> {
    let (Some(t), Some(p)) = (&args.event_type, &args.payload) else {
        return Ok(None);
    };
    let event_type = EventType::parse(t.as_str()).map_err(|e| usage(e.to_string()))?;
    let payload = JsonValue::from_text(p.as_str()).map_err(|e| usage(format!("--payload: {e}")))?;
    let mut event = NewEvent::new(event_type, payload);
    if let Some(m) = &args.metadata {
        event.metadata =
            JsonObject::from_text(m.as_str()).map_err(|e| usage(format!("--metadata: {e}")))?;
    }
    if let Some(id) = &args.event_id {
        event.event_id = EventId::parse(id).map_err(|e| usage(e.to_string()))?;
    }
    Ok(Some(event))
}

/// Runs `append`.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let t = StreamType::parse(args.stream_type.as_str()).map_err(|e| usage(e.to_string()))?;
    let id = StreamId::parse(args.stream_id.as_str()).map_err(|e| usage(e.to_string()))?;
    let events = match event_from_args(&args)? {
        Some(e) => vec![e],
        None => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            parse_events(&text)?
        }
    };
    let client = args.conn.client().await?;
    let outcome = client
        .append(&t, &id, args.expected_revision, events)
        .await?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.out.json {
        json_line(
            &mut out,
            &serde_json::json!({
                "stream": outcome.stream,
                "firstRevision": outcome.first_revision,
                "lastRevision": outcome.last_revision,
                "alreadyAppended": outcome.already_appended,
            }),
        )?;
    } else {
        let what = if outcome.already_appended {
            "already appended"
        } else {
            "appended"
        };
        writeln!(
            out,
            "{what}: {t}/{id} revisions {}..{} (stream at revision {})",
            outcome.first_revision, outcome.last_revision, outcome.stream.revision
        )?;
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations_parse() {
        assert_eq!(
            parse_expectation("3"),
            Ok(Expectation::Exact(Revision::new(3)))
        );
        assert_eq!(parse_expectation("no-stream"), Ok(Expectation::NoStream));
        assert!(parse_expectation("-1").is_err());
        assert!(parse_expectation("maybe").is_err());
    }

    #[test]
    fn events_parse_from_object_array_and_ndjson() {
        let one = r#"{"eventType":"a","payload":{"x":1}}"#;
        assert_eq!(parse_events(one).unwrap().len(), 1);
        let pretty = "{\n  \"eventType\": \"a\",\n  \"payload\": 1\n}\n";
        assert_eq!(parse_events(pretty).unwrap().len(), 1);
        let array = r#"[{"eventType":"a","payload":1},{"eventType":"b","payload":"s"}]"#;
        assert_eq!(parse_events(array).unwrap().len(), 2);
        let nd = "{\"eventType\":\"a\",\"payload\":1}\n{\"eventType\":\"b\",\"payload\":2,\"eventId\":\"0193c8a4-1b2e-7c3d-9e8f-0a1b2c3d4e5f\"}\n";
        let events = parse_events(nd).unwrap();
        assert_eq!(
            events[1].event_id.to_string(),
            "0193c8a4-1b2e-7c3d-9e8f-0a1b2c3d4e5f"
        );
        assert_ne!(events[0].event_id, events[1].event_id);
        assert!(parse_events("").is_err());
        assert!(parse_events("{").is_err());
        assert!(parse_events(r#"{"eventType":"","payload":1}"#).is_err());
    }
}
