"""Deadline Alerts by SMS in a real Airflow deployment (`airflow standalone`): only a real scheduler notices
a missed deadline, and only a real triggerer awaits the notifier with the deadline's context. The example
DAG, with its deadlines shortened: a run that overruns texts the on-call number once per missed deadline,
with the default text (DAG, run, deadline, how late) and with the templated one."""

from __future__ import annotations

import re
import time

from tests.conftest import conn_json
from tests.deployment.test_deployment import REPO, Deployment

DAG_ID = "example_easify_deadline_alert"
ON_CALL = "+13151350200"


def test_a_run_that_misses_its_deadlines_texts_the_on_call_number_once_each(tmp_path, sandbox):
    extra = {"send_per_minute": 0, "read_per_minute": 0, "timeout": 10}
    deployment = Deployment(tmp_path, {"AIRFLOW_CONN_EASIFY_DEFAULT": conn_json(sandbox.api_url, sandbox.token, extra)})
    source = (REPO / "example_dags" / f"{DAG_ID}.py").read_text()
    for old, new in (("timedelta(minutes=30)", "timedelta(seconds=4)"), ("timedelta(hours=2)", "timedelta(seconds=8)"),
                     ("time.sleep(5)", "time.sleep(35)"), ('schedule="0 2 * * *"', "schedule=None")):
        assert old in source
        source = source.replace(old, new)
    (deployment.dags / f"{DAG_ID}.py").write_text(source)
    try:
        deployment.start()
        run_id = deployment.trigger(DAG_ID)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(alerts(sandbox)) < 2:
            time.sleep(1)
        assert deployment.wait_for_run(DAG_ID, run_id) == "success"
        time.sleep(5)  # nothing more comes
        texts = sorted(m["message"] for m in alerts(sandbox))
        assert len(texts) == 2, f"{texts}\n{deployment.output()[-6000:]}"
        default, templated = sorted(texts, key=lambda text: not text.startswith("Airflow: "))
        assert re.fullmatch(
            rf"Airflow: DAG {DAG_ID} missed its deadline of \d{{4}}-\d\d-\d\d \d\d:\d\d UTC, \d+ s late "
            rf"\(run {re.escape(run_id)}\)\.", default), default
        assert templated == (f"{DAG_ID} is still running 2 hours after it was queued (run {run_id}). "
                             "Escalating: call the data platform lead.")
        assert sandbox.token not in deployment.output()
    finally:
        deployment.stop()


def alerts(sandbox) -> list[dict]:
    return [m for m in sandbox.ledger() if m["receiver"] == ON_CALL]
