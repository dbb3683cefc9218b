"""Apache Airflow provider for the Easify SMS/MMS API."""

from __future__ import annotations

__version__ = "0.2.0"

__all__ = ["__version__"]
