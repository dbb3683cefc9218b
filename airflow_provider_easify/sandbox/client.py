""":class:`SandboxClient`: Python helpers over the control API, for a sandbox in this or another process."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote


def _day(value: str | dt.date) -> str:
    return value.isoformat() if isinstance(value, dt.date) else str(value)


class SandboxError(RuntimeError):
    """A control-API call was refused (the sandbox's ``error`` text is the message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class SandboxClient:
    """Talks to the ``/_sandbox`` control API of a running sandbox at ``url`` (``http://HOST:PORT``)."""

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        self._url = url.rstrip("/")
        self.timeout = timeout

    @property
    def url(self) -> str:
        return self._url

    @property
    def api_url(self) -> str:
        return self.url + "/api/v2"

    def _call(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        import requests  # only the client needs requests; the server is standard library only

        response = requests.request(method, self.url + path, json=json, params=params, timeout=self.timeout)
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            message = body.get("error", response.text) if isinstance(body, dict) else response.text
            raise SandboxError(response.status_code, str(message))
        return body

    # ------------------------------------------------------------------ inspection

    def health(self) -> bool:
        """Whether the sandbox answers its health check."""
        return bool(self._call("GET", "/_sandbox/health").get("ok"))

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Poll the health endpoint until it answers (for a sandbox started in another process)."""
        import requests

        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.health():
                    return
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the sandbox at {self.url} did not answer within {timeout} s")
            time.sleep(0.05)

    def ledger(self) -> list[dict[str, Any]]:
        """Every message accepted by POST /sms/send, in send order."""
        return list(self._call("GET", "/_sandbox/ledger")["messages"])

    def stats(self) -> dict[str, Any]:
        """Request counts by endpoint and status, faults fired, and every request made."""
        return dict(self._call("GET", "/_sandbox/stats"))

    def get_config(self) -> dict[str, Any]:
        """The configuration in force."""
        return dict(self._call("GET", "/_sandbox/config"))

    def configure(self, **fields: Any) -> dict[str, Any]:
        """Partial update of the :class:`SandboxConfig`; returns the whole config."""
        return dict(self._call("POST", "/_sandbox/config", json=fields))

    def report_truth(
        self, from_date: str | dt.date, to_date: str | dt.date, **filters: Any
    ) -> list[dict[str, Any]]:
        """All report rows of the UTC days ``[from_date, to_date]``, oldest first, unpaginated, any range.

        ``filters``: ``sender``, ``receiver`` (+ ``country_code`` unless E.164), ``status``, ``order``.
        """
        params = {"from_date": _day(from_date), "to_date": _day(to_date), **filters}
        return list(self._call("GET", "/_sandbox/report", params=params)["data"])

    def media(self, sms_id: int | str, filename: str) -> bytes:
        """The bytes of a file uploaded with an MMS."""
        import requests

        response = requests.get(f"{self.url}/_sandbox/media/{sms_id}/{filename}", timeout=self.timeout)
        response.raise_for_status()
        return response.content

    # ------------------------------------------------------------------ control

    def add_fault(self, endpoint: str = "*", kind: str = "http_error", **kw: Any) -> list[dict[str, Any]]:
        """Inject a fault (``kw``: times, probability, status, delay); returns the active faults."""
        return self.add_faults([{"endpoint": endpoint, "kind": kind, **kw}])

    def add_faults(self, faults: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Inject several faults at once (see the package docstring); returns every fault now armed."""
        return list(self._call("POST", "/_sandbox/faults", json=faults)["faults"])

    def faults(self) -> list[dict[str, Any]]:
        """The faults armed."""
        return list(self._call("GET", "/_sandbox/faults")["faults"])

    def clear_faults(self) -> None:
        """Disarm every fault."""
        self._call("DELETE", "/_sandbox/faults")

    def start_outage(self, endpoint: str, mode: str = "html_5xx", **options: Any) -> dict[str, Any]:
        """Put one endpoint ("send", "report", "contacts", "phone-numbers", "chat-history") down until
        :meth:`end_outage`; every request to it, after auth, then gets:

        * ``mode="html_5xx"``: a gateway's HTML page with ``status`` (default 503, 500-599);
        * ``mode="timeout"``: no answer: the server holds the request ``delay`` seconds (default 30),
          then closes the connection;
        * ``mode="rate_limit"``: 429 with ``Retry-After: <retry_after>`` (default 60) and the vendor's
          "Too many requests" JSON.

        Replaces an outage already on that endpoint; returns the outage. Nothing is done by a request
        answered by an outage (a send is never recorded). :meth:`clear_faults` keeps outages,
        :meth:`reset` ends them.
        """
        path = f"/_sandbox/outages/{quote(endpoint, safe='')}"
        return dict(self._call("PUT", path, json={"mode": mode, **options})["outage"])

    def end_outage(self, endpoint: str) -> dict[str, Any] | None:
        """End the outage of ``endpoint``; returns it (with its ``hits``), or None when there was none."""
        outage = self._call("DELETE", f"/_sandbox/outages/{quote(endpoint, safe='')}")["outage"]
        return None if outage is None else dict(outage)

    def outages(self) -> list[dict[str, Any]]:
        """The outages on, one per endpoint that is down."""
        return list(self._call("GET", "/_sandbox/outages")["outages"])

    @contextlib.contextmanager
    def outage(self, endpoint: str, mode: str = "html_5xx", **options: Any) -> Iterator[dict[str, Any]]:
        """``with sandbox.outage("report", mode="timeout", delay=2): ...``: :meth:`start_outage` on entry,
        :meth:`end_outage` on exit (also when the block raises); yields the outage."""
        started = self.start_outage(endpoint, mode, **options)
        try:
            yield started
        finally:
            self.end_outage(endpoint)

    def inject_incoming(
        self,
        sender: str,
        receiver: str,
        message: str,
        country_code: str | None = None,
        created_ts: float | None = None,
    ) -> dict[str, Any]:
        """Record a reply from ``receiver`` to the account number ``sender``; returns the report row."""
        payload: dict[str, Any] = {"sender": sender, "receiver": receiver, "message": message}
        if country_code is not None:
            payload["country_code"] = country_code
        if created_ts is not None:
            payload["created_ts"] = created_ts
        return dict(self._call("POST", "/_sandbox/incoming", json=payload))

    def reset(self, config: bool = False) -> None:
        """Clear ledger, stats, faults, outages, rate windows and injected messages, and re-seed the data.

        ``config=True`` also restores the configuration the sandbox was started with.
        """
        self._call("POST", "/_sandbox/reset", json={"config": config})

    def generate_report(
        self, from_date: str | dt.date, to_date: str | dt.date, per_day: int, clear: bool = False
    ) -> dict[str, Any]:
        """Add ``per_day`` deterministic report rows on each day; ``clear`` drops the seeded rows first."""
        payload = {"from_date": _day(from_date), "to_date": _day(to_date), "per_day": per_day, "clear": clear}
        return dict(self._call("POST", "/_sandbox/report/generate", json=payload))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
