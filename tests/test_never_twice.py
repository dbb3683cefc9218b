"""Never twice, never lost, whatever reading of the vendor text the server takes.

Each reading is a sandbox switch. Against each, sends go through faults that commit the message
and then fail (502, dropped connection, garbled answer) and faults that fail without committing (a
gateway's HTML 502): every intended message must be in the server's ledger exactly once, and two
sends of the same text to the same number must be two messages.
"""

from __future__ import annotations

import collections

import pytest

from airflow_provider_easify.sandbox.readings import READINGS, SEND_FAULTS, settle_seconds

SENDER = "+13155550100"

#: (recipient, text): repeated pairs are separate messages; texts carry whitespace and CRLF line endings.
SENDS = [
    ("+13151350000", "  Your code is 1234  "),
    ("+13151350000", "  Your code is 1234  "),
    ("+13151350001", "Line one\r\nLine two\r\n"),
    ("+13151350001", "Line one\r\nLine two\r\n"),
    ("+13151350002", "Reminder"),
    ("+447700900123", "Reminder"),
    ("+13151350000", "Reminder"),
    ("+13151350002", "Reminder"),
    ("+972501234567", "\tTab first"),
    ("+13151350003", "Plain"),
    ("+13151350003", "Plain"),
    ("+13151350003", "Plain"),
    ("+13151350004", "Last one "),
    ("+13151350005", "x"),
    ("+13151350005", "y"),
    ("+13151350005", "x"),
]


@pytest.mark.parametrize("reading", list(READINGS), ids=list(READINGS))
def test_every_send_exactly_once_under_each_reading(make_hook, sandbox, reading):
    sandbox.configure(send_limit=0, read_limit=0, **READINGS[reading])
    hook = make_hook(max_retries=8, send_settle_seconds=settle_seconds(READINGS[reading]), timeout=5)
    sandbox.add_faults(SEND_FAULTS)
    returned = [hook.send_sms(SENDER, to, text) for to, text in SENDS]
    sandbox.clear_faults()

    ledger = sandbox.ledger()
    fired = sandbox.stats()["faults_by_kind"]
    assert sum(fired.values()) >= 4, f"the faults fired ({fired})"
    assert len(ledger) == len(SENDS), f"{len(ledger) - len(SENDS):+d} messages ({reading}, faults {fired})"
    assert len(set(returned)) == len(SENDS), "each send returned its own message"
    by_id = {str(m["id"]): m for m in ledger}
    assert set(returned) == set(by_id), "every returned id is a message the server holds"
    intended = collections.Counter((to, text.strip() if READINGS[reading].get("trim_strings", True) else text)
                                   for to, text in SENDS)
    stored = collections.Counter(
        (f"{m['country_code']}{m['to_number']}", m["message"].replace("\r\n", "\n")) for m in ledger
    )
    assert stored == collections.Counter({(to, text.replace("\r\n", "\n")): n for (to, text), n in intended.items()})
