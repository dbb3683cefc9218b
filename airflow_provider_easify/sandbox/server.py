"""HTTP plumbing: the request handler (auth, rate limits, faults, routing) and :class:`EasifySandbox`."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import BaseServer, TCPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from . import api, control
from .client import SandboxClient
from .config import SandboxConfig
from .forms import parse_body, parse_query
from .models import (
    BAD_GATEWAY,
    BASIC_TOKEN,
    DEFAULT_TOKEN,
    ENTERPRISE_ONLY,
    EXPIRED_TOKEN,
    MALFORMED_BODY,
    NOT_FOUND,
    RECHARGE,
    SERVER_ERROR,
    UNAUTHENTICATED,
    Upload,
    failure,
)
from .state import Outage, RequestRecord, SandboxState

#: Request bodies above this answer 413.
MAX_BODY_BYTES = 64 * 1024 * 1024


class _BodyError(Exception):
    pass


class SandboxHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that knows its open connections, to cut them on :meth:`close_connections`."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], state: SandboxState) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.state = state
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        #: Set when the server shuts down: requests held by a ``timeout`` outage stop waiting.
        self.closing = threading.Event()
        super().__init__(address, SandboxHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can take seconds.
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def shutdown(self) -> None:
        self.closing.set()
        super().shutdown()

    def close_connections(self) -> None:
        self.closing.set()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionError, TimeoutError)):
            return  # the client went away (e.g. it timed out during a ``slow`` fault)
        BaseServer.handle_error(self, request, client_address)


class SandboxHandler(BaseHTTPRequestHandler):
    server: SandboxHTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "EasifySandbox/1.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed after this many seconds
    #: The /api/v2 request being handled, until its answer is counted.
    _record: RequestRecord | None = None

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_OPTIONS(self) -> None:
        self._dispatch("OPTIONS")

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.state.config.log_requests:
            sys.stderr.write(f"easify-sandbox {self.address_string()} {format % args}\n")

    # ------------------------------------------------------------------ plumbing

    @property
    def state(self) -> SandboxState:
        return self.server.state

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            size = 0
            while True:
                line = self.rfile.readline(65537)
                length = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if length == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                size += length
                if size > MAX_BODY_BYTES:
                    raise _BodyError
                chunks.append(self.rfile.read(length))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise _BodyError
        return self.rfile.read(length) if length > 0 else b""

    def _reply_raw(
        self,
        status: int,
        data: bytes,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> int:
        """Write the whole response in one write (two small writes on a keep-alive connection meet
        Nagle's algorithm and the peer's delayed ACK: a 40 ms stall per response).

        The status is counted in the stats *before* the write, so a client that has its answer
        always finds it in ``/_sandbox/stats``."""
        self._count(status)
        self.log_request(status)
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        lines = [
            f"{self.protocol_version} {status} {phrase}",
            f"Server: {self.version_string()}",
            f"Date: {self.date_time_string()}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(data)}",
            *(f"{name}: {value}" for name, value in (headers or {}).items()),
        ]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head if self.command == "HEAD" else head + data)
        return status

    def _reply(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> int:
        return self._reply_raw(status, json.dumps(payload).encode("utf-8"), headers=headers)

    def _error_reply(self, status: int, body: str = "json", message: str | None = None) -> int:
        """An error answer without the work (an ``http_error`` fault, an ``html_5xx`` outage): the
        vendor's JSON (``message`` or "Server Error"), a gateway's HTML page or an empty body."""
        if body == "html":
            return self._reply_raw(status, gateway_page(status), "text/html")
        if body == "empty":
            return self._reply_raw(status, b"", "text/plain")
        return self._reply(status, failure(message or SERVER_ERROR))

    def _outage_reply(self, outage: Outage) -> int:
        """The answer of an endpoint that is down; nothing is done (a send is never recorded)."""
        if outage.mode == "html_5xx":
            return self._error_reply(outage.status or 503, "html")
        if outage.mode == "rate_limit":
            seconds = outage.retry_after if outage.retry_after is not None else 60
            return self._reply(
                429, failure(f"Too many requests. Try again in {seconds} seconds"), {"Retry-After": str(seconds)}
            )
        # timeout: hold the request, then close without answering (a server shutdown cuts the wait short).
        self.server.closing.wait(outage.delay or 0.0)
        return self._drop()

    def _drop(self) -> int:
        """Close the connection without answering (counted as status 0)."""
        self._count(0)
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        return 0

    def _count(self, status: int) -> None:
        """Record the answer of the /api/v2 request being handled (once)."""
        record, self._record = self._record, None
        if record is not None:
            self.state.finish_request(record, status)

    def _base_url(self) -> str:
        host = self.headers.get("Host")
        if not host:
            name, port = self.server.server_name, self.server.server_port
            host = f"[{name}]:{port}" if ":" in name else f"{name}:{port}"
        return f"http://{host}"

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, method: str) -> None:
        arrived = time.time()
        self._record = None
        try:
            split = urlsplit(self.path)
            path = split.path.rstrip("/") or "/"
            query = parse_query(split.query)
            try:
                body = self._read_body()
            except _BodyError:
                self.close_connection = True
                self._reply(413, failure("Payload Too Large"))
                return
            except ValueError:  # a Content-Length or chunk size that is not a number
                self.close_connection = True
                self._reply(400, failure("Bad Request"))
                return
            if path == "/_sandbox" or path.startswith("/_sandbox/"):
                self._control(method, path, query, body)
            elif path == "/api/v2" or path.startswith("/api/v2/"):
                self._api(method, path, query, body, arrived)
            else:
                self._reply(404, failure(NOT_FOUND))
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def _control(self, method: str, path: str, query: dict[str, str], body: bytes) -> None:
        try:
            verb = "GET" if method == "HEAD" else method
            status, payload = control.handle(self.state, verb, path, query, body)
        except Exception:  # noqa: BLE001 - a bug must not kill the connection silently
            traceback.print_exc()
            status, payload = 500, {"ok": False, "error": "internal sandbox error"}
        if isinstance(payload, Upload):
            self._reply_raw(status, payload.data, payload.content_type or "application/octet-stream")
        else:
            self._reply(status, payload)

    def _api(self, method: str, path: str, query: dict[str, str], body: bytes, arrived: float) -> None:
        allowed: tuple[str, ...]
        if path == api.SEND_PATH:
            endpoint, allowed = "send", ("POST",)
        elif path in api.READ_ENDPOINTS:
            endpoint, allowed = api.READ_ENDPOINTS[path][0], ("GET", "HEAD")
        else:
            self._record = self.state.begin_request("unknown", method, arrived)
            self._reply(404, failure(NOT_FOUND))
            return
        record = self._record = self.state.begin_request(endpoint, method, arrived)
        try:
            if method not in allowed:
                message = (
                    f"The {method} method is not supported for route {path.lstrip('/')}. "
                    f"Supported methods: {', '.join(allowed)}."
                )
                self._reply(405, failure(message), {"Allow": ", ".join(allowed)})
            else:
                self._api_request(endpoint, path, query, body, record)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
            raise
        except Exception:  # noqa: BLE001
            traceback.print_exc()
            if self._record is not None:  # nothing was answered yet
                self._reply(500, failure(SERVER_ERROR))
        finally:
            self._count(0)  # no-op when the answer was already counted

    def _authenticate(self) -> tuple[str | None, int]:
        """(token, 0) when the account may use the API, else (None, the status already answered)."""
        scheme, _, token = self.headers.get("Authorization", "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token:
            if token == self.state.token:
                return token, 0
            if token == EXPIRED_TOKEN:
                return None, self._reply(402, failure(RECHARGE))
            if token == BASIC_TOKEN:
                return None, self._reply(403, failure(ENTERPRISE_ONLY))
        return None, self._reply(401, failure(UNAUTHENTICATED))

    def _api_request(
        self, endpoint: str, path: str, query: dict[str, str], body: bytes, record: RequestRecord
    ) -> int:
        token, status = self._authenticate()
        if token is None:
            return status
        outage = self.state.take_outage(endpoint, record)
        if outage is not None:
            return self._outage_reply(outage)
        wait = self.state.take_rate(token, "send" if endpoint == "send" else "read", time.time())
        if wait is not None:
            return self._reply(429, failure(f"Too many requests. Try again in {wait} seconds"))

        fault = self.state.take_fault(endpoint, record)
        if fault is not None:
            if fault.hold > 0:
                time.sleep(fault.hold)
            if fault.kind == "http_error":
                return self._error_reply(fault.status, fault.body, fault.message)
            if fault.kind == "drop":
                return self._drop()
            if fault.kind == "slow":
                time.sleep(fault.delay)

        base_url = self._base_url()
        if endpoint == "send":
            fields, files = parse_body(self.headers.get("Content-Type", ""), body)
            status, payload = api.send(self.state, {**query, **fields}, files, base_url)
        else:
            status, payload = api.READ_ENDPOINTS[path][1](self.state, query, base_url)

        if fault is not None:
            if fault.kind == "malformed":
                return self._reply_raw(200, MALFORMED_BODY)
            if fault.kind == "recorded_502":
                return self._reply(502, failure(BAD_GATEWAY))
            if fault.kind == "recorded_drop":
                return self._drop()
        return self._reply(status, payload)


GATEWAY_PAGE = "<html><head><title>%d</title></head><body><center><h1>%d %s</h1></center></body></html>"


def gateway_page(status: int) -> bytes:
    """The HTML page a gateway (nginx, a load balancer) answers with ``status``, e.g. "503 Service Unavailable"."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return (GATEWAY_PAGE % (status, status, phrase)).encode("ascii")


