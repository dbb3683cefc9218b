"""The request path to the Easify API (auth, timeouts, error mapping, retries, pacing); see :mod:`.client`."""

from airflow_provider_easify.transport.client import EasifyTransport, PacingDeferred
from airflow_provider_easify.transport.settings import DEFAULT_BASE_URL, EasifyConnectionSettings

__all__ = ["DEFAULT_BASE_URL", "EasifyConnectionSettings", "EasifyTransport", "PacingDeferred"]
