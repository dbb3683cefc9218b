"""The notifier's default text for each place Airflow calls a notifier, naming what a person on call needs.

- a task callback: the task, the DAG, the state, the run, the try, and the log link when ``[api] base_url``
  is set;
- a DAG callback (its context has ``reason``): the DAG, the run and the state;
- a Deadline Alert (its context has ``deadline`` and ``dag_run`` as a dict): the DAG, the run, the
  deadline and how late it is;
- a human-in-the-loop task's ``notifiers=``: the subject and the Required Actions link.

Texts are plain ASCII (GSM-7) and are shortened to :data:`MAX_SEGMENTS` segments: the longest names lose
their ends first, then the link goes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from airflow_provider_easify.utils.segments import count_segments

MAX_SEGMENTS = 2
_ELLIPSIS = "..."


def default_text(context: Mapping[str, Any], hitl: Mapping[str, str] | None = None) -> str:
    """The text for ``context``; ``hitl`` is the subject and link of a human-in-the-loop task, if it is one."""
    if context.get("deadline") is not None:
        return _deadline_text(context)
    if hitl is not None:
        return _fit("Airflow needs your answer: {subject}{link}",
                    {"subject": hitl["easify_hitl_subject"]}, link=hitl["easify_hitl_link"])
    if "reason" in context:
        return _dag_text(context)
    return _task_text(context)


def state_of(context: Mapping[str, Any]) -> str:
    """The task's state as plain text ("failed"), whatever enum type this Airflow version uses."""
    state = getattr(context.get("ti"), "state", None)
    return str(getattr(state, "value", state) or "done")


def _task_text(context: Mapping[str, Any]) -> str:
    ti = context.get("ti")
    values = {
        "task": str(getattr(ti, "task_id", None) or "n/a"),
        "dag": _dag_id(context),
        "run": _run_id(context),
    }
    try_number = getattr(ti, "try_number", None)
    tried = f", try {try_number}" if try_number else ""
    return _fit(f"Airflow: task {{task}} of DAG {{dag}} {state_of(context)} (run {{run}}{tried}).{{link}}",
                values, link=_log_link(ti))


def _dag_text(context: Mapping[str, Any]) -> str:
    reason = str(context.get("reason") or "")
    run_state = _get(context.get("dag_run"), "state")
    state = str(getattr(run_state, "value", run_state) or ("succeeded" if reason == "success" else "failed"))
    values = {"dag": _dag_id(context), "run": _run_id(context), "reason": reason}
    because = " ({reason})" if reason and reason not in (state, "success") else ""
    return _fit(f"Airflow: DAG {{dag}} run {{run}} {state}{because}.", values)


def _deadline_text(context: Mapping[str, Any]) -> str:
    deadline_time = _as_datetime(_get(context.get("deadline"), "deadline_time"))
    values = {"dag": _dag_id(context), "run": _run_id(context)}
    if deadline_time is None:
        return _fit("Airflow: DAG {dag} missed its deadline (run {run}).", values)
    late = dt.datetime.now(dt.UTC) - deadline_time
    due = deadline_time.strftime("%Y-%m-%d %H:%M UTC")
    return _fit(f"Airflow: DAG {{dag}} missed its deadline of {due}, {_duration(late)} late (run {{run}}).", values)


def _fit(template: str, values: dict[str, str], *, link: str = "") -> str:
    """``template`` filled in, within :data:`MAX_SEGMENTS`: the longest value is cut first, then the link dropped."""
    values = dict(values)
    link_part = f" {link}" if link else ""
    while True:
        text = template.format(**values, link=link_part).strip()
        if count_segments(text).segments <= MAX_SEGMENTS:
            return text
        longest = max(values, key=lambda key: len(values[key]))
        if len(values[longest]) > 20:
            values[longest] = values[longest][: max(17, len(values[longest]) - 20)] + _ELLIPSIS
        elif link_part:
            link_part = ""
        else:
            return text


def _log_link(ti: Any) -> str:
    from airflow.providers.common.compat.sdk import conf

    if ti is None or not conf.get("api", "base_url", fallback=""):
        return ""
    try:
        return str(ti.log_url)
    except Exception:  # noqa: BLE001 - a text without the link beats no text
        return ""


def _dag_id(context: Mapping[str, Any]) -> str:
    dag = context.get("dag")
    return str(getattr(dag, "dag_id", None) or _get(context.get("dag_run"), "dag_id") or "n/a")


def _run_id(context: Mapping[str, Any]) -> str:
    dag_run = context.get("dag_run")  # the Deadline Alert's is the REST API's run: `dag_run_id`
    return str(context.get("run_id") or _get(dag_run, "run_id") or _get(dag_run, "dag_run_id") or "n/a")


def _get(obj: Any, key: str) -> Any:
    """A field of a dict (the Deadline Alert's context) or of an object (a callback's)."""
    if obj is None:
        return None
    return obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key, None)


def _as_datetime(value: Any) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, dt.datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _duration(delta: dt.timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
