"""Packaging: provider registration, connection form, example DAGs parse cleanly."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from packaging.version import Version

from airflow_provider_easify.exceptions import EasifyConfigurationError
from airflow_provider_easify.get_provider_info import get_provider_info
from airflow_provider_easify.hooks.connection_fields import EXTRA_FIELDS
from airflow_provider_easify.hooks.easify import EasifyHook
from airflow_provider_easify.utils.hitl_support import HITL_MIN_AIRFLOW, airflow_version

REPO = Path(__file__).resolve().parents[1]
AIRFLOW_BIN = str(Path(sys.executable).parent / "airflow")


def test_provider_info_matches_airflow_schema():
    import airflow
    import jsonschema

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    info = get_provider_info()
    jsonschema.validate(info, schema)
    for section in ("hooks", "operators", "sensors", "triggers"):
        for entry in info[section]:
            for module in entry["python-modules"]:
                if module.endswith(".hitl") and airflow_version() < Version(HITL_MIN_AIRFLOW):
                    # An optional feature: ProvidersManager skips it quietly on older Airflow.
                    from airflow.exceptions import AirflowOptionalProviderFeatureException

                    with pytest.raises(AirflowOptionalProviderFeatureException):
                        importlib.import_module(module)
                    continue
                importlib.import_module(module)
    for transfer in info["transfers"]:
        importlib.import_module(transfer["python-module"])
    for notifier in info["notifications"]:
        module, _, name = notifier.rpartition(".")
        assert getattr(importlib.import_module(module), name)
    (conn_type,) = info["connection-types"]
    assert conn_type["connection-type"] == "easify" and conn_type["hook-name"] == "Easify"
    assert conn_type["ui-field-behaviour"]["relabeling"]["password"] == "API token"
    assert set(conn_type["conn-fields"]) == {field.name for field in EXTRA_FIELDS}
    assert info["documentation-url"].startswith("https://")


def test_airflow_cli_lists_provider_and_connection_type(tmp_path):
    env = {"AIRFLOW_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    providers = subprocess.run([AIRFLOW_BIN, "providers", "list"], env=env, capture_output=True, text=True, timeout=120)
    assert "airflow-provider-easify" in providers.stdout, providers.stderr[-2000:]
    hooks = subprocess.run([AIRFLOW_BIN, "providers", "hooks"], env=env, capture_output=True, text=True, timeout=120)
    line = next(line for line in hooks.stdout.splitlines() if line.startswith("easify "))
    assert "airflow_provider_easify.hooks.easify.EasifyHook" in line and "easify_conn_id" in line


def test_connection_form_both_ways():
    behaviour = EasifyHook.get_ui_field_behaviour()
    assert behaviour["relabeling"]["password"] == "API token"
    assert {"schema", "login", "port"} <= set(behaviour["hidden_fields"])
    try:
        import flask_appbuilder  # noqa: F401  (the Airflow 2 web UI)
    except ImportError:
        # Airflow 3 builds the form from conn-fields in the provider info instead.
        assert get_provider_info()["connection-types"][0]["conn-fields"]["timeout"]["schema"]["type"]
    else:
        widgets = EasifyHook.get_connection_form_widgets()
        assert set(widgets) == {field.name for field in EXTRA_FIELDS}
        from wtforms import ValidationError

        class Entered:
            data = "0"

        check = widgets["timeout"].kwargs["validators"][-1]  # Airflow 2's form refuses what the hook refuses
        with pytest.raises(ValidationError, match="timeout"):
            check(None, Entered())
        Entered.data = "0.5"
        check(None, Entered())


@pytest.mark.parametrize("field", [f for f in EXTRA_FIELDS if f.minimum is not None], ids=lambda f: f.name)
def test_the_form_and_the_hook_accept_the_same_values(field, monkeypatch):
    """What the form's schema allows at its edge the hook takes; what it refuses the hook refuses, naming it."""
    import jsonschema

    schema = field.schema()
    step = 1 if field.kind == "integer" else 0.05
    below = field.minimum - step

    def hook_with(value):
        conn = {"conn_type": "easify", "password": "t", "extra": {field.name: value}}
        monkeypatch.setenv("AIRFLOW_CONN_EASIFY_FORM", json.dumps(conn))
        return EasifyHook(easify_conn_id="easify_form")

    jsonschema.validate(field.minimum, schema)
    assert getattr(hook_with(field.minimum).settings, _SETTING.get(field.name, field.name)) == field.minimum
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(below, schema)
    with pytest.raises(EasifyConfigurationError, match=field.name):
        _ = hook_with(below).settings
    if field.kind == "integer":
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(field.minimum + 0.5, schema)
        with pytest.raises(EasifyConfigurationError, match=field.name):
            _ = hook_with(field.minimum + 0.5).settings


