"""Helpers imported by the processes of the Celery deployment test (``test_celery_deployment``).

Both Celery workers run on this one machine, so the hostname Airflow records on each task instance
would be the same for both. Each worker sets ``AIRFLOW__CORE__HOSTNAME_CALLABLE`` to :func:`hostname`
and its own ``EASIFY_TEST_HOST``, so a task instance's ``hostname`` names the worker that ran it.
"""

from __future__ import annotations

import os


def hostname() -> str:
    return os.environ["EASIFY_TEST_HOST"]
