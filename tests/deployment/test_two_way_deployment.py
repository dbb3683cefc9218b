"""Two-way SMS in a real Airflow 3 deployment (`airflow standalone`: scheduler, triggerer, DAG processor,
API server): approvals answered by SMS and through the REST API, with the human-in-the-loop record
written by the real triggerer; an incoming STOP that starts a DAG run through an asset watcher, whose
cursor survives a restart of Airflow without replaying or missing a message."""

from __future__ import annotations

import json
import sqlite3
import time

from tests.conftest import conn_json
from tests.deployment.test_deployment import REPO, Deployment

SENDER = "+13155550100"
APPROVER = "+13151350100"
HITL_DAG = "example_easify_hitl_approval"


def wait_until(condition, timeout: float, what: str, deployment: Deployment):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}:\n{deployment.output()[-6000:]}")


def questions(sandbox) -> list[dict]:
    return [m for m in sandbox.ledger() if "Reply YES to approve" in m["message"]]


def hitl_detail(deployment: Deployment, run_id: str) -> dict:
    return deployment.get(f"dags/{HITL_DAG}/dagRuns/{run_id}/taskInstances/approve_load/-1/hitlDetails")


def approval_run(deployment: Deployment, sandbox, answer) -> tuple[str, dict]:
    """Trigger the approval DAG, answer it with ``answer(run_id)`` once the question is out, return the run."""
    asked = len(questions(sandbox))
    run_id = deployment.trigger(HITL_DAG)
    wait_until(lambda: len(questions(sandbox)) > asked, 120, "the question by SMS", deployment)
    wait_until(lambda: hitl_detail(deployment, run_id).get("subject"), 60, "the HITL request", deployment)
    deferred = lambda: deployment.get(f"dags/{HITL_DAG}/dagRuns/{run_id}/taskInstances/approve_load")["state"]  # noqa: E731
    wait_until(lambda: deferred() == "deferred", 60, "the deferral", deployment)
    # Airflow 3.3.2 marks the task failed ("state changed externally") if it resumes before the scheduler
    # has handled the exit of the workload that deferred, which can take it seconds; people answer later.
    exited = (
        f"Received executor event with state success for task instance TaskInstanceKey(dag_id='{HITL_DAG}', "
        f"task_id='approve_load', run_id='{run_id}'"
    )
    wait_until(lambda: exited in deployment.output(), 60, "the scheduler to see the deferral", deployment)
    answer(run_id)
    assert deployment.wait_for_run(HITL_DAG, run_id) == "success"
    tasks = {ti["task_id"]: ti["state"] for ti in deployment.task_instances(HITL_DAG, run_id)}
    return run_id, tasks


def stored_cursors(deployment: Deployment) -> list[dict]:
    with sqlite3.connect(deployment.home / "airflow.db") as db:
        rows = db.execute("SELECT key, value FROM asset_state_store").fetchall()
    return [json.loads(value) for key, value in rows if key.startswith("easify_inbound_cursor_")]


def opt_outs(deployment: Deployment) -> list[str]:
    response = deployment.api("GET", "variables/easify_opt_outs")
    return json.loads(response.json()["value"]) if response.ok else []


def keyword_runs(deployment: Deployment) -> list[dict]:
    return deployment.get("dags/example_easify_keyword_opt_out/dagRuns")["dag_runs"]


def test_approvals_and_inbound_sms_in_a_real_deployment(tmp_path, sandbox):
    sandbox.configure(pending_seconds=0.5, delivered_seconds=1)
    extra = {"send_per_minute": 0, "read_per_minute": 0, "timeout": 10}
    deployment = Deployment(tmp_path, {"AIRFLOW_CONN_EASIFY_DEFAULT": conn_json(sandbox.api_url, sandbox.token, extra)})
    hitl = (REPO / "example_dags" / f"{HITL_DAG}.py").read_text()
    # Faster polls, and no scheduled run of its own asking the approver while the test asks.
    hitl = hitl.replace("sms_poll_interval=30", "sms_poll_interval=1").replace('schedule="0 18 * * *"', "schedule=None")
    (deployment.dags / f"{HITL_DAG}.py").write_text(hitl)
    keyword = (REPO / "example_dags" / "example_easify_keyword_opt_out.py").read_text()
    assert "poll_interval=60" in keyword
    keyword = keyword.replace("poll_interval=60", "poll_interval=1")
    (deployment.dags / "example_easify_keyword_opt_out.py").write_text(keyword)
    try:
        deployment.start()

        # 1. Approved by an SMS reply: the triggerer writes the answer to the human-in-the-loop record.
        run_id, tasks = approval_run(deployment, sandbox, lambda _: sandbox.inject_incoming(SENDER, APPROVER, "yes"))
        assert tasks == {"approve_load": "success", "load": "success"}
        detail = hitl_detail(deployment, run_id)
        assert detail["response_received"] is True and detail["chosen_options"] == ["Approve"], detail

        # 2. Rejected by SMS: the load is skipped, and the record says Reject.
        run_id, tasks = approval_run(deployment, sandbox, lambda _: sandbox.inject_incoming(SENDER, APPROVER, "No."))
        assert tasks == {"approve_load": "success", "load": "skipped"}
        assert hitl_detail(deployment, run_id)["chosen_options"] == ["Reject"]

        # 3. Answered through Airflow's REST API while the task waits for SMS too.
        def answer_by_api(run_id: str) -> None:
            response = deployment.api(
                "PATCH", f"dags/{HITL_DAG}/dagRuns/{run_id}/taskInstances/approve_load/-1/hitlDetails",
                json={"chosen_options": ["Approve"], "params_input": {}},
            )
            assert response.ok, f"{response.status_code} {response.text[:2000]}"

        run_id, tasks = approval_run(deployment, sandbox, answer_by_api)
        assert tasks == {"approve_load": "success", "load": "success"}
        detail = hitl_detail(deployment, run_id)
        assert detail["chosen_options"] == ["Approve"] and detail["responded_by_user"] is not None, detail

        # 4. An incoming STOP starts the keyword DAG through the asset watcher; its task sees the payload.
        wait_until(lambda: stored_cursors(deployment), 120, "the watcher's first poll", deployment)
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

        # 5. Airflow stops; a STOP arrives meanwhile; after the restart it is handled once, the old one not again.
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

