#!/usr/bin/env python3
"""Serves moto's AWS emulator on 127.0.0.1 behind one global lock, with a
fidelity layer that gives it the AWS semantics moto lacks.

Stock `moto_server` handles requests on several threads without locking its
in-memory backends, so racing conditional writes can all "win". Real
DynamoDB serialises conditional writes per item; taking one global lock per
request gives the emulator that property (and more), so race tests mean
something.

The fidelity layer (see docs/dynamodb.md, "The fidelity layer"):

- `ClientRequestToken` of `TransactWriteItems`: the same token with the same
  parameters within 10 minutes of a successful call is a no-op success (the
  first answer again); after a cancelled call it is executed again; the
  same token with other parameters within 10 minutes of any completed call
  (cancelled ones included) is `IdempotentParameterMismatchException`; a
  token whose call is still in flight is `TransactionInProgressException`.
- `TransactWriteItems` as DynamoDB runs it: every condition checked against
  the state before the transaction, nothing applied when one fails. moto
  backs each transaction up by deep-copying the tables it touches (slower
  the more a table holds) and rolls a cancelled one back with the copies,
  which orphans the stream shard that shard iterators point to; see
  `transactions_without_table_copies`.
- SNS `PublishBatch`: at most 10 entries (moto checks it) and at most
  256 KiB for all messages and attributes together (`BatchRequestTooLong`).
- Injectable faults, switched on by rule sets (control API below): `conflict`
  (`TransactionCanceledException` with a `TransactionConflict` reason for
  `TransactWriteItems` and `TransactGetItems`, or
  `TransactionConflictException` for single-item writes), `throttle`
  (`ThrottlingException`), `throughput`
  (`ProvisionedThroughputExceededException`), `internal` (500
  `InternalServerError`), `lost` (the request is applied, then the answer is
  a 500: a response lost after the write), `in-progress`
  (`TransactionInProgressException`, nothing applied) and `slow` (the request
  waits `delay_ms` before it is applied, outside the lock, its token in
  flight).

Control API (JSON over HTTP on the same port):

    PUT    /__fidelity/faults/NAME   {"seed": 7, "rules": [RULE, ...]}
    GET    /__fidelity/faults/NAME   -> {"injected": {...}, "tokens": {...}}
    DELETE /__fidelity/faults/NAME
    RULE = {"op": "TransactWriteItems" | [..] | "*", "fault": KIND,
            "probability": 0.1, "times": N (optional cap),
            "match": "substring of the request body" (optional, e.g. a table
            name, so concurrent tests sharing one server do not disturb each
            other), "delay_ms": 200 (for "slow")}

A rule set may also shape DynamoDB Streams: with `"extra_shards": N,
"shards_match": "TABLE"`, `DescribeStream` of a stream whose ARN contains
TABLE lists N extra closed, empty shards before moto's real one, the last
of them the real shard's parent, in pages of 100 shards as on AWS
(`ExclusiveStartShardId`, `LastEvaluatedShardId`).

With `"stream_shards": N, "shards_match": "TABLE"` instead, the layer serves
TABLE's stream itself as N open shards over moto's one (each record goes to
a shard by a hash of its partition key, so one item's records stay in one
shard, in order), and splits them live on request:

    POST   /__fidelity/faults/NAME/split   {"shard": ID (optional)}
           -> {"closed": ID, "children": [ID, ID], "ending": "SEQ"}
    GET    /__fidelity/faults/NAME/shards  -> {"shards": [{"id", "parent",
           "start", "end", "records"}, ...]}

A split closes the shard (its `EndingSequenceNumber` is the stream's last
record so far; by default the open shard with the most records) and opens
two children with it as `ParentShardId`: its keys' later records go to the
children, so a child's records all come after its parent's.
`GetShardIterator` (`TRIM_HORIZON`, `LATEST`, `AT_`/`AFTER_SEQUENCE_NUMBER`)
and `GetRecords` (`Limit`; no `NextShardIterator` once a closed shard is read
to its end) work on these shards as on AWS.

Rule sets can also be given at start in `EVENT_STORE_FIDELITY`, a JSON object
`{"NAME": {"seed": .., "rules": [..]}}`.

Usage: server.py [PORT] [--exit-with-stdin]   (PORT 0 or absent: a free port)
Prints `port=N` on stdout once the socket is bound, then serves until killed.
"""

