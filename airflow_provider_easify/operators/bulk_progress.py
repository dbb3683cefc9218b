"""The progress of one run of :class:`~.sms.EasifyBulkSendSmsOperator`, and where its results are kept."""

from __future__ import annotations

from typing import Any

#: The XCom in which a deferrable bulk send writes the results of one burst (one rate window), once.
BURST_XCOM = "easify_bulk_burst_{}"


class BulkRun:
    """The progress of one bulk run.

    The results of the burst being sent (one rate window) are kept here and written once, to an XCom of
    their own (:data:`BURST_XCOM`), when the next burst starts; a deferral carries only a cursor, counters
    and the send slots it reserved. What goes to the metadata database at each deferral does not grow
    with the recipients, and the deferral's kwargs hold no phone number. The end of the run reads the
    bursts back into the result.
    """

    KINDS = ("sent", "failed", "unconfirmed")

    def __init__(
        self, ti: Any, *, cursor: int = 0, burst: int = 0, counts: dict[str, int] | None = None,
        block: dict[str, Any] | None = None, carried: dict[str, dict[str, str]] | None = None,
    ) -> None:
        self.ti = ti
        self.cursor = cursor
        self.burst = burst
        self.base_counts = {kind: int((counts or {}).get(kind, 0)) for kind in self.KINDS}
        #: Send slots reserved before the deferral, spent by the resume.
        self.block = block
        self.budget = 0
        #: Messages posted by this run segment.
        self.posted = 0
        self.segment: dict[str, dict[str, str]] = {kind: {} for kind in self.KINDS}
        # Without a task instance (the operator called directly) earlier bursts travel with the deferral.
        self._carried = carried

    @classmethod
    def resume(cls, ti: Any, progress: dict[str, Any] | None) -> BulkRun:
        if progress is not None:
            return cls(
                ti, cursor=int(progress["cursor"]), burst=int(progress["burst"]), counts=progress.get("counts"),
                block=progress.get("block"), carried=progress.get("carried"),
            )
        # The deferral's kwargs were lost: the bursts written so far say how far the run got.
        run = cls(ti)
        while (burst := run._pull(run.burst)) is not None:
            for kind in cls.KINDS:
                run.base_counts[kind] += len(burst.get(kind) or {})
            run.burst += 1
        run.cursor = sum(run.base_counts.values())
        return run

    def note(self, number: str, kind: str, value: str) -> None:
        for other in self.KINDS:
            self.segment[other].pop(number, None)
        self.segment[kind][number] = value

    def counts(self) -> dict[str, int]:
        return {kind: self.base_counts[kind] + len(self.segment[kind]) for kind in self.KINDS}

    def flush(self) -> None:
        """Write the results since the last flush, once, to an XCom of their own (a burst: one rate window)."""
        if self.ti is None or not any(self.segment.values()):
            return
        self.ti.xcom_push(key=BURST_XCOM.format(self.burst), value=self.segment)
        self.base_counts = self.counts()
        self.segment = {kind: {} for kind in self.KINDS}
        self.burst += 1

    def suspend(self, cursor: int) -> dict[str, Any]:
        """What a deferral carries: a cursor, counters and the reserved slots, never a phone number."""
        self.flush()
        progress: dict[str, Any] = {"cursor": cursor, "burst": self.burst, "counts": self.counts()}
        if self.block is not None:
            progress["block"] = self.block
        if self.ti is None:
            progress["carried"] = self._merged([self._carried or {}, self.segment])
        return progress

    def summary(self) -> dict[str, Any]:
        """Every result of the run: the bursts written before, and this one."""
        if self.ti is not None:
            earlier = [self._pull(n) or {} for n in range(self.burst)]
        else:
            earlier = [self._carried or {}]
        return self._merged([*earlier, self.segment])

    def _pull(self, burst: int) -> dict[str, Any] | None:
        if self.ti is None:
            return None
        ti = self.ti
        value = ti.xcom_pull(task_ids=ti.task_id, key=BURST_XCOM.format(burst), map_indexes=ti.map_index)
        return value if isinstance(value, dict) else None

    @classmethod
    def _merged(cls, parts: list[dict[str, Any]]) -> dict[str, Any]:
        merged: dict[str, Any] = {kind: {} for kind in cls.KINDS}
        for part in parts:
            for kind in cls.KINDS:
                merged[kind].update(part.get(kind) or {})
        return merged
