"""A real HTTP server on 127.0.0.1 for download tests, with faults a bad network shows.

Each served path has a :class:`Served` entry: its bytes, whether the server honours ``Range``,
status codes to answer first (e.g. two 500s), bodies to cut off after some bytes, a redirect
(``Location``), or a body trickled one byte at a time. Every request is recorded (path and
headers) so tests can assert what the client asked for.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Served:
    body: bytes
    ranges: bool = True  # honour "Range: bytes=N-"
    fail_first: list[int] = field(default_factory=list)  # statuses answered before the body
    retry_after: str | None = None  # a Retry-After header on those answers
    cut_after: list[int] = field(default_factory=list)  # the next bodies stop after N bytes
    etag: bool = True
    redirect: str | None = None  # answer 302 with this Location (a URL, or a path)
    trickle_s: float | None = None  # send the body one byte every trickle_s seconds
    gate: threading.Event | None = None  # the body waits for it (after the headers)


@dataclass
class Request:
    path: str
    headers: dict[str, str]


class Server:
    def __init__(self) -> None:
        self.files: dict[str, Served] = {}
        self.requests: list[Request] = []
        self.bytes_sent = 0
        self.stopping = threading.Event()  # set on exit: a trickling answer stops
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def asked(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == "/" + path.lstrip("/")]


def _handler(server: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # the connection closes after each response

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            server.requests.append(Request(self.path, dict(self.headers.items())))
            served = server.files.get(self.path)
            if served is None:
                self.send_error(404, "Not Found")
                return
            if served.redirect is not None:
                self.send_response(302)
                self.send_header("Location", served.redirect)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if served.fail_first:
                status = served.fail_first.pop(0)
                if served.retry_after is None:
                    self.send_error(status)
                    return
                self.send_response(status)
                self.send_header("Retry-After", served.retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body, start = served.body, 0
            etag = f'"{hashlib.md5(body).hexdigest()}"'
            asked = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
            if_range = self.headers.get("If-Range")
            if served.ranges and asked and (if_range is None or if_range == etag):
                start = int(asked.group(1))
                if start >= len(body):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            if served.ranges:
                self.send_header("Accept-Ranges", "bytes")
            if served.etag:
                self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            payload = body[start:]
            if served.gate is not None:
                self.wfile.flush()
                while not served.gate.wait(0.05):
                    if server.stopping.is_set():
                        return
            if served.cut_after:
                payload = payload[: served.cut_after.pop(0)]
            if served.trickle_s is not None:
                self._trickle(payload, served.trickle_s)
                return
            self.wfile.write(payload)
            server.bytes_sent += len(payload)

        def _trickle(self, payload: bytes, every_s: float) -> None:
            """One byte, then one more every ``every_s`` s, until the client goes away or the
            server stops."""
            for i in range(len(payload)):
                if i and server.stopping.wait(every_s):
                    return
                try:
                    self.wfile.write(payload[i : i + 1])
                    self.wfile.flush()
                except OSError:  # the client gave up
                    return
                server.bytes_sent += 1

    return Handler


@contextmanager
def http_server() -> Iterator[Server]:
    """A started server on 127.0.0.1 (a free port), stopped on exit."""
    server = Server()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    httpd.daemon_threads = True
    server._httpd = httpd
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