import base64
import io
import json
import os
import random
import socket
import sys
import threading
import time
import urllib.parse
import uuid
import zlib

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server

TOKEN_WINDOW = 600.0  # seconds DynamoDB remembers a ClientRequestToken
SNS_BATCH_BYTES = 256 * 1024
CONTROL = "/__fidelity/faults/"
DDB_ERROR = "com.amazonaws.dynamodb.v20120810#"
FAULTS = {"conflict", "throttle", "throughput", "internal", "lost", "in-progress", "slow"}


class RuleSet:
    def __init__(self, spec):
        self.rng = random.Random(spec.get("seed", 0))
        self.rules = []
        for rule in spec.get("rules", []):
            if rule.get("fault") not in FAULTS:
                raise ValueError(f"unknown fault {rule.get('fault')!r}; one of {sorted(FAULTS)}")
            ops = rule.get("op", "*")
            rule = dict(rule)
            rule["op"] = [ops] if isinstance(ops, str) else list(ops)
            rule["left"] = rule.get("times")
            self.rules.append(rule)
        self.injected = {}
        # DynamoDB Streams shape: this many extra closed, empty shards are
        # listed before the real ones of the streams whose ARN contains
        # `shards_match`, the last of them the real shards' parent.
        self.extra_shards = int(spec.get("extra_shards", 0))
        self.shards_match = spec.get("shards_match")
        n = int(spec.get("stream_shards", 0))
        if n and not self.shards_match:
            raise ValueError("stream_shards needs shards_match (the table's name)")
        self.vstream = VirtualStream(n) if n else None

    def pick(self, op, body_text):
        for rule in self.rules:
            if "*" not in rule["op"] and op not in rule["op"]:
                continue
            if rule.get("match") and rule["match"] not in body_text:
                continue
            if rule["left"] is not None and rule["left"] <= 0:
                continue
            if self.rng.random() >= float(rule.get("probability", 1.0)):
                continue
            if rule["left"] is not None:
                rule["left"] -= 1
            key = f"{op}:{rule['fault']}"
            self.injected[key] = self.injected.get(key, 0) + 1
            return rule
        return None


