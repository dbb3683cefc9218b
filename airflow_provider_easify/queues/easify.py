"""Incoming SMS for ``MessageQueueTrigger(scheme="easify", ...)`` (``apache-airflow-providers-common-messaging``).

Event-driven DAGs wire every message source the same way::

    AssetWatcher(name="stop_texts", trigger=MessageQueueTrigger(scheme="easify", account_numbers=["+13155550100"],
                                                                pattern=r"^\\s*stop\\b"))

The keyword arguments are those of :class:`~airflow_provider_easify.triggers.inbound.EasifyInboundSmsTrigger`,
which this provider builds from them; both spellings make the same (deduplicated) watcher.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_easify.triggers.inbound import EasifyInboundSmsTrigger

try:
    from airflow.providers.common.messaging.providers.base_provider import BaseMessageQueueProvider
except ImportError as exc:  # pragma: no cover - exercised on lines without the package
    from airflow.providers.common.compat.sdk import AirflowOptionalProviderFeatureException

    raise AirflowOptionalProviderFeatureException(
        "MessageQueueTrigger(scheme='easify') needs apache-airflow-providers-common-messaging>=2.1.1 "
        "(pip install 'airflow-provider-easify[common-messaging]')"
    ) from exc

#: The scheme users name in ``MessageQueueTrigger(scheme=...)``.
SCHEME = "easify"


class EasifyMessageQueueProvider(BaseMessageQueueProvider):
    """Builds :class:`EasifyInboundSmsTrigger` for ``MessageQueueTrigger(scheme="easify", **trigger_kwargs)``."""

    scheme = SCHEME

    def scheme_matches(self, scheme: str) -> bool:
        return scheme == SCHEME

    def queue_matches(self, queue: str) -> bool:
        # Incoming SMS have no queue URI; the (deprecated) `queue=` spelling is left to other providers.
        return False

    def trigger_class(self) -> type[EasifyInboundSmsTrigger]:
        return EasifyInboundSmsTrigger

    def trigger_kwargs(self, queue: str, **kwargs: Any) -> dict[str, Any]:
        return {}
