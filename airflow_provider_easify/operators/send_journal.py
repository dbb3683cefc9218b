"""Remember, across task tries, which recipients a task already sent its message to.

Sends are not idempotent on the server, so a retried task must find out what an earlier try sent.

* Airflow 3.3+ gives each task instance a durable ``task_state_store``. Before each send the journal
  stores an *intent* holding the conversation's watermark (:meth:`EasifyHook.send_watermark`) and the
  time; after it, the ``sms_id``. A later try returns the stored ``sms_id``, or, if the earlier try died
  between the send and storing its id, finds the message in the SMS report among the ids above the
  intent's watermark (waiting out the settle time if the intent is that recent).
* Older Airflow has no such store. On a retry (or a resume after deferral) the journal looks in the
  conversation for an outgoing message with the same body created since the DAG run started. It
  cannot tell two identical messages to one number within one DAG run apart; that is documented.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from typing import Any

from airflow_provider_easify.hooks.easify import EasifyHook
from airflow_provider_easify.utils.phone import PhoneNumber

#: Clock skew allowed between the worker and the API server when comparing timestamps.
CLOCK_SKEW = dt.timedelta(minutes=2)


class SendJournal:
    def __init__(self, hook: EasifyHook, context: Mapping[str, Any], *, resumed: bool = False) -> None:
        self.hook = hook
        self.store = context.get("task_state_store")
        ti = context.get("ti")
        try_number = int(getattr(ti, "try_number", 1) or 1)
        self.earlier_attempt_possible = resumed or try_number > 1
        dag_run = context.get("dag_run")
        start = getattr(dag_run, "start_date", None) or getattr(ti, "start_date", None)
        self.since = (start - CLOCK_SKEW) if isinstance(start, dt.datetime) and start.tzinfo else None

    @property
    def durable(self) -> bool:
        return self.store is not None

    def recall(self, sender: str, recipient: PhoneNumber, body: str | None) -> str | None:
        """The ``sms_id`` an earlier try of this task sent to ``recipient``, if any."""
        if self.store is not None:
            sent = self.store.get(f"sent:{recipient.e164}")
            if sent:
                return str(sent)
            intent = self.store.get(f"intent:{recipient.e164}")
            if intent is None:
                return None
            # Intents of earlier versions are the bare watermark.
            watermark, at = (intent, 0.0) if not isinstance(intent, dict) else (intent["after_id"], intent["at"])
            settle = time.time() - float(at) < self.hook.settings.send_settle_seconds
            return self.hook.find_sent_message(sender, recipient.e164, body, after_id=int(watermark), settle=settle)
        if not self.earlier_attempt_possible:
            return None
        return self.hook.find_sent_message(sender, recipient.e164, body, since=self.since)

    def before_send(self, sender: str, recipient: PhoneNumber) -> int:
        """Record the intent to send and return the conversation's watermark."""
        watermark = self.hook.send_watermark(sender, recipient.e164)
        if self.store is not None:
            self.store.set(f"intent:{recipient.e164}", {"after_id": watermark, "at": time.time()})
        return watermark

    def record(self, recipient: PhoneNumber, sms_id: str) -> None:
        if self.store is not None:
            self.store.set(f"sent:{recipient.e164}", sms_id)
