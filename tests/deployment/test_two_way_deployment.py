"""Inbound SMS in a real Airflow 3 deployment (`airflow standalone`: scheduler, triggerer, DAG processor,
API server): an incoming STOP that starts a DAG run through an asset watcher, whose cursor survives a
restart of Airflow without replaying or missing a message; a HELP through a `MessageQueueTrigger(scheme=
"easify")` watcher. (Approvals: test_hitl_deployment.py.)"""

from __future__ import annotations

import json
import sqlite3
import time

from tests.conftest import conn_json
from tests.deployment.test_deployment import REPO, Deployment, wait_until

SENDER = "+13155550100"
HELP_DAG = "example_easify_keyword_help"


def stored_cursors(deployment: Deployment) -> list[dict]:
    with sqlite3.connect(deployment.home / "airflow.db") as db:
        rows = db.execute("SELECT key, value FROM asset_state_store").fetchall()
    return [json.loads(value) for key, value in rows if key.startswith("easify_inbound_cursor_")]


def opt_outs(deployment: Deployment) -> list[str]:
    response = deployment.api("GET", "variables/easify_opt_outs")
    return json.loads(response.json()["value"]) if response.ok else []


def keyword_runs(deployment: Deployment) -> list[dict]:
    return deployment.get("dags/example_easify_keyword_opt_out/dagRuns")["dag_runs"]


def test_inbound_sms_in_a_real_deployment(tmp_path, sandbox):
    sandbox.configure(pending_seconds=0.5, delivered_seconds=1)
    extra = {"send_per_minute": 0, "read_per_minute": 0, "timeout": 10}
    deployment = Deployment(tmp_path, {"AIRFLOW_CONN_EASIFY_DEFAULT": conn_json(sandbox.api_url, sandbox.token, extra)})
    keyword = (REPO / "example_dags" / "example_easify_keyword_opt_out.py").read_text()
    assert "poll_interval=60" in keyword
    keyword = keyword.replace("poll_interval=60", "poll_interval=1")
    (deployment.dags / "example_easify_keyword_opt_out.py").write_text(keyword)
    try:
        deployment.start()

        # 1. An incoming STOP starts the keyword DAG through the asset watcher; its task sees the payload.
        wait_until(lambda: len(stored_cursors(deployment)) >= 2, 120, "both watchers' first poll", deployment)
        sandbox.inject_incoming(SENDER, "+13151350001", "stop")
        sandbox.inject_incoming(SENDER, "+13151350002", "when is the sale?")  # no keyword: no run
        wait_until(lambda: "+13151350001" in opt_outs(deployment), 120, "the opt-out", deployment)
        [run] = keyword_runs(deployment)
        assert deployment.wait_for_run("example_easify_keyword_opt_out", run["dag_run_id"]) == "success"

        # The campaign skips the number that texted STOP.
        campaign = deployment.trigger("example_easify_campaign")
        assert deployment.wait_for_run("example_easify_campaign", campaign) == "success"
        reached = {m["receiver"] for m in sandbox.ledger() if m["message"].startswith("Spring sale")}
        assert reached == {"+13151350000", "+13151350002"}

        # 2. HELP starts the help DAG through its MessageQueueTrigger(scheme="easify") watcher: one answer.
        sandbox.inject_incoming(SENDER, "+13151350004", "Help")
        wait_until(lambda: deployment.get(f"dags/{HELP_DAG}/dagRuns")["dag_runs"], 120, "the HELP run", deployment)
        [run] = deployment.get(f"dags/{HELP_DAG}/dagRuns")["dag_runs"]
        assert deployment.wait_for_run(HELP_DAG, run["dag_run_id"]) == "success"
        answers = [m["receiver"] for m in sandbox.ledger() if m["message"].startswith("Easify demo: reply STOP")]
        assert answers == ["+13151350004"]

        # 3. Airflow stops; a STOP arrives meanwhile; after the restart it is handled once, the old one not again.
        deployment.stop()
        sandbox.inject_incoming(SENDER, "+13151350003", "STOP!")
        deployment.start()
        wait_until(lambda: "+13151350003" in opt_outs(deployment), 120, "the opt-out sent while Airflow was down",
                   deployment)
        time.sleep(5)
        assert len(keyword_runs(deployment)) == 2, "one run per STOP: nothing replayed after the restart"
        assert opt_outs(deployment) == ["+13151350001", "+13151350003"]
        assert "when is the sale?" not in deployment.output(), "texts are never logged"
    finally:
        deployment.stop()

