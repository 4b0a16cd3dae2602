"""A fault-injecting HTTP proxy on 127.0.0.1 between Grace and a real vLLM server, for tests.

It forwards every request to the upstream server and counts them by path. A `Faults` policy decides, per
forwarded chat/completions request, whether to answer 503, 429 or 400 (with a vLLM-shaped error body), sleep
past the client's timeout, or drop the connection instead. Mode `down` drops every connection on every path,
the readiness probe's included: a server that is away (a pod restarting behind its Service). Only ever listens
on and connects to loopback addresses.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

FAULT_PATHS = ("/v1/chat/completions", "/v1/completions")


@dataclass
class Faults:
    """What to do with each faultable request. `pass_first` requests pass before faults start."""

    mode: str = "pass"  # pass | 503 | 429 | 400 | slow | drop | mixed | down
    share: float = 1.0  # share of requests hit once faults are on
    pass_first: int = 0
    slow_s: float = 5.0
    seed: int = 0
    paths: tuple[str, ...] = FAULT_PATHS  # which request paths faults apply to
    message: str = "System role not supported"  # the error message of mode 400
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # a stage opens up to its concurrency (128 on the CPU build) connections at once
    allow_reuse_address = True  # a port a server just left (TIME_WAIT) can be taken over at once


class FaultProxy:
    """`rewrite`, when given, turns each forwarded request body into another (e.g. an older server's view).
    `port`: listen there (a server coming back where one was stopped); by default a free one."""

    def __init__(self, upstream: str, faults: Faults | None = None,
                 rewrite: Callable[[str, bytes], bytes] | None = None, expect_bearer: str | None = None,
                 port: int = 0) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults = faults or Faults()
        self.rewrite = rewrite
        self.expect_bearer = expect_bearer  # like a hosted API: 401 unless `Authorization: Bearer <key>`
        self.authorized: Counter[str] = Counter()  # path -> requests that carried the expected key
        self.counts: Counter[str] = Counter()  # path -> requests received
        self.injected: Counter[str] = Counter()  # fault kind -> times injected
        self.forwarded: Counter[str] = Counter()  # path -> requests passed upstream
        self._lock = threading.Lock()
        self._seen = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return

            def do_GET(self) -> None:
                proxy._handle(self, "GET")

            def do_POST(self) -> None:
                proxy._handle(self, "POST")

        self.server = _Server(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._client = httpx.Client(timeout=600, limits=httpx.Limits(max_connections=512))  # no wait for a slot

    def set(self, faults: Faults) -> None:
        with self._lock:
            self.faults = faults
            self._seen = 0

    def _decide(self, path: str) -> str:
        with self._lock:
            self.counts[path] += 1
            f = self.faults
            if f.mode == "down":
                self.injected["down"] += 1
                return "drop"
            if path not in f.paths:
                return "pass"
            self._seen += 1
            if f.mode == "pass" or self._seen <= f.pass_first or f.rng.random() >= f.share:
                return "pass"
            kind = f.rng.choice(["503", "429", "slow", "drop"]) if f.mode == "mixed" else f.mode
            self.injected[kind] += 1
            return kind

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        path = h.path.split("?")[0]
        if self.expect_bearer is not None:
            if h.headers.get("Authorization") != f"Bearer {self.expect_bearer}":
                self._reply(h, 401, b'{"error": {"message": "Incorrect API key provided", "code": 401}}')
                return
            with self._lock:
                self.authorized[path] += 1
        kind = self._decide(path)
        if kind in ("503", "429"):
            self._reply(h, int(kind), b'{"error": "injected fault"}')
            return
        if kind == "400":
            err = {"error": {"message": self.faults.message, "type": "BadRequestError", "param": None, "code": 400}}
            self._reply(h, 400, json.dumps(err).encode())
            return
        if kind == "drop":
            h.close_connection = True
            try:
                h.connection.shutdown(2)
            except OSError:
                pass
            return
        if kind == "slow":
            time.sleep(self.faults.slow_s)
        if self.rewrite is not None and body:
            body = self.rewrite(path, body)
        try:
            r = self._client.request(method, self.upstream + h.path, content=body,
                                     headers={"Content-Type": h.headers.get("Content-Type", "application/json")})
        except httpx.HTTPError as e:
            self._reply(h, 502, f'{{"error": "upstream: {type(e).__name__}"}}'.encode())
            return
        with self._lock:
            # structured-output requests (the extraction stage) are counted apart from the experiment's own
            self.forwarded[path + ("#structured" if b'"structured_outputs"' in body else "")] += 1
        self._reply(h, r.status_code, r.content)

    @staticmethod
    def _reply(h: BaseHTTPRequestHandler, code: int, body: bytes) -> None:
        try:
            h.send_response(code)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
        except OSError:
            pass

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._client.close()
