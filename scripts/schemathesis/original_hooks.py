"""Schemathesis hooks for the run against the original service's document
(../shared/seed/original-openapi.json, positive data).

The original document is looser than the contract both services keep, and
lists no error answers. This hook narrows it to the intended differences
written in README.md, section "Differences from the original service"; each
change below names the item of that section. Nothing else is changed, and
every check stays on.
"""

import schemathesis

from common import append_at_next_revision

# Same rules as the server's own document (crates/core/src/openapi.rs).
STREAM_TYPE = {
    "type": "string",
    "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$",
    "minLength": 1,
    "maxLength": 100,
}
_NOT_CTRL = r"\u0000-\u001f\u007f-\u009f"
_NOT_CTRL_OR_SPACE = _NOT_CTRL + r" \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
EVENT_TYPE = {
    "type": "string",
    "pattern": rf"^[^{_NOT_CTRL_OR_SPACE}](?:[^{_NOT_CTRL}]{{0,198}}[^{_NOT_CTRL_OR_SPACE}])?$",
    "minLength": 1,
    "maxLength": 200,
}
MAX_COUNTER = 9223372036854775807
ERROR_BODY = {
    "type": "object",
    "required": ["code", "message", "requestId"],
    "properties": {
        "code": {"type": "string"},
        "message": {"type": "string"},
        "requestId": {"type": "string"},
    },
}


@schemathesis.hook
def before_load_schema(context, raw_schema):
    schemas = raw_schema["components"]["schemas"]
    new_event = schemas["NewEvent"]
    # Difference 2: event types follow our rule.
    new_event["properties"]["eventType"].update(EVENT_TYPE)
    # Difference 4: the optional eventId and metadata of our NewEvent are
    # typed (a UUID, an object), so the original's "any extra property" is
    # narrowed to them.
    new_event["properties"]["eventId"] = {"type": "string", "format": "uuid"}
    new_event["properties"]["metadata"] = {"type": "object"}

    for path, item in raw_schema["paths"].items():
        for method, op in item.items():
            for param in op.get("parameters", []):
                name, schema = param["name"], param["schema"]
                if name == "streamType":
                    # Difference 1: stream types follow our rule.
                    schema.update(STREAM_TYPE)
                elif name == "streamRevision":
                    # Difference 3: revisions are 1..2^63-1 (a 400 otherwise).
                    schema.update({"minimum": 1, "maximum": MAX_COUNTER})
                elif name == "after-revision":
                    schema.update({"minimum": 0, "maximum": MAX_COUNTER})
            body = op.get("requestBody")
            if body is not None:
                # Difference 5: the body and its one event are required.
                body["required"] = True
                schema = body["content"]["application/json"]["schema"]
                schema["required"] = list(schema["properties"])
            if "{streamId}" in path:
                # Difference 6: an unknown stream is a 404 with our error
                # body (the original document lists no error answers).
                op["responses"].setdefault(
                    "404",
                    {
                        "description": "No such stream.",
                        "content": {"application/json": {"schema": ERROR_BODY}},
                    },
                )


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.operation.method.upper() == "PUT":
        append_at_next_revision(case)
