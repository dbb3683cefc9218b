"""Every row of a Laravel-paginated listing, one page in memory at a time, each row once.

The vendor's ``links.next`` carries only ``?page=N`` (the filters are dropped), so pages are
requested with our own parameters and ``links.next``/``meta.last_page`` only say when to stop.

Rows arriving while the listing is read shift older rows onto later pages (newest-first listings), or
late-visible rows shift newer ones (oldest-first): a page may then repeat rows yielded any number of
pages before. The listing's sort key tells them apart: once a row is yielded, a later row that sorts
before it in the listing's direction was yielded already (or arrived after the read began, and
belongs to the next read); rows of the same key are told apart by id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

SortKey = Callable[[dict[str, Any]], Any]


def paginate(
    fetch: Callable[[dict[str, Any]], dict[str, Any]],
    params: dict[str, Any],
    limit: int,
    *,
    sort_key: SortKey | None = None,
    descending: bool = True,
    smaller_limit: Callable[[Exception, int], int | None] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield the rows of every page that ``fetch(query)`` answers, following ``params`` page by page.

    ``sort_key(row)`` is the listing's order (None for a row without one: such rows are checked against
    the previous page's ids only). A server that refuses ``limit`` on the first page is asked again with
    ``smaller_limit(error, limit)`` (None: the error stands). A server that silently serves fewer rows
    than asked numbers its pages by what it serves, so following page numbers loses and repeats nothing.
    """
    page = 1
    boundary: Any = None
    boundary_ids: set[Any] = set()
    previous_ids: set[Any] = set()
    while True:
        try:
            body = fetch({**params, "limit": limit, "page": page})
        except Exception as exc:
            smaller = smaller_limit(exc, limit) if smaller_limit is not None and page == 1 else None
            if smaller is None or smaller >= limit:
                raise
            limit = smaller
            continue
        rows = body.get("data") or []
        # Repeats can only open a page (the listing is sorted): skip them, then the rest is new.
        start = 0
        while start < len(rows) and _seen(rows[start], sort_key, descending, boundary, boundary_ids, previous_ids):
            start += 1
        yield from rows[start:]
        if not rows or not has_next_page(body, page):
            return
        if start < len(rows):  # the boundary is the last row yielded; a page of repeats leaves it
            end, end_ids = _page_end(rows[start:], sort_key)
            boundary, boundary_ids = end, (boundary_ids | end_ids if end == boundary else end_ids)
        previous_ids = {row.get("id") for row in rows}
        page += 1


def _seen(
    row: dict[str, Any],
    sort_key: SortKey | None,
    descending: bool,
    boundary: Any,
    boundary_ids: set[Any],
    previous_ids: set[Any],
) -> bool:
    """Whether a row at the top of a page was yielded already (or arrived behind the read)."""
    key = sort_key(row) if sort_key is not None and boundary is not None else None
    if key is None:
        return row.get("id") is not None and row.get("id") in previous_ids
    if key == boundary:
        return row.get("id") in boundary_ids
    return key > boundary if descending else key < boundary


def _page_end(rows: list[dict[str, Any]], sort_key: SortKey | None) -> tuple[Any, set[Any]]:
    """The sort key of a page's last row, and the ids of the rows at its end that share it."""
    last = sort_key(rows[-1]) if sort_key is not None else None
    if last is None:
        return None, set()
    ids = set()
    for row in reversed(rows):
        if sort_key is not None and sort_key(row) != last:
            break
        ids.add(row.get("id"))
    return last, ids


def has_next_page(body: dict[str, Any], page: int) -> bool:
    links = body.get("links")
    if isinstance(links, dict) and "next" in links:
        return bool(links.get("next"))
    meta = body.get("meta")
    if isinstance(meta, dict) and meta.get("last_page") is not None:
        return page < int(meta["last_page"])
    return False
