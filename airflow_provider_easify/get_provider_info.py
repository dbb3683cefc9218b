"""Provider metadata read by Airflow's ProvidersManager (``apache_airflow_provider`` entry point)."""

from __future__ import annotations

from typing import Any

from airflow_provider_easify import __version__
from airflow_provider_easify.hooks.connection_fields import conn_fields

INTEGRATION = "Easify"
#: The documentation site (``docs/``, built by ``make docs``, published by Read the Docs).
DOCUMENTATION_URL = "https://airflow-provider-easify.readthedocs.io/"


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-easify",
        "name": "Easify",
        "description": "`Easify <https://easify.app/>`__ SMS and MMS: send, wait for delivery and replies, "
        "export SMS reports and contacts.",
        "versions": [__version__],
        "documentation-url": DOCUMENTATION_URL,
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://easify.app/",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": INTEGRATION, "python-modules": ["airflow_provider_easify.hooks.easify"]}],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": ["airflow_provider_easify.operators.sms", "airflow_provider_easify.operators.hitl"],
            }
        ],
        "sensors": [
            {
                "integration-name": INTEGRATION,
                "python-modules": ["airflow_provider_easify.sensors.sms", "airflow_provider_easify.sensors.bulk"],
            }
        ],
        "triggers": [
            {
                "integration-name": INTEGRATION,
                "python-modules": [
                    "airflow_provider_easify.triggers.sms",
                    "airflow_provider_easify.triggers.inbound",
                    "airflow_provider_easify.triggers.hitl",
                ],
            }
        ],
        "transfers": [
            {
                "source-integration-name": INTEGRATION,
                "target-integration-name": "Amazon Simple Storage Service (S3)",
                "python-module": "airflow_provider_easify.transfers.easify_to_s3",
            }
        ],
        "notifications": ["airflow_provider_easify.notifications.easify.EasifySmsNotifier"],
        # Read by common.messaging's MessageQueueTrigger (scheme "easify"); skipped where it is not installed.
        "queues": ["airflow_provider_easify.queues.easify.EasifyMessageQueueProvider"],
        "connection-types": [
            {
                "hook-class-name": "airflow_provider_easify.hooks.easify.EasifyHook",
                "hook-name": "Easify",
                "connection-type": "easify",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "port"],
                    "relabeling": {"password": "API token", "host": "API base URL"},
                    "placeholders": {
                        "host": "https://backend.easify.app/api/v2",
                        "password": "Settings > API Settings in the Easify app",
                    },
                },
                "conn-fields": conn_fields(),
            }
        ],
    }
