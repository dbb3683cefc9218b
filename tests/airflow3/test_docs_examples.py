"""Every Python example of the documentation site (and of the README, its landing page) runs, against
the sandbox.

Each fenced ``python`` block of ``docs/*.md`` is executed on its own, in a fresh namespace, with
``easify_default`` pointing at a fresh sandbox; a ``test_*`` function an example defines is then called
with that sandbox as ``easify_sandbox`` (as the pytest fixture would give it). Example DAGs shown on
the site are included from ``example_dags/`` (``literalinclude``) and are run by the DAG tests.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from pathlib import Path

import pytest

from tests.conftest import FAST, conn_json

DOCS = Path(__file__).resolve().parents[2] / "docs"
FENCE = re.compile(r"^(?P<indent>[ \t]*)```python[ \t]*$")


def python_examples() -> list[tuple[str, str]]:
    """(``page.md:line``, code) of every fenced python block, indented ones (in lists) included."""
    found = []
    for page in [*sorted(DOCS.glob("*.md")), DOCS.parent / "README.md"]:
        lines = page.read_text().splitlines()
        index = 0
        while index < len(lines):
            match = FENCE.match(lines[index])
            if match is None:
                index += 1
                continue
            start, indent = index + 1, match["indent"]
            end = start
            while lines[end] != f"{indent}```":
                end += 1
            code = textwrap.dedent("\n".join(lines[start:end]))
            found.append((f"{page.name}:{start}", code))
            index = end + 1
    return found


EXAMPLES = python_examples()


def test_the_site_has_examples_on_every_capability_page():
    pages = {where.split(":")[0] for where, _ in EXAMPLES}
    assert {"getting-started.md", "connection.md", "hook.md", "sending.md", "waiting.md",
            "notifications-and-approvals.md", "inbound.md", "sandbox.md", "README.md"} <= pages
    assert len(EXAMPLES) >= 19, len(EXAMPLES)


def test_the_metadata_points_at_the_site():
    import tomllib

    from airflow_provider_easify.get_provider_info import get_provider_info

    site = get_provider_info()["documentation-url"]
    urls = tomllib.loads((DOCS.parent / "pyproject.toml").read_text())["project"]["urls"]
    assert set(urls) == {"Documentation", "Changelog", "Source", "Issues"}
    assert urls["Documentation"] == site and urls["Changelog"].startswith(site)
    from airflow_provider_easify import __version__

    assert f"## {__version__} (" in (DOCS / "changelog.md").read_text(), "every release has its changelog entry"


@pytest.mark.parametrize(("where", "code"), EXAMPLES, ids=[where for where, _ in EXAMPLES])
def test_docs_example_runs(where, code, sandbox, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_EASIFY_DEFAULT", conn_json(sandbox.api_url, sandbox.token, FAST))
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.example.com")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "docs_example"}
    exec(compile(code, where, "exec"), namespace)
    for name, value in list(namespace.items()):
        if name.startswith("test_") and inspect.isfunction(value):
            params = inspect.signature(value).parameters
            fixtures = {"easify_sandbox": sandbox, "monkeypatch": monkeypatch, "tmp_path": tmp_path}
            value(**{name: fixture for name, fixture in fixtures.items() if name in params})