_SETTING = {"timezone": "server_timezone"}


def test_a_missing_token_names_the_field_not_a_temporary_connection_id(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_USUFVKVO", json.dumps({"conn_type": "easify", "host": "http://x"}))
    with pytest.raises(EasifyConfigurationError) as caught:
        _ = EasifyHook(easify_conn_id="usUfVkvo").settings
    assert "'API token'" in str(caught.value) and "usUfVkvo" not in str(caught.value)


def test_example_dags_import_cleanly_with_dagbag(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3
    except ImportError:
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]  # Airflow 2

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bag = DagBag(dag_folder=str(REPO / "example_dags"))
    # Asset watchers (and common.messaging) need Airflow 3, human-in-the-loop and Deadline Alerts 3.1.
    unavailable = set()
    if airflow_version() < Version("3.0.0"):
        unavailable.add("example_easify_keyword_opt_out.py")
    if airflow_version() < Version(HITL_MIN_AIRFLOW):  # Deadline Alerts are 3.1+ too
        unavailable |= {"example_easify_hitl_approval.py", "example_easify_deadline_alert.py"}
    assert {Path(path).name for path in bag.import_errors} == unavailable, bag.import_errors
    if "example_easify_keyword_opt_out.py" not in unavailable:
        assert {"example_easify_keyword_opt_out", "example_easify_keyword_help", "example_easify_campaign"} <= set(
            bag.dag_ids
        )
    if "example_easify_hitl_approval.py" not in unavailable:
        assert "example_easify_hitl_approval" in bag.dag_ids
    expected = {
        "example_easify_send_and_wait",
        "example_easify_daily_report_to_s3",
        "example_easify_bulk_reminders",
        "example_easify_failure_alert",
        "example_easify_sms_approval",
        "example_easify_bulk_delivery",
    }
    assert expected <= set(bag.dag_ids)
    ours = [w for w in caught if "airflow_provider_easify" in str(w.filename) or "example_dags" in str(w.filename)]
    assert ours == [], [str(w.message) for w in ours]


@pytest.mark.parametrize(
    "module",
    [
        "airflow_provider_easify.operators.sms",
        "airflow_provider_easify.sensors.sms",
        "airflow_provider_easify.transfers.easify_to_s3",
        "airflow_provider_easify.notifications.easify",
    ],
)
def test_dag_file_imports_stay_light(module):
    code = f"import sys, {module}; print(sorted(m for m in ('boto3', 'botocore', 'pyarrow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_message_queue_provider_is_registered_and_optional():
    """`MessageQueueTrigger(scheme="easify")` builds the inbound trigger; without common.messaging the
    queue module says what to install and nothing else changes."""
    from airflow_provider_easify.triggers.inbound import EasifyInboundSmsTrigger

    [path] = get_provider_info()["queues"]
    module, _, name = path.rpartition(".")
    try:
        import airflow.providers.common.messaging  # noqa: F401
    except ImportError:
        from airflow.providers.common.compat.sdk import AirflowOptionalProviderFeatureException

        with pytest.raises(AirflowOptionalProviderFeatureException, match="common-messaging"):
            importlib.import_module(module)
        return
    provider = getattr(importlib.import_module(module), name)()
    assert provider.scheme_matches("easify") and not provider.scheme_matches("sqs")
    assert provider.trigger_class() is EasifyInboundSmsTrigger
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

    wrapped = MessageQueueTrigger(scheme="easify", account_numbers=["+13155550100"], pattern="stop")
    assert wrapped.serialize() == EasifyInboundSmsTrigger(account_numbers=["+13155550100"], pattern="stop").serialize()
