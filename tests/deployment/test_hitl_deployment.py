"""The SMS approval in a real Airflow deployment (`airflow standalone`: scheduler, triggerer, DAG processor,
API server), on every Airflow line with human-in-the-loop (3.1+; the version matrix runs it with the
`standard` provider each line shipped with and with the newest): approved and rejected by SMS with the
record written by the real triggerer, and answered through Airflow's REST API while the SMS wait goes on."""

from __future__ import annotations

import re
import subprocess
import tempfile

from packaging.version import Version

from airflow_provider_easify.utils.hitl_support import airflow_version
from tests.conftest import conn_json
from tests.deployment.test_deployment import REPO, Deployment, wait_until

SENDER = "+13155550100"
APPROVER = "+13151350100"
HITL_DAG = "example_easify_hitl_approval"


def questions(sandbox) -> list[dict]:
    return [m for m in sandbox.ledger() if "Reply YES to approve" in m["message"]]


def hitl_detail(deployment: Deployment, run_id: str) -> dict:
    return deployment.get(f"dags/{HITL_DAG}/dagRuns/{run_id}/taskInstances/approve_load/-1/hitlDetails")


def run_day(detail: dict) -> str:
    return re.search(r"Load (\d{4}-\d\d-\d\d) into", detail["subject"])[1]


def required_actions_page(deployment: Deployment, run_id: str) -> str:
    """The task's Required Actions page as headless Chromium renders it (the UI is a JavaScript app)."""
    url = f"{deployment.base}/dags/{HITL_DAG}/runs/{run_id}/tasks/approve_load/required_actions"
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--virtual-time-budget=15000", "--dump-dom", url],
            capture_output=True, text=True, timeout=120,
        )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def approval_run(deployment: Deployment, sandbox, answer, look_in_a_browser: bool = False) -> tuple[str, dict]:
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
    if look_in_a_browser:
        page = required_actions_page(deployment, run_id)
        assert "Also asked by SMS to +1315***0100: reply YES or NO." in page, page[-3000:]
        assert "into the warehouse?" in page
    answer(run_id)
    assert deployment.wait_for_run(HITL_DAG, run_id) == "success"
    tasks = {ti["task_id"]: ti["state"] for ti in deployment.task_instances(HITL_DAG, run_id)}
    return run_id, tasks


def deploy_approval_dag(tmp_path, sandbox) -> Deployment:
    sandbox.configure(pending_seconds=0.5, delivered_seconds=1)
    extra = {"send_per_minute": 0, "read_per_minute": 0, "timeout": 10}
    deployment = Deployment(tmp_path, {"AIRFLOW_CONN_EASIFY_DEFAULT": conn_json(sandbox.api_url, sandbox.token, extra)})
    hitl = (REPO / "example_dags" / f"{HITL_DAG}.py").read_text()
    # Faster polls, and no scheduled run of its own asking the approver while the test asks.
    hitl = hitl.replace("sms_poll_interval=30", "sms_poll_interval=1").replace('schedule="0 18 * * *"', "schedule=None")
    (deployment.dags / f"{HITL_DAG}.py").write_text(hitl)
    return deployment


def test_approvals_by_sms_and_by_the_rest_api_in_a_real_deployment(tmp_path, sandbox):
    deployment = deploy_approval_dag(tmp_path, sandbox)
    try:
        deployment.start()

        # 1. Approved by an SMS reply: the triggerer writes the answer to the human-in-the-loop record.
        run_id, tasks = approval_run(deployment, sandbox, lambda _: sandbox.inject_incoming(SENDER, APPROVER, "yes"))
        assert tasks == {"approve_load": "success", "load": "success"}
        detail = hitl_detail(deployment, run_id)
        assert detail["response_received"] is True and detail["chosen_options"] == ["Approve"], detail
        # The record says where the question went; the approver gets the recorded answer back.
        assert detail["body"].endswith("\n\nAlso asked by SMS to +1315***0100: reply YES or NO."), detail["body"]
        assert [m["message"] for m in sandbox.ledger() if m["message"].startswith("Recorded:")] == [
            f"Recorded: Approve. (Load {run_day(detail)} into the warehouse?)"]

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

        sent = len(sandbox.ledger())
        # The UI serves all-admins without a login round trip from 3.2 on (on 3.1 the body is checked above).
        browser = airflow_version() >= Version("3.2.0")
        run_id, tasks = approval_run(deployment, sandbox, answer_by_api, look_in_a_browser=browser)
        assert tasks == {"approve_load": "success", "load": "success"}
        detail = hitl_detail(deployment, run_id)
        assert detail["chosen_options"] == ["Approve"] and detail["responded_by_user"] is not None, detail
        question, closed = sandbox.ledger()[sent:]
        assert "Reply YES to approve" in question["message"]
        assert closed["receiver"] == APPROVER and closed["message"] == (
            f"Closed: Load {run_day(detail)} into the warehouse? was answered in Airflow (Approve). No reply needed.")
    finally:
        deployment.stop()
