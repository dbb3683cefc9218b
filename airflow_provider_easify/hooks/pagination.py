"""Every row of a Laravel-paginated listing, one page in memory at a time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any


def paginate(
    fetch: Callable[[dict[str, Any]], dict[str, Any]], params: dict[str, Any], limit: int
) -> Iterator[dict[str, Any]]:
    """Yield the rows of every page that ``fetch(query)`` answers, following ``params`` page by page.

    The vendor's ``links.next`` carries only ``?page=N`` (the filters are dropped), so pages are
    requested with our own parameters and ``links.next``/``meta.last_page`` only say when to stop.
    Rows that slid onto the next page because new rows arrived meanwhile are yielded once.
    """
    page = 1
    previous_ids: set[Any] = set()
    while True:
        body = fetch({**params, "limit": limit, "page": page})
        rows = body.get("data") or []
        current_ids = set()
        for row in rows:
            row_id = row.get("id")
            current_ids.add(row_id)
            if row_id is None or row_id not in previous_ids:
                yield row
        if not rows or not has_next_page(body, page):
            return
        previous_ids = current_ids
        page += 1


def has_next_page(body: dict[str, Any], page: int) -> bool:
    links = body.get("links")
    if isinstance(links, dict) and "next" in links:
        return bool(links.get("next"))
    meta = body.get("meta")
    if isinstance(meta, dict) and meta.get("last_page") is not None:
        return page < int(meta["last_page"])
    return False
