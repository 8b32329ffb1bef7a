#!/usr/bin/env python3
"""Serves moto's AWS emulator on 127.0.0.1 behind one global lock.

Stock `moto_server` handles requests on several threads without locking its
in-memory backends, so racing conditional writes can all "win". Real
DynamoDB serialises conditional writes per item; taking one global lock per
request gives the emulator that property (and more), so race tests mean
something.

Usage: server.py [PORT] [--exit-with-stdin]   (PORT 0 or absent: a free port)
Prints `port=N` on stdout once the socket is bound, then serves until killed.
"""

import os
import socket
import sys
import threading

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import make_server


class Locked:
    """WSGI middleware: one request at a time, response body included."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        with self.lock:
            result = self.app(environ, start_response)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        return [body]


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    port = int(args[0]) if args else 0
    if port == 0:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    app = Locked(DomainDispatcherApplication(create_backend_app))
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
