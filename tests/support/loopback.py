"""A tiny real HTTP server on 127.0.0.1 for a test that needs answers a real mltrail server
cannot give on cue (a proxy's 429, a hostile server recording what it is sent)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextlib.contextmanager
def loopback_server(
    handler: type[BaseHTTPRequestHandler], **state: object
) -> Iterator[ThreadingHTTPServer]:
    """Serve ``handler`` on a free loopback port in a daemon thread until the block ends;
    ``state`` is set as attributes of the server (what handlers read as ``self.server.x``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    for name, value in state.items():
        setattr(server, name, value)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


class Answering(BaseHTTPRequestHandler):
    """A quiet handler with :meth:`answer`, for the handlers of tests to build on."""

    def answer(
        self, status: int, body: bytes, content_type: str = "application/json", **headers: str
    ) -> None:
        """Send one whole answer (``headers`` by name, ``_`` for ``-``: ``Retry_After``)."""
        self.send_response(status)
        fields = {"Content-Type": content_type, "Content-Length": str(len(body))}
        for name, value in {**fields, **headers}.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass
