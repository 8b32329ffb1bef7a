//! The events Lambda's DynamoDB event source mapping sends a relay
//! function, built from records read through the DynamoDB Streams API
//! (tumbling window, `ReportBatchItemFailures`).

use std::collections::HashMap;

use aws_sdk_dynamodbstreams::types::{AttributeValue, Record};
use base64::Engine as _;
use serde_json::{Value, json};

/// DynamoDB JSON of a stream attribute value, as Lambda writes it into
/// events (binary values base64).
fn dynamodb_json(v: &AttributeValue) -> Value {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::B(b) => json!({ "B": b64(b.as_ref()) }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(b) => json!({ "NULL": b }),
        AttributeValue::L(l) => json!({ "L": l.iter().map(dynamodb_json).collect::<Vec<_>>() }),
        AttributeValue::M(m) => json!({ "M": image_json(m) }),
        AttributeValue::Ss(s) => json!({ "SS": s }),
        AttributeValue::Ns(s) => json!({ "NS": s }),
        AttributeValue::Bs(s) => {
            json!({ "BS": s.iter().map(|b| b64(b.as_ref())).collect::<Vec<_>>() })
        }
        other => panic!("unexpected attribute value {other:?}"),
    }
}

/// DynamoDB JSON of an item image.
fn image_json(m: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), dynamodb_json(v)))
            .collect(),
    )
}

/// One record of an event, from a record of the stream `arn`.
pub fn record(arn: &str, r: &Record) -> Value {
    let d = r.dynamodb().expect("a stream record's change");
    json!({
        "eventID": r.event_id(),
        "eventName": r.event_name().map(|n| n.as_str()),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "eventSourceARN": arn,
        "dynamodb": {
            "ApproximateCreationDateTime": 1_795_673_518.0,
            "Keys": d.keys().map(image_json),
            "NewImage": d.new_image().map(image_json),
            "OldImage": d.old_image().map(image_json),
            "SequenceNumber": d.sequence_number(),
            "SizeBytes": d.size_bytes().unwrap_or(1),
            "StreamViewType": d.stream_view_type().map(|v| v.as_str()),
        }
    })
}

/// A windowed event (one shard's batch) of the stream `arn`.
pub fn windowed(arn: &str, shard: &str, records: &[Record]) -> Value {
    json!({
        "Records": records.iter().map(|r| record(arn, r)).collect::<Vec<_>>(),
        "window": {"start": "2026-11-26T04:00:00Z", "end": "2026-11-26T04:15:00Z"},
        "state": {},
        "shardId": shard,
        "eventSourceARN": arn,
        "isFinalInvokeForWindow": false,
        "isWindowTerminatedEarly": false,
    })
}