class Fidelity:
    """WSGI middleware: one request at a time through moto, plus the
    fidelity layer."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()  # moto: one request at a time
        self.state = threading.Lock()  # rule sets and tokens
        self.sets = {}
        self.tokens = {}  # token -> dict(params, inflight, at, body, set)
        self.token_stats = {}
        spec = os.environ.get("EVENT_STORE_FIDELITY")
        if spec:
            for name, s in json.loads(spec).items():
                self.sets[name] = RuleSet(s)

    # -- plumbing ---------------------------------------------------------

    def moto(self, environ, body):
        with self.lock:
            return self.moto_unlocked(environ, body)

    def moto_unlocked(self, environ, body):
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        captured = {}

        def start_response(status, headers, exc_info=None):
            captured["status"] = status
            captured["headers"] = headers
            return lambda data: None

        result = self.app(environ, start_response)
        try:
            out = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return captured["status"], captured["headers"], out

    @staticmethod
    def json_error(start_response, status, code, message, extra=None):
        body = {"__type": DDB_ERROR + code, "message": message}
        body.update(extra or {})
        data = json.dumps(body).encode()
        start_response(
            status,
            [
                ("Content-Type", "application/x-amz-json-1.0"),
                ("Content-Length", str(len(data))),
                ("x-amzn-RequestId", str(uuid.uuid4())),
            ],
        )
        return [data]

    @staticmethod
    def xml_error(start_response, status, code, message):
        data = (
            '<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">'
            f"<Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
        ).encode()
        start_response(
            status, [("Content-Type", "text/xml"), ("Content-Length", str(len(data)))]
        )
        return [data]

    def error(self, start_response, query, status, code, message, extra=None):
        if query:
            return self.xml_error(start_response, status, code, message)
        return self.json_error(start_response, status, code, message, extra)

    def count(self, what):
        self.token_stats[what] = self.token_stats.get(what, 0) + 1

    # -- control API ------------------------------------------------------

    def control(self, environ, body, start_response):
        name = urllib.parse.unquote(environ.get("PATH_INFO", "")[len(CONTROL):])
        method = environ.get("REQUEST_METHOD")
        status, answer = "200 OK", {}
        verb = None
        for suffix in ("/split", "/shards"):
            if name.endswith(suffix):
                name, verb = name[: -len(suffix)], suffix[1:]
        with self.lock, self.state:
            try:
                if verb is not None:
                    s = self.sets.get(name)
                    if s is None or s.vstream is None:
                        raise ValueError(f"rule set {name!r} has no stream_shards")
                    table = find_table(s.shards_match)
                    if table is None or table.stream_shard is None:
                        raise ValueError(f"no table with a stream matches {s.shards_match!r}")
                    if verb == "split" and method == "POST":
                        want = json.loads(body or b"{}").get("shard")
                        answer = s.vstream.split(table, want)
                    else:
                        answer = {"shards": s.vstream.describe(table, counts=True)}
                elif method == "PUT":
                    self.sets[name] = RuleSet(json.loads(body or b"{}"))
                elif method == "DELETE":
                    s = self.sets.pop(name, None)
                    answer = {"injected": s.injected if s else {}}
                else:
                    s = self.sets.get(name)
                    answer = {"injected": s.injected if s else {}}
                answer["tokens"] = dict(self.token_stats)
            except (ValueError, TypeError) as e:
                status, answer = "400 Bad Request", {"error": str(e)}
        data = json.dumps(answer).encode()
        start_response(
            status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        )
        return [data]

    # -- requests ---------------------------------------------------------

    def __call__(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length:
            body = environ["wsgi.input"].read(length)
        elif "chunked" in environ.get("HTTP_TRANSFER_ENCODING", ""):
            body = environ["wsgi.input"].read()
        else:
            body = b""
        if environ.get("PATH_INFO", "").startswith(CONTROL):
            return self.control(environ, body, start_response)

        target = environ.get("HTTP_X_AMZ_TARGET", "")
        query = False
        form = {}
        if target:
            op = target.rsplit(".", 1)[-1]
        else:
            ctype = environ.get("CONTENT_TYPE", "")
            if "x-www-form-urlencoded" in ctype:
                form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
            op = (form.get("Action") or [""])[0]
            query = bool(op)
        text = body.decode("utf-8", "replace")

        if target.startswith("DynamoDBStreams") and op in (
            "DescribeStream", "GetShardIterator", "GetRecords"
        ):
            answer = self.streams(op, body, text, environ)
            if answer is not None:
                data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                start_response(
                    "200 OK",
                    [
                        ("Content-Type", "application/x-amz-json-1.0"),
                        ("Content-Length", str(len(data))),
                    ],
                )
                return [data]

        if op == "PublishBatch" and query:
            size = publish_batch_bytes(form)
            if size > SNS_BATCH_BYTES:
                return self.xml_error(
                    start_response,
                    "400 Bad Request",
                    "BatchRequestTooLong",
                    f"The length of all the messages put together is more than the limit "
                    f"({size} > {SNS_BATCH_BYTES} bytes).",
                )

        with self.state:
            rule = None
            for s in self.sets.values():
                rule = s.pick(op, text)
                if rule:
                    break
        fault = rule["fault"] if rule else None

        token = None
        if op == "TransactWriteItems" and target:
            request = json.loads(body)
            token = request.pop("ClientRequestToken", None)
            if token is not None:
                params = json.dumps(request, sort_keys=True)
                now = time.monotonic()
                with self.state:
                    seen = self.tokens.get(token)
                    if seen and not seen["inflight"] and now - seen["at"] > TOKEN_WINDOW:
                        seen = None
                    if seen:
                        if seen["params"] != params:
                            self.count("IdempotentParameterMismatch")
                            return self.json_error(
                                start_response, "400 Bad Request",
                                "IdempotentParameterMismatchException",
                                "The request uses the same client token as a previous, "
                                "but non-identical request.",
                            )
                        if seen["inflight"]:
                            self.count("TransactionInProgress")
                            return self.json_error(
                                start_response, "400 Bad Request",
                                "TransactionInProgressException",
                                "Transaction with the given request token is already in progress.",
                            )
                    if seen and seen.get("body") is not None:
                        self.count("replayed")
                        data = seen["body"]
                        start_response(
                            "200 OK",
                            [
                                ("Content-Type", "application/x-amz-json-1.0"),
                                ("Content-Length", str(len(data))),
                                ("x-amzn-RequestId", str(uuid.uuid4())),
                            ],
                        )
                        return [data]
                    self.tokens[token] = {"params": params, "inflight": True, "at": now}
                    if len(self.tokens) > 100_000:
                        cutoff = now - TOKEN_WINDOW
                        for t in [t for t, v in self.tokens.items()
                                  if not v["inflight"] and v["at"] < cutoff]:
                            del self.tokens[t]

        def forget():
            # Refused before it reached the transaction: the token is unused.
            if token is not None:
                with self.state:
                    self.tokens.pop(token, None)

        def finish(answer):
            # Completed: the token stays bound to these parameters for 10
            # minutes; after a success, a repeat gets the same answer.
            if token is not None:
                with self.state:
                    self.tokens[token] = {
                        "params": self.tokens[token]["params"], "inflight": False,
                        "at": time.monotonic(), "body": answer,
                    }

        if fault in ("throttle", "throughput", "internal") or (
            fault == "in-progress" and op == "TransactWriteItems"
        ):
            forget()
        if fault == "throttle":
            return self.error(
                start_response, query, "400 Bad Request", "ThrottlingException",
                "Rate of requests exceeds the allowed throughput.",
            )
        if fault == "throughput":
            return self.error(
                start_response, query, "400 Bad Request",
                "ProvisionedThroughputExceededException",
                "The level of configured provisioned throughput for the table was exceeded.",
            )
        if fault == "internal":
            return self.error(
                start_response, query, "500 Internal Server Error", "InternalServerError",
                "Internal server error",
            )
        if fault == "conflict":
            if op == "TransactGetItems":
                # A TransactGetItems meeting a transaction in flight on one of
                # its items is cancelled with a TransactionConflict reason.
                n = len(json.loads(body).get("TransactItems", [])) or 1
                hit = random.randrange(n)
                reasons = [
                    {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
                    if i == hit else {"Code": "None"}
                    for i in range(n)
                ]
                codes = ", ".join(r["Code"] for r in reasons)
                return self.json_error(
                    start_response, "400 Bad Request", "TransactionCanceledException",
                    f"Transaction cancelled, please refer cancellation reasons for specific "
                    f"reasons [{codes}]",
                    {"CancellationReasons": reasons},
                )
            if op == "TransactWriteItems":
                n = len(json.loads(body).get("TransactItems", [])) or 1
                hit = random.randrange(n)
                reasons = [
                    {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
                    if i == hit else {"Code": "None"}
                    for i in range(n)
                ]
                codes = ", ".join(r["Code"] for r in reasons)
                finish(None)
                return self.json_error(
                    start_response, "400 Bad Request", "TransactionCanceledException",
                    f"Transaction cancelled, please refer cancellation reasons for specific "
                    f"reasons [{codes}]",
                    {"CancellationReasons": reasons},
                )
            if op in ("UpdateItem", "PutItem", "DeleteItem"):
                return self.json_error(
                    start_response, "400 Bad Request", "TransactionConflictException",
                    "Transaction is ongoing for the item",
                )
            fault = None
        if fault == "in-progress" and op == "TransactWriteItems":
            return self.json_error(
                start_response, "400 Bad Request", "TransactionInProgressException",
                "Transaction with the given request token is already in progress.",
            )

        if fault == "slow":
            time.sleep(float(rule.get("delay_ms", 200)) / 1000.0)
        try:
            status, headers, out = self.moto(environ, body)
        except BaseException:
            forget()
            raise
        finish(out if status.startswith("200") else None)
        if fault == "lost":
            # The request was applied; its answer never reaches the caller.
            return self.error(
                start_response, query, "500 Internal Server Error", "InternalServerError",
                "Internal server error (the fidelity layer dropped the answer)",
            )
        start_response(status, headers)
        return [out]


SHARDS_PER_PAGE = 100  # DynamoDB Streams' DescribeStream page
FAKE = "-fidelity"


def fake_shard_id(i):
    return f"shardId-00000000000000000000-{i:08d}{FAKE}"


def streams_extra(self, op, body, text, environ):
    """DynamoDB Streams with more shards than moto's one: extra closed,
    empty shards before the real ones (the last of them their parent), or
    virtual shards over moto's one (`stream_shards`); DescribeStream paged
    by 100 shards as on AWS. None: not handled."""
    request = json.loads(body or b"{}")
    virtual = self.virtual_streams(op, request, text, environ)
    if virtual is not None:
        return virtual
    if op == "GetShardIterator" and request.get("ShardId", "").endswith(FAKE):
        return {"ShardIterator": "fidelity|" + request["ShardId"]}
    if op == "GetRecords" and request.get("ShardIterator", "").startswith("fidelity|"):
        return {"Records": []}  # closed and read to its end
    if op != "DescribeStream":
        return None
    with self.state:
        extra = 0
        for s in self.sets.values():
            if s.extra_shards and s.shards_match and s.shards_match in text:
                extra = s.extra_shards
                break
    if not extra:
        return None
    plain = dict(request)
    plain.pop("ExclusiveStartShardId", None)
    plain.pop("Limit", None)
    status, _, out = self.moto(environ, json.dumps(plain).encode())
    if not status.startswith("200"):
        return None
    answer = json.loads(out)
    desc = answer["StreamDescription"]
    fakes = [
        {
            "ShardId": fake_shard_id(i),
            "SequenceNumberRange": {
                "StartingSequenceNumber": "1",
                "EndingSequenceNumber": "1",
            },
        }
        for i in range(extra)
    ]
    reals = desc.get("Shards", [])
    for shard in reals:
        shard.setdefault("ParentShardId", fake_shard_id(extra - 1))
    shards = fakes + reals
    start = 0
    after = request.get("ExclusiveStartShardId")
    if after:
        ids = [sh["ShardId"] for sh in shards]
        start = ids.index(after) + 1 if after in ids else len(shards)
    page = shards[start:start + min(int(request.get("Limit", SHARDS_PER_PAGE)), SHARDS_PER_PAGE)]
    desc["Shards"] = page
    if start + len(page) < len(shards):
        desc["LastEvaluatedShardId"] = page[-1]["ShardId"]
    else:
        desc.pop("LastEvaluatedShardId", None)
    return answer


Fidelity.streams = streams_extra


VSHARD = "-vshard"
VITER = "vshard|"
SCAN_LIMIT = 20_000  # records one GetRecords call looks at, at most


def find_table(name_part):
    """moto's table whose name contains `name_part` (any account, region)."""
    from moto.dynamodb.models import dynamodb_backends

    for _, regions in list(dynamodb_backends.items()):
        for _, backend in list(regions.items()):
            for name, table in list(backend.tables.items()):
                if name_part in name:
                    return table
    return None


