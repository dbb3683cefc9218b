"""Laravel's length-aware paginator, as the vendor's samples show it.

Links carry only ``?page=N``: like the vendor's sample (and Laravel without ``withQueryString()``), the
filters of the request are not appended.
"""

from __future__ import annotations

import math
from typing import Any

PREVIOUS_LABEL = "« Previous"
NEXT_LABEL = "Next »"
ON_EACH_SIDE = 3


def resolve_page(raw: str | None) -> int:
    """Laravel's ``resolveCurrentPage``: a positive integer, anything else is page 1."""
    if raw is None:
        return 1
    text = raw.strip()
    if text.isascii() and text.isdigit() and int(text) >= 1:
        return int(text)
    return 1


def last_page(total: int, per_page: int) -> int:
    return max(1, math.ceil(total / per_page))


def page_window(current: int, last: int, each: int = ON_EACH_SIDE) -> list[int | None]:
    """Laravel's ``UrlWindow``: the page numbers shown in ``meta.links``, None for a ``...``."""
    if last < each * 2 + 8:
        return list(range(1, last + 1))
    window = each + 4
    if current <= window:
        return [*range(1, window + each + 1), None, last - 1, last]
    if current > last - window:
        return [1, 2, None, *range(last - (window + each - 1), last + 1)]
    return [1, 2, None, *range(current - each, current + each + 1), None, last - 1, last]


def paginated(
    message: str, rows: list[Any], *, total: int, page: int, per_page: int, path: str
) -> dict[str, Any]:
    """The full body: ``{status, message, data, links, meta}``."""
    last = last_page(total, per_page)

    def url(number: int) -> str:
        return f"{path}?page={number}"

    prev_url = url(page - 1) if page > 1 else None
    next_url = url(page + 1) if page < last else None
    first_row = (page - 1) * per_page + 1 if rows else None
    links: list[dict[str, Any]] = [{"url": prev_url, "label": PREVIOUS_LABEL, "active": False}]
    for number in page_window(page, last):
        if number is None:
            links.append({"url": None, "label": "...", "active": False})
        else:
            links.append({"url": url(number), "label": str(number), "active": number == page})
    links.append({"url": next_url, "label": NEXT_LABEL, "active": False})
    return {
        "status": True,
        "message": message,
        "data": rows,
        "links": {"first": url(1), "last": url(last), "prev": prev_url, "next": next_url},
        "meta": {
            "current_page": page,
            "from": first_row,
            "last_page": last,
            "links": links,
            "path": path,
            "per_page": per_page,
            "to": first_row + len(rows) - 1 if first_row is not None else None,
            "total": total,
        },
    }
