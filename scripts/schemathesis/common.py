"""What both schemathesis runs share."""

import itertools
from urllib.parse import quote

import requests

_turn = itertools.count()


def append_at_next_revision(case):
    """Points every other valid `PUT .../events/{streamRevision}` at an
    existing stream and its next revision, as a client that has read the
    stream would (creating the stream first with the case's event when the
    generated id names none). Random revisions alone almost never hit the
    next one, so without this the success answer of that operation would
    go untested; the other half keeps random ids and revisions (404, 409).
    """
    params = case.path_parameters
    body = case.body
    if not isinstance(params, dict) or not isinstance(body, dict) or next(_turn) % 2:
        return
    event = body.get("event")
    stream_type = params.get("streamType")
    if not isinstance(event, dict) or not isinstance(stream_type, str):
        return
    base = case.operation.schema.get_base_url().rstrip("/")
    prefix = f"{base}/streams/{quote(stream_type, safe='')}"
    details = requests.get(f"{prefix}/{quote(str(params.get('streamId')), safe='')}/details", timeout=10)
    if details.status_code != 200:
        created = requests.post(prefix, json={"initialEvent": {k: v for k, v in event.items() if k != "eventId"}}, timeout=10)
        if created.status_code != 201:
            return
        details = created
    stream = details.json()["stream"]
    params["streamId"] = stream["streamId"]
    params["streamRevision"] = stream["revision"] + 1