def record_seq(record):
    return int(record.record["dynamodb"]["SequenceNumber"])


def json_default(o):
    """Stream records as moto holds them: datetimes as epoch seconds,
    binary values as raw bytes (base64 on the wire)."""
    if hasattr(o, "timestamp"):
        return o.timestamp()
    if isinstance(o, (bytes, bytearray)):
        return base64.b64encode(o).decode("ascii")
    if hasattr(o, "to_json"):
        return o.to_json()
    raise TypeError(f"not JSON: {type(o)}")


class VirtualStream:
    """Shards of one table's stream, served by the layer over moto's single
    shard: `n` roots at first, more after each live split. Which shard a
    record is in is a pure function of its partition key, its sequence
    number and the splits so far, so every reader sees the same shards."""

    def __init__(self, n):
        self.n = n
        self.shards = []  # in creation order
        self.by_id = {}
        self.counter = 0
        for _ in range(n):
            self.new_shard(None, None)

    def new_shard(self, parent, start):
        self.counter += 1
        shard = {
            "id": f"shardId-{int(time.time() * 1000):020d}-{self.counter:08x}{VSHARD}",
            "parent": parent["id"] if parent else None,
            "start": start,  # None: the table stream's first sequence number
            "end": None,  # None: open
            "children": [],
        }
        self.shards.append(shard)
        self.by_id[shard["id"]] = shard
        return shard

    @staticmethod
    def key_of(table, record):
        keys = record.record["dynamodb"]["Keys"]
        return json.dumps(keys.get(table.hash_key_attr), sort_keys=True)

    def shard_of(self, key, seq):
        h = zlib.crc32(key.encode())
        shard = self.shards[h % self.n]
        while shard["children"] and seq > shard["end"]:
            pick = zlib.crc32((key + "|" + shard["id"]).encode()) & 1
            shard = shard["children"][pick]
        return shard

    @staticmethod
    def bounds(table):
        shard = table.stream_shard
        first = shard.starting_sequence_number
        return first, first + len(shard.items) - 1

    def describe(self, table, counts=False):
        first, last = self.bounds(table)
        tally = {}
        if counts:
            for r in table.stream_shard.items:
                sid = self.shard_of(self.key_of(table, r), record_seq(r))["id"]
                tally[sid] = tally.get(sid, 0) + 1
        out = []
        for sh in self.shards:
            d = {
                "id": sh["id"],
                "parent": sh["parent"],
                "start": str(sh["start"] if sh["start"] is not None else first),
                "end": None if sh["end"] is None else str(sh["end"]),
            }
            if counts:
                d["records"] = tally.get(sh["id"], 0)
            out.append(d)
        return out

    def split(self, table, want=None):
        first, last = self.bounds(table)
        open_shards = [sh for sh in self.shards if sh["end"] is None]
        if want is not None:
            shard = self.by_id.get(want)
            if shard is None or shard["end"] is not None:
                raise ValueError(f"no open shard {want!r}")
        else:
            tally = {}
            for r in table.stream_shard.items:
                sid = self.shard_of(self.key_of(table, r), record_seq(r))["id"]
                tally[sid] = tally.get(sid, 0) + 1
            shard = max(open_shards, key=lambda sh: tally.get(sh["id"], 0))
        shard["end"] = last
        shard["children"] = [self.new_shard(shard, last + 1), self.new_shard(shard, last + 1)]
        return {
            "closed": shard["id"],
            "children": [c["id"] for c in shard["children"]],
            "ending": str(last),
        }

    def records(self, table, shard_id, start, limit):
        """(records as JSON, next sequence number or None once a closed
        shard is read to its end)."""
        shard = self.by_id[shard_id]
        first, last = self.bounds(table)
        stop = last if shard["end"] is None else min(last, shard["end"])
        items = table.stream_shard.items
        out = []
        seq = max(start, first)
        scanned = 0
        while seq <= stop and len(out) < limit and scanned < SCAN_LIMIT:
            r = items[seq - first]
            if self.shard_of(self.key_of(table, r), seq) is shard:
                out.append(r.to_json())
            seq += 1
            scanned += 1
        if shard["end"] is not None and seq > shard["end"]:
            return out, None
        return out, seq


