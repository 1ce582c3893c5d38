"""The comparison page's runs table: query, sort and page in the database."""

from __future__ import annotations

from typing import Any, Optional

from django.db.models import Count, F, OuterRef, Subquery, Window
from django.db.models.fields.json import KeyTransform

from webapp.runs.models import Tag, get_runs_for_user

from .query import QueryError, compile_query, resolve_field

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50
SORT_COLUMNS = {"status": "status", "dataset": "dataset__name", "owner": "owner__username", "name": "name",
                "id": "id", "queue": "queue", "date": "created_at"}


def sort_expression(sort: str):
    """`-val/mrr`, `cube.steps`, `date` → an order_by expression (missing values last)."""
    descending = sort.startswith("-")
    name = sort.lstrip("-+").strip()
    field = resolve_field(name, 1)
    if field.kind in SORT_COLUMNS:
        expression = F(SORT_COLUMNS[field.kind])
    elif field.kind in ("config", "metric"):
        expression = F("config" if field.kind == "config" else "summary")
        for part in field.path:  # a native JSON value: numbers sort as numbers
            expression = KeyTransform(part, expression)
    elif field.kind == "teacher":
        expression = KeyTransform("name", KeyTransform("0", F("config__teachers")))
    elif field.kind == "tag":
        expression = first_tag_name()
    else:
        raise QueryError(f"cannot sort by {name!r}", 1)
    return expression.desc(nulls_last=True) if descending else expression.asc(nulls_last=True)


def first_tag_name() -> Subquery:
    """A run's alphabetically first tag (NULL without tags): a subquery rather than Min(),
    which would GROUP BY every run column and clash with the COUNT(*) OVER () of the page."""
    return Subquery(Tag.objects.filter(runs=OuterRef("pk")).order_by("name").values("name")[:1])


def query_runs(user, query: str = "", sort: str = "-date", page: int = 1, page_size: int = DEFAULT_PAGE_SIZE,
               columns: Optional[list[str]] = None) -> dict[str, Any]:
    """One page of the user's runs matching ``query``; QueryError for a bad query or sort."""
    runs = get_runs_for_user(user).filter(compile_query(query))
    order = sort_expression(sort or "-date")
    runs = runs.order_by(order, "-id")
    page_size = max(1, min(page_size, MAX_PAGE_SIZE))
    page = max(1, page)
    # Sort and slice ids only, then load the page's rows: sorting 10,000 whole rows (configs
    # and summaries included) costs ~10× more than sorting their ids and sort keys. The total
    # comes with the page as COUNT(*) OVER (): one pass over the JSON instead of two.
    window = runs.annotate(total=Window(Count("pk"))).values_list("pk", "total")
    found = list(window[(page - 1) * page_size: page * page_size])
    count = found[0][1] if found else runs.count()
    ids = [pk for pk, _ in found]
    loaded = get_runs_for_user(user).filter(pk__in=ids).select_related("owner", "dataset").prefetch_related("tags")
    by_id = {run.pk: run for run in loaded.defer("config_yaml")}
    rows = [by_id[pk] for pk in ids if pk in by_id]
    columns = columns or []
    fields = [resolve_field(column, 1) for column in columns]
    return {
        "count": count,
        "page": page,
        "page_size": page_size,
        "pages": max(1, -(-count // page_size)),
        "results": [_row(run, columns, fields) for run in rows],
    }


def _row(run, columns, fields) -> dict[str, Any]:
    values = {}
    for column, field in zip(columns, fields):
        if field.kind == "config":
            values[column] = _dig(run.config, field.path)
        elif field.kind == "metric":
            values[column] = (run.summary or {}).get(field.path[0])
        elif field.kind == "teacher":
            values[column] = [t.get("name") for t in (run.config or {}).get("teachers", []) if isinstance(t, dict)]
    return {
        "id": run.pk, "name": run.name, "status": run.status, "dataset": run.dataset.name,
        "owner": run.owner.username, "created_at": run.created_at.isoformat(), "queue": run.queue,
        "tags": [tag.name for tag in run.tags.all()], "last_step": run.last_step,
        "is_baseline": bool(getattr(run, "is_baseline", False)), "columns": values,
    }


def _dig(value: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value
