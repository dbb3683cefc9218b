"""What two-way SMS needs from Airflow, checked on whichever Airflow runs the suite (3.3 and 2.11):
the approval modules need 3.1+ and say so on older Airflow; the inbound trigger runs on both."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
from packaging.version import Version

from airflow_provider_easify.utils.hitl_support import HITL_MIN_AIRFLOW, airflow_version

HAS_HITL = airflow_version() >= Version(HITL_MIN_AIRFLOW)


@pytest.mark.parametrize("module", ["airflow_provider_easify.operators.hitl", "airflow_provider_easify.triggers.hitl"])
def test_the_approval_modules_need_airflow_3_1(module):
    code = f"import {module}"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    if HAS_HITL:
        assert proc.returncode == 0, proc.stderr[-2000:]
    else:
        assert proc.returncode != 0
        assert "AirflowOptionalProviderFeatureException" in proc.stderr
        assert f"needs Airflow {HITL_MIN_AIRFLOW} or later" in proc.stderr
        assert f"this is Airflow {airflow_version()}" in proc.stderr


def test_the_inbound_trigger_imports_everywhere():
    module = importlib.import_module("airflow_provider_easify.triggers.inbound")
    trigger = module.EasifyInboundSmsTrigger(pattern="stop")
    assert trigger.serialize()[0] == "airflow_provider_easify.triggers.inbound.EasifyInboundSmsTrigger"
