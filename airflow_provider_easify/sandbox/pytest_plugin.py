"""pytest plugin: the ``easify_sandbox`` fixture (registered by the package as a ``pytest11`` entry point).

A test gets a fresh sandbox on a free port, with ``AIRFLOW_CONN_EASIFY_DEFAULT`` pointing at it::

    def test_send(easify_sandbox):
        EasifyHook().send_sms("+13155550100", "+13151350000", "hi")
        assert len(easify_sandbox.ledger()) == 1

Mark a test ``@pytest.mark.easify_sandbox(send_limit=2, pending_seconds=0.1)`` to start the sandbox with
those :class:`SandboxConfig` fields (``token=...`` sets the token).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from .config import SandboxConfig
from .models import DEFAULT_TOKEN
from .server import EasifySandbox

CONN_ENV = "AIRFLOW_CONN_EASIFY_DEFAULT"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "easify_sandbox(**fields): SandboxConfig fields (and token) for the easify_sandbox fixture"
    )


@contextlib.contextmanager
def running_sandbox(monkeypatch: pytest.MonkeyPatch, **fields: Any) -> Iterator[EasifySandbox]:
    """Start a sandbox, point ``AIRFLOW_CONN_EASIFY_DEFAULT`` at it, stop it on exit."""
    token = str(fields.pop("token", DEFAULT_TOKEN))
    config = SandboxConfig()
    config.update(fields)
    sandbox = EasifySandbox(token=token, config=config).start()
    try:
        monkeypatch.setenv(CONN_ENV, sandbox.conn_uri_json())
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def easify_sandbox(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[EasifySandbox]:
    """A fresh Easify sandbox for one test, with ``AIRFLOW_CONN_EASIFY_DEFAULT`` set to its connection."""
    marker = request.node.get_closest_marker("easify_sandbox")
    fields = dict(marker.kwargs) if marker is not None else {}
    with running_sandbox(monkeypatch, **fields) as sandbox:
        yield sandbox