def virtual_streams(self, op, request, text, environ):
    """DynamoDB Streams of a table whose rule set has `stream_shards`."""
    if op == "GetRecords":
        it = request.get("ShardIterator", "")
        if not it.startswith(VITER):
            return None
        state = json.loads(urllib.parse.unquote(it[len(VITER):]))
    elif op == "GetShardIterator":
        if not request.get("ShardId", "").endswith(VSHARD):
            return None
        state = None
    else:
        state = None
    with self.state:
        vset = None
        for name, s in self.sets.items():
            if s.vstream is None:
                continue
            if state is not None and state["set"] == name:
                vset = (name, s)
            elif state is None and s.shards_match in text:
                vset = (name, s)
            if vset:
                break
    if vset is None:
        if op == "DescribeStream":
            return None
        raise KeyError("unknown virtual shard or iterator (its rule set is gone)")
    name, rules = vset
    vs = rules.vstream
    with self.lock:
        table = find_table(rules.shards_match)
        if op == "DescribeStream":
            status, _, out = self.moto_unlocked(environ, json.dumps(
                {"StreamArn": request["StreamArn"]}).encode())
            if not status.startswith("200"):
                return None
            answer = json.loads(out)
            desc = answer["StreamDescription"]
            shards = []
            for sh in vs.describe(table):
                d = {"ShardId": sh["id"], "SequenceNumberRange": {
                    "StartingSequenceNumber": sh["start"]}}
                if sh["end"] is not None:
                    d["SequenceNumberRange"]["EndingSequenceNumber"] = sh["end"]
                if sh["parent"]:
                    d["ParentShardId"] = sh["parent"]
                shards.append(d)
            start = 0
            after = request.get("ExclusiveStartShardId")
            if after:
                ids = [sh["ShardId"] for sh in shards]
                start = ids.index(after) + 1 if after in ids else len(shards)
            limit = min(int(request.get("Limit", SHARDS_PER_PAGE)), SHARDS_PER_PAGE)
            page = shards[start:start + limit]
            desc["Shards"] = page
            if start + len(page) < len(shards):
                desc["LastEvaluatedShardId"] = page[-1]["ShardId"]
            else:
                desc.pop("LastEvaluatedShardId", None)
            return answer
        if op == "GetShardIterator":
            sid = request["ShardId"]
            shard = vs.by_id[sid]
            first, last = vs.bounds(table)
            kind = request.get("ShardIteratorType", "TRIM_HORIZON")
            if kind == "TRIM_HORIZON":
                seq = shard["start"] if shard["start"] is not None else first
            elif kind == "LATEST":
                seq = last + 1
            elif kind == "AT_SEQUENCE_NUMBER":
                seq = int(request["SequenceNumber"])
            else:
                seq = int(request["SequenceNumber"]) + 1
            it = {"set": name, "shard": sid, "seq": seq}
            return {"ShardIterator": VITER + urllib.parse.quote(json.dumps(it))}
        if op == "GetRecords":
            limit = int(request.get("Limit") or 1000)
            records, nxt = vs.records(table, state["shard"], state["seq"], limit)
            answer = {"Records": records}
            if nxt is not None:
                state["seq"] = nxt
                answer["NextShardIterator"] = VITER + urllib.parse.quote(json.dumps(state))
            return json.dumps(answer, default=json_default).encode()
    return None