class EasifySandbox(SandboxClient):
    """A local fake of the Easify REST API v2 in a daemon thread; see the package docstring.

    The control-API helpers (:meth:`ledger`, :meth:`stats`, :meth:`add_fault`, ...) are inherited from
    :class:`SandboxClient` and go over HTTP like any other client; :attr:`state` gives in-process access.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str = DEFAULT_TOKEN,
        config: SandboxConfig | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.token = token
        self.state = SandboxState(config or SandboxConfig(), token)
        self._server: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None
        super().__init__("")

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> EasifySandbox:
        """Start serving on ``host:port`` (a free port when 0) in a daemon thread; returns the sandbox."""
        if self._server is not None:
            return self
        server = SandboxHTTPServer((self.host, self.port), self.state)
        self.port = server.server_port
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"easify-sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread; a stopped sandbox can be started again."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> EasifySandbox:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ addresses

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (a wildcard bind address is shown as 127.0.0.1)."""
        if self._server is None:
            raise RuntimeError("the sandbox is not started; call start() first")
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else "::1" if self.host == "::" else self.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def api_url(self) -> str:
        return self.url + "/api/v2"

    @property
    def config(self) -> SandboxConfig:
        """The live configuration (change it with :meth:`configure`)."""
        return self.state.config

    @property
    def client(self) -> SandboxClient:
        """A plain control-API client for this sandbox (e.g. to hand to another thread)."""
        return SandboxClient(self.url)

    def conn_uri_json(self, extra: dict[str, Any] | None = None) -> str:
        """The value of ``AIRFLOW_CONN_EASIFY_DEFAULT`` pointing at this sandbox."""
        return json.dumps(
            {"conn_type": "easify", "host": self.api_url, "password": self.token, "extra": dict(extra or {})}
        )

    def __repr__(self) -> str:
        where = self.url if self._server is not None else "not started"
        return f"EasifySandbox({where})"
