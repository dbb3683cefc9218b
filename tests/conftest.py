"""Shared fixtures: a real Easify sandbox on 127.0.0.1 and hooks whose connections point at it."""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator

# Airflow reads its home at import time: give the test process a throwaway one first.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="easify-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("EASIFY_PACING_DIR", tempfile.mkdtemp(prefix="easify-pacing-"))

import pytest

from airflow_provider_easify.hooks.easify import EasifyHook
from airflow_provider_easify.sandbox import EasifySandbox, SandboxConfig

#: Hook settings for tests that are not about pacing or backoff: no client pacing, tiny backoff.
FAST = {"send_per_minute": 0, "read_per_minute": 0, "backoff_base": 0.01, "backoff_max": 0.05, "timeout": 5}


@pytest.fixture
def sandbox() -> Iterator[EasifySandbox]:
    server = EasifySandbox(config=SandboxConfig(pending_seconds=0.2, delivered_seconds=0.4))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def conn_json(url: str, token: str, extra: dict) -> str:
    return json.dumps({"conn_type": "easify", "host": url, "password": token, "extra": extra})


@pytest.fixture
def make_hook(sandbox: EasifySandbox, monkeypatch: pytest.MonkeyPatch) -> Callable[..., EasifyHook]:
    """Build a hook on its own connection (set through ``AIRFLOW_CONN_*``) pointing at the sandbox."""

    def factory(token: str | None = None, url: str | None = None, **extra: object) -> EasifyHook:
        conn_id = f"easify_test_{uuid.uuid4().hex[:8]}"
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{conn_id.upper()}",
            conn_json(url or sandbox.api_url, token or sandbox.token, {**FAST, **extra}),
        )
        return EasifyHook(easify_conn_id=conn_id)

    return factory


@pytest.fixture(scope="session")
def airflow_template_db(tmp_path_factory: pytest.TempPathFactory):
    from tests.airflow_runner import migrate_template

    return migrate_template(tmp_path_factory.mktemp("airflow_template"))


@pytest.fixture
def airflow_home(tmp_path, airflow_template_db, sandbox):
    """A throwaway Airflow whose ``easify_default`` connection points at the test's sandbox."""
    from tests.airflow_runner import AirflowHome

    extra = {"send_per_minute": 0, "read_per_minute": 0, "backoff_base": 0.05, "backoff_max": 0.2, "timeout": 5}
    return AirflowHome(
        tmp_path, airflow_template_db, {"AIRFLOW_CONN_EASIFY_DEFAULT": conn_json(sandbox.api_url, sandbox.token, extra)}
    )
