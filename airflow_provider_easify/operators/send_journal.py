"""Remember, across task tries, which recipients a task already sent its message to.

Sends are not idempotent on the server, so a retried task must find out what an earlier try sent, and
a send left unconfirmed (:class:`~..exceptions.EasifySendUnconfirmedError`) must be looked up before
anything goes to that recipient again.

* Before each send the journal notes an *intent*: the token's watermark (:meth:`EasifyHook.send_watermark`,
  no read) and the time; after it, the ``sms_id``. Airflow 3.3+ keeps both in the task instance's durable
  ``task_state_store``, so a later try returns the stored ``sms_id`` or, when the earlier try died or was
  left unconfirmed between the send and its id, looks for the message in the SMS report among the ids
  above the intent's watermark (waiting out the settle time if the intent is that recent). Within one
  try the intents are also kept in memory, so that the bulk operator resolves its unconfirmed sends
  before it ends on every Airflow.
* Older Airflow has no such store. On a retry (or a resume whose progress was lost) the journal looks
  in the conversation for an outgoing message with the same body created since the DAG run started. It
  cannot tell two identical messages to one number within one DAG run apart; that is documented.

A lookup that cannot run (the report failing) raises :class:`~..exceptions.EasifySendUnconfirmedError`:
the recipient is neither sent nor free to send to until a lookup answers.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping
from typing import Any

from airflow_provider_easify.exceptions import EasifySendUnconfirmedError
from airflow_provider_easify.hooks.easify import EasifyHook
from airflow_provider_easify.utils.phone import PhoneNumber

#: Clock skew allowed between the worker and the API server when comparing timestamps.
CLOCK_SKEW = dt.timedelta(minutes=2)


class SendJournal:
    """The sends of one task instance: intents before, ids after, and lookups for what lies between."""

    def __init__(
        self, hook: EasifyHook, context: Mapping[str, Any], *, resumed: bool = False, purpose: str = ""
    ) -> None:
        self.hook = hook
        # A task that sends a second kind of message to the same numbers (an approval's follow-ups)
        # keeps it apart from the first.
        self._prefix = f"{purpose}:" if purpose else ""
        self.store = context.get("task_state_store")
        self._intents: dict[str, dict[str, Any]] = {}
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
        """The ``sms_id`` an earlier attempt sent to ``recipient``; None when none did (sending is safe).

        Raises :class:`EasifySendUnconfirmedError` when an earlier attempt may have sent it and the
        report cannot be read to tell.
        """
        intent: Any = None
        if self.store is not None:
            sent = self.store.get(f"{self._prefix}sent:{recipient.e164}")
            if sent:
                return str(sent)
            intent = self.store.get(f"{self._prefix}intent:{recipient.e164}")
        if intent is None:
            intent = self._intents.get(recipient.e164)
        if intent is not None:
            # Intents of earlier versions are the bare watermark.
            after_id, at = (intent, 0.0) if not isinstance(intent, dict) else (intent.get("after_id"), intent["at"])
            settle = time.time() - float(at) < self.hook.settings.send_settle_seconds
            if after_id is not None:
                return self._look(recipient, float(at), sender, body, after_id=int(after_id), settle=settle)
            since = dt.datetime.fromtimestamp(float(at), dt.UTC) - CLOCK_SKEW
            return self._look(recipient, float(at), sender, body, since=since, settle=settle)
        if not self.earlier_attempt_possible:
            return None
        return self._look(recipient, time.time(), sender, body, since=self.since)

    def _look(self, recipient: PhoneNumber, at: float, sender: str, body: str | None, **where: Any) -> str | None:
        try:
            return self.hook.find_sent_message(sender, recipient.e164, body, **where)
        except Exception as exc:
            raise EasifySendUnconfirmedError.for_send(
                recipient.e164, at, lookup_error=exc,
                known="an earlier attempt may have sent it and the report could not be read to tell",
            ) from exc

    def before_send(self, sender: str, recipient: PhoneNumber) -> int | None:
        """Note the intent to send and return the watermark it holds (None when none is known)."""
        watermark = self.hook.send_watermark()
        intent = {"after_id": watermark, "at": time.time()}
        self._intents[recipient.e164] = intent
        if self.store is not None:
            self.store.set(f"{self._prefix}intent:{recipient.e164}", intent)
        return watermark

    def record(self, recipient: PhoneNumber, sms_id: str) -> None:
        """The send to ``recipient`` returned ``sms_id``."""
        self._intents.pop(recipient.e164, None)
        if self.store is not None:
            self.store.set(f"{self._prefix}sent:{recipient.e164}", sms_id)
