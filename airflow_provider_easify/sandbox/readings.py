"""The readings of the vendor text a real server may take, as sandbox settings, and the send faults that
commit a message and then fail: what a client's exactly-once tests run against (the provider's tests and
``benchmarks/bench_never_twice.py`` do; so can a DAG author's).

.. code-block:: python

    for name, settings in READINGS.items():
        sandbox.configure(**settings)
        sandbox.add_faults(SEND_FAULTS)
        ...  # send, then compare the ledger with what was meant to go out
"""

from __future__ import annotations

from typing import Any

READINGS: dict[str, dict[str, Any]] = {
    "laravel-defaults": {},
    "no-trimming": {"trim_strings": False},
    "newlines-normalised": {"normalize_newlines": True},
    "history-oldest-first": {"history_order": "oldest_first"},
    "history-shuffled": {"history_order": "shuffled"},
    "history-oldest-n-newest-first": {"history_order": "oldest_newest_first"},
    "late-visibility": {"visibility_delay_seconds": 1.5},
    "fewer-rows-than-asked": {"max_page_size": 3},
}

#: About 30 % of sends recorded and then failed (502, dropped connection, garbled answer), 10 % failed
#: unrecorded by a gateway's HTML 502.
SEND_FAULTS: list[dict[str, Any]] = [
    {"endpoint": "send", "kind": "recorded_502", "probability": 0.15},
    {"endpoint": "send", "kind": "recorded_drop", "probability": 0.1},
    {"endpoint": "send", "kind": "malformed", "probability": 0.05},
    {"endpoint": "send", "kind": "http_error", "status": 502, "body": "html", "probability": 0.1},
]


def settle_seconds(reading: dict[str, Any]) -> float:
    """A ``send_settle_seconds`` that outlasts the reading's visibility delay."""
    return float(reading.get("visibility_delay_seconds", 0)) + 1.0 if reading.get("visibility_delay_seconds") else 0.5
