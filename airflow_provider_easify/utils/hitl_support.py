"""Whether this Airflow has human-in-the-loop (3.1+); importing the approval modules elsewhere is refused."""

from __future__ import annotations

from packaging.version import Version

#: The first Airflow with human-in-the-loop operators (``airflow.providers.standard.operators.hitl``).
HITL_MIN_AIRFLOW = "3.1.0"


def airflow_version() -> Version:
    from airflow import __version__

    return Version(Version(__version__).base_version)


def require_hitl(feature: str) -> None:
    """Raise a clear error naming the version needed when this Airflow has no human-in-the-loop."""
    if airflow_version() < Version(HITL_MIN_AIRFLOW):
        from airflow.exceptions import AirflowOptionalProviderFeatureException

        raise AirflowOptionalProviderFeatureException(
            f"{feature} needs Airflow {HITL_MIN_AIRFLOW} or later (human-in-the-loop operators); "
            f"this is Airflow {airflow_version()}."
        )
