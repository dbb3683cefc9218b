"""Sphinx configuration of the airflow-provider-easify documentation (``make docs``; warnings are errors).

Pages are Markdown (MyST). Two pages are partly generated at build time, so that they cannot drift
from the code: the connection extras (from ``hooks/connection_fields.py``) and the benchmark figures
(from ``benchmarks/results/*.json``). Every Python example on the pages runs in CI
(``tests/airflow3/test_docs_examples.py``); example DAGs are included from ``example_dags/``.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
(DOCS / "_build").mkdir(exist_ok=True)
os.environ.setdefault("AIRFLOW_HOME", str(DOCS / "_build" / "airflow_home"))

from airflow_provider_easify import __version__  # noqa: E402

project = "airflow-provider-easify"
author = "The airflow-provider-easify authors"
copyright = "2026, the airflow-provider-easify authors"
release = version = __version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.viewcode"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
exclude_patterns = ["_build", "_generated/*.part.md"]
html_theme = "furo"
html_title = f"airflow-provider-easify {release}"
autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_inherit_docstrings = True
# A reference to this package's API that does not resolve is an error; other libraries' are not checked
# (no intersphinx: the build runs offline).
nitpicky = True
nitpick_ignore_regex = [(r"py:.*", r"^(?!airflow_provider_easify\.).*"), (r"py:.*", r".*\._.*")]



# ---------------------------------------------------------------------- generated parts


def _connection_extras() -> str:
    from airflow_provider_easify.hooks.connection_fields import EXTRA_FIELDS

    rows = ["| extra | form label | default | what it does |", "| --- | --- | --- | --- |"]
    for field in EXTRA_FIELDS:
        default = "empty" if field.default == "" else f"`{field.default}`"
        rows.append(f"| `{field.name}` | {field.label} | {default} | {field.description} |")
    return "\n".join(rows) + "\n"


def _figures(name: str) -> str:
    path = REPO / "benchmarks" / "results" / f"{name}.json"
    data = json.loads(path.read_text())
    machine = data.get("machine", {})
    head = (
        f"`benchmarks/results/{name}.json`: a {data.get('mode', '?')} run of {data.get('seconds', 0):.0f} s on "
        f"{data.get('when', '?')}, {machine.get('cpu_count', '?')} CPUs, Python {machine.get('python', '?')}, "
        f"Airflow {machine.get('airflow', '?')}.\n\n"
    )
    rows = ["| benchmark | figure | value | goal | met |", "| --- | --- | --- | --- | --- |"]
    for figure in data.get("figures", []):
        value = f"{figure['value']} {figure.get('unit') or ''}".strip()
        met = {True: "yes", False: "**no**", None: ""}[figure.get("met")]
        name_ = str(figure["name"]).replace("|", "/")
        bench = figure.get("benchmark", data.get("benchmark", ""))
        rows.append(f"| {bench} | {name_} | {value} | {figure.get('goal') or ''} | {met} |")
    return head + "\n".join(rows) + "\n"


def _write_generated() -> None:
    out = DOCS / "_generated"
    out.mkdir(exist_ok=True)
    (out / "connection-extras.part.md").write_text(_connection_extras())
    (out / "figures-latest.part.md").write_text(_figures("latest"))
    (out / "figures-export.part.md").write_text(_figures("export"))
    (out / "figures-inbound.part.md").write_text(_figures("inbound"))
    (out / "figures-send-reads.part.md").write_text(_figures("send_reads"))


_write_generated()


# ---------------------------------------------------------------------- a missing docstring is an error


def _require_docstrings(app, what, name, obj, options, lines) -> None:
    module = getattr(obj, "__module__", "") or (name if what == "module" else "")
    if not str(module).startswith("airflow_provider_easify") or name.rsplit(".", 1)[-1].startswith("_"):
        return
    if what in ("module", "class", "exception", "function", "method") and not any(line.strip() for line in lines):
        if what == "method" and not inspect.isfunction(getattr(obj, "__func__", obj)):
            return
        from sphinx.util import logging

        logging.getLogger(__name__).warning("%s %s has no docstring", what, name)


def setup(app):
    app.connect("autodoc-process-docstring", _require_docstrings)
    return {"parallel_read_safe": True}
