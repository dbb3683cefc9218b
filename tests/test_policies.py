"""EasifyRetryPolicy: decisions on real Easify errors, and a real Airflow run that honours it."""

from __future__ import annotations

import pytest

from airflow_provider_easify.exceptions import (
    EasifyAuthError,
    EasifyInvalidParameterError,
    EasifyRateLimitError,
    EasifyServerError,
)
from airflow_provider_easify.policies import EasifyRetryPolicy, find_easify_error

try:
    from airflow.providers.common.compat.sdk import RetryAction
except (ImportError, AttributeError):  # Airflow < 3.3
    RetryAction = None

POLICY_DAG = """
import datetime as dt
import pendulum
from airflow.providers.common.compat.sdk import DAG, task
from airflow_provider_easify.hooks.easify import EasifyHook
from airflow_provider_easify.policies import EasifyRetryPolicy

with DAG("easify_policy", schedule=None, start_date=pendulum.datetime(2024, 1, 1, tz="UTC")):

    @task(retries=3, retry_delay=dt.timedelta(seconds=0), retry_policy=EasifyRetryPolicy())
    def revoked_token():
        EasifyHook("easify_revoked").list_phone_numbers()

    @task(retries=1, retry_delay=dt.timedelta(seconds=0), retry_policy=EasifyRetryPolicy())
    def flaky_server(ti=None):
        hook = EasifyHook()
        if ti.try_number == 1:
            hook._request("GET", "phone-numbers", max_retries=0)  # the sandbox answers 503 once
        return len(hook.list_phone_numbers())

    revoked_token()
    flaky_server()
"""


def test_find_easify_error_follows_causes():
    inner = EasifyAuthError("Unauthenticated", status_code=401)
    try:
        try:
            raise inner
        except EasifyAuthError as exc:
            raise RuntimeError("wrapped") from exc
    except RuntimeError as outer:
        assert find_easify_error(outer) is inner
    assert find_easify_error(ValueError("x")) is None


def test_policy_decisions_or_clear_error_on_old_airflow():
    if RetryAction is None:
        from airflow.providers.common.compat.sdk import AirflowOptionalProviderFeatureException

        with pytest.raises(AirflowOptionalProviderFeatureException, match=r"Airflow 3\.3"):
            EasifyRetryPolicy()
        return
    policy = EasifyRetryPolicy()
    assert policy.evaluate(EasifyAuthError("no", status_code=401), 1, 4).action == RetryAction.FAIL
    assert policy.evaluate(EasifyInvalidParameterError("to_number", "1", "E.164"), 1, 4).action == RetryAction.FAIL
    limited = policy.evaluate(EasifyRateLimitError("wait", retry_after=42, status_code=429), 1, 4)
    assert limited.action == RetryAction.RETRY and limited.retry_delay.total_seconds() == 42
    assert policy.evaluate(EasifyServerError("boom", status_code=500), 1, 4).action == RetryAction.DEFAULT
    assert policy.evaluate(KeyError("other"), 1, 4).action == RetryAction.DEFAULT


def test_policy_in_a_real_run(airflow_home, sandbox):
    airflow_home.env["AIRFLOW_CONN_EASIFY_REVOKED"] = (
        f'{{"conn_type": "easify", "host": "{sandbox.api_url}", "password": "revoked"}}'
    )
    sandbox.add_fault("phone-numbers", "http_error", status=503, times=1)
    airflow_home.add_dag("easify_policy", POLICY_DAG)
    result = airflow_home.dags_test("easify_policy")
    if RetryAction is None:  # Airflow < 3.3: the DAG file is refused with a clear reason, nothing runs
        assert result.state is None and "EasifyRetryPolicy needs Airflow 3.3" in result.output
        assert sandbox.stats()["total"] == 0
        return
    assert result.tasks == {"revoked_token": "failed", "flaky_server": "success"}
    assert result.tries == {"revoked_token": 1, "flaky_server": 2}
    assert result.xcoms["flaky_server"] == 3
