"""Send one SMS without ever sending it twice.

Sends are not idempotent on the server. Before a send the caller reads the conversation's newest
message id (the *watermark*). The transport retries blindly only what the server cannot have
recorded (a 429, a connection that never reached it); after a failure that it may have recorded (a
5xx, a dropped connection, a timeout, a garbled answer) it asks :func:`send_once`'s resolver, which
looks for an outgoing message with the same body above the watermark: found, its id is the answer
and nothing is sent again; not found, the transport may retry.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_easify.exceptions import EasifyApiError
from airflow_provider_easify.utils.phone import PhoneNumber, mask_phone

if TYPE_CHECKING:
    from airflow_provider_easify.hooks.easify import EasifyHook


def send_once(
    hook: EasifyHook,
    fields: dict[str, Any],
    *,
    sender: str,
    recipient: PhoneNumber,
    message: str | None,
    media_file: Path | None,
    watermark: int,
    paced: bool,
) -> str:
    """POST ``fields`` to ``sms/send`` (with ``media_file`` uploaded) exactly once; return the ``sms_id``."""

    def recorded(exc: BaseException) -> dict[str, Any] | None:
        found = hook.find_sent_message(sender, recipient.e164, message, after_id=watermark)
        if found is None:
            hook.log.warning("Send to %s failed (%s) and was not recorded", mask_phone(recipient.e164), exc)
            return None
        hook.log.warning(
            "Send to %s failed (%s) but the server recorded it as %s; not sending again",
            mask_phone(recipient.e164), exc, found,
        )
        return {"data": {"sms_id": found}}

    options: dict[str, Any] = {"budget": "send", "send": True, "on_ambiguous": recorded, "paced": paced}
    if media_file is None:
        body = hook.transport.request("POST", "sms/send", json=fields, **options)
    else:
        mime = mimetypes.guess_type(media_file.name)[0] or "application/octet-stream"
        with media_file.open("rb") as handle:
            files = {"media": (media_file.name, handle, mime)}
            body = hook.transport.request("POST", "sms/send", data=fields, files=files, **options)
    sms_id = str((body.get("data") or {}).get("sms_id", "")).strip()
    if not sms_id:
        raise EasifyApiError("send succeeded without an sms_id", status_code=200, endpoint="sms/send")
    return sms_id