Fidelity.virtual_streams = virtual_streams


def publish_batch_bytes(form):
    """Bytes SNS counts against a PublishBatch's 256 KiB: every message with
    its attribute names, types and values."""
    total = 0
    for key, values in form.items():
        if not key.startswith("PublishBatchRequestEntries.member."):
            continue
        field = key.split(".", 3)[-1]
        if field == "Message" or field.startswith("MessageAttributes.entry."):
            if field.endswith(".Name") or field.endswith(".DataType") or field == "Message" \
                    or field.endswith(".StringValue") or field.endswith(".BinaryValue"):
                total += sum(len(v.encode("utf-8")) for v in values)
    return total


def transactions_without_table_copies():
    """moto backs a `TransactWriteItems` up by deep-copying every table it
    touches — once per item of the transaction, stream records included —
    and rolls a cancelled one back by putting the copies in the tables'
    place. So every transaction took time in proportion to everything its
    table ever held (the conformance race of 200 rounds went from 65 s to
    244 s as the store wrote more items), and a rolled-back table had a new
    stream shard object that shard iterators handed out before never saw
    again (a poller went silent after a cancelled transaction).

    This version does what DynamoDB does: every condition is checked
    against the state before the transaction (its operations name distinct
    items, so they cannot see each other's writes), a failed one cancels
    the transaction before anything is applied, and otherwise the
    operations are applied in order. Only a validation error part way
    (an item over 400 KB, a bad update expression) needs undoing: the items
    the transaction touches are backed up, and the stream's records cut
    back, under the server's global lock."""
    import copy

    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        MockValidationException,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )
    from moto.dynamodb.models import DynamoDBBackend

    if getattr(DynamoDBBackend.transact_write_items, "_without_table_copies", False):
        return

    def transact_write_items(self, transact_items):
        if len(transact_items) > 100:
            raise TooManyTransactionsException()
        ops = []
        seen = set()
        for item in transact_items:
            if len(item) > 1:
                raise TransactWriteSingleOpException
            op_type, op = next(iter(item.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise MockValidationException("Unsupported transaction operation")
            name = op["TableName"]
            table = self.get_table(name)
            if op_type == "Put":
                attrs = op["Item"]
                key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs[table.range_key_attr]
            else:
                key = op["Key"]
            ident = (name, str(dict(sorted(key.items()))))
            if ident in seen:
                raise MultipleTransactionsException()
            seen.add(ident)
            ops.append((op_type, op, name, table, key))

        errors = []
        for op_type, op, name, table, key in ops:
            current = self.get_item(name, key)
            condition = op.get("ConditionExpression")
            if condition is not None:
                check = get_filter_expression(
                    condition,
                    op.get("ExpressionAttributeNames"),
                    op.get("ExpressionAttributeValues"),
                )
                if not check.expr(current):
                    old = None
                    if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                        old = current.to_json()["Attributes"]
                    errors.append(("ConditionalCheckFailed", "The conditional request failed", old))
                    continue
            errors.append((None, None, None))
        if any(code is not None for code, _, _ in errors):
            raise TransactionCanceledException(errors)

        backups = [
            (name, key, copy.deepcopy(self.get_item(name, key)))
            for op_type, op, name, table, key in ops
            if op_type != "ConditionCheck"
        ]
        shards = {}
        for _, _, name, table, _ in ops:
            if table.stream_shard is not None:
                shards[name] = (table.stream_shard, len(table.stream_shard.items))
        done = 0
        try:
            for op_type, op, name, table, key in ops:
                if op_type == "Put":
                    self.put_item(name, op["Item"])
                elif op_type == "Delete":
                    self.delete_item(name, key)
                elif op_type == "Update":
                    self.update_item(
                        name,
                        key,
                        update_expression=op["UpdateExpression"],
                        expression_attribute_names=op.get("ExpressionAttributeNames"),
                        expression_attribute_values=op.get("ExpressionAttributeValues"),
                    )
                done += 1
        except Exception as e:
            for name, key, old in backups:
                if old is None:
                    if self.get_item(name, key) is not None:
                        self.delete_item(name, key)
                else:
                    self.put_item(name, old.to_json()["Attributes"])
            for shard, length in shards.values():
                del shard.items[length:]
            if isinstance(e, MockValidationException):
                raise
            failed = [(None, None, None)] * len(ops)
            failed[done] = (type(e).__name__, str(e), None)
            raise TransactionCanceledException(failed)

    transact_write_items._without_table_copies = True
    DynamoDBBackend.transact_write_items = transact_write_items


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    port = int(args[0]) if args else 0
    if port == 0:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    transactions_without_table_copies()
    app = Fidelity(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", port, app, threaded=True)
    print(f"port={server.server_port}", flush=True)
    if "--exit-with-stdin" in sys.argv:
        # The test process that started us holds our stdin: when it exits,
        # stdin closes and we follow.
        def watch():
            sys.stdin.read()
            os._exit(0)

        threading.Thread(target=watch, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
