"""Schemathesis hooks for the run against the server's own OpenAPI document.

Each hook narrows what is *sent*, never what is checked, and only where the
document states a rule that OpenAPI cannot express or where the run would
otherwise be slow. Every narrowing is listed here with its reason.
"""

import base64

import schemathesis

from common import append_at_next_revision

# Long polls: `wait` may be 0-30 s, and a feed read past the end holds the
# request that long. Valid waits above 1 s are sent as 1 s so that a run
# stays short; out-of-range and malformed waits (negative data) are sent
# unchanged and must be a 400.
MAX_WAIT_SENT = 1


def _bound_wait(query):
    value = query.get("wait")
    if isinstance(value, bool):
        return
    if isinstance(value, int) and MAX_WAIT_SENT < value <= 30:
        query["wait"] = MAX_WAIT_SENT
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        if MAX_WAIT_SENT < int(value) <= 30:
            query["wait"] = str(MAX_WAIT_SENT)


def _is_page_key_of(value, stream_type):
    """Whether `value` looks like a key the server gave for the listing of
    `stream_type` (`s1\n<type>\n...`, base64url)."""
    if not isinstance(value, str) or not isinstance(stream_type, str):
        return False
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError:
        return False
    return raw.startswith(b"s1\n" + stream_type.encode() + b"\n")


@schemathesis.hook
def before_call(context, case, kwargs):
    op = case.operation.definition.raw.get("operationId")
    meta = case.meta
    positive = meta is not None and meta.generation.mode.is_positive
    if op == "appendEvent" and positive:
        append_at_next_revision(case)
    if op == "truncateStream" and positive and isinstance(case.body, dict):
        # beforeRevision must lie in 1 … the stream's revision (a 400
        # beyond it, tested in crates/http/tests/api/lifecycle.rs); OpenAPI
        # cannot tie a body field to the stream's state, so positive data
        # keeps the one bound every existing stream accepts.
        case.body["beforeRevision"] = 1
    query = case.query
    if not isinstance(query, dict):
        return
    if op in ("readFeed", "readTypeFeed"):
        _bound_wait(query)
    if not positive:
        return
    stream_type = (case.path_parameters or {}).get("streamType")
    if op == "listStreams" and not _is_page_key_of(query.get("next-page-key", ""), stream_type):
        # Page keys are opaque (documented on the parameter): only keys the
        # server gave for this type's listing are valid, which the stateful
        # phase sends through the nextPageKey link (which also carries keys
        # to other types' listings). Others are a 400 (tested in Rust:
        # crates/http/tests/api/schemathesis_findings.rs), so positive data
        # drops it.
        query.pop("next-page-key", None)
    if op == "readStream":
        # after-revision is for forward reads, before-revision for backward
        # reads (documented on both parameters; the other combination is a
        # 400, tested in crates/http/tests/api/schemathesis_findings.rs).
        # OpenAPI cannot state a dependency between parameters, so positive
        # data drops the parameter that does not apply.
        if query.get("direction") == "backward":
            query.pop("after-revision", None)
        else:
            query.pop("before-revision", None)
