"""GET /api/batches: filters, free-text search, sorting and paging, on SQLite and
PostgreSQL; what a client gets wrong is a 422 that names it."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from grading_app.db import unit_of_work
from grading_app.models import BatchTemplate
from tests.factories import make_batch

T0 = datetime(2025, 3, 1, 12, 0, 0)


def _names(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [batch["batch_name"] for batch in response.json()["items"]]


def _listed(client, **params) -> list[str]:
    return sorted(_names(client.get("/api/batches", params=params)))


@pytest.fixture
def school(sessions):
    """Six batches that differ in every filtered column."""
    with unit_of_work(sessions) as session:
        template = BatchTemplate(name="Essay template")
        session.add(template)
        session.flush()
        rows = {
            "english draft": dict(status="draft", priority=2, tags=["english", "year 10"]),
            "english running": dict(status="processing", priority=9, tags=["english"]),
            "maths done": dict(status="completed", priority=5, tags=["maths", "year 10"]),
            "history failed": dict(status="failed", priority=7, tags=["engl"]),
            "old archived": dict(status="archived", priority=5, tags=["english"]),
            "no tags paused": dict(status="paused", priority=4, tags=[]),
        }
        for index, (name, values) in enumerate(rows.items()):
            batch = make_batch(session, name=name, priority=values["priority"])
            batch.status = values["status"]
            batch.tags = values["tags"]
            batch.created_at = T0 + timedelta(days=index)
            batch.deadline = T0 + timedelta(days=10 - index) if index % 2 else None
            batch.started_at = T0 + timedelta(days=index, hours=1) if index >= 1 else None
            batch.completed_at = T0 + timedelta(days=index, hours=5) if index == 2 else None
            batch.created_by = "alice" if index < 3 else "bob"
            batch.template_id = template.id if index in (0, 2) else None
            batch.description = "Persuasive ESSAYS on engines" if index == 3 else None
        return template.id


def test_archived_batches_are_listed_only_when_asked_for(client, school):
    default = _listed(client)
    assert "old archived" not in default and len(default) == 5
    assert _listed(client, status="archived") == ["old archived"]
    total = client.get("/api/batches", params={"status": "archived"}).json()["total"]
    assert total == 1


def test_several_statuses_repeated_or_comma_separated(client, school):
    wanted = ["english draft", "history failed"]
    assert _listed(client, status=["draft", "failed"]) == wanted
    assert _listed(client, status="draft,failed") == wanted
    assert _listed(client, status="draft, failed,archived") == [*wanted, "old archived"]


def test_priority_range(client, school):
    assert _listed(client, priority_min=7) == ["english running", "history failed"]
    assert _listed(client, priority_max=4) == ["english draft", "no tags paused"]
    assert _listed(client, priority_min=5, priority_max=5) == ["maths done"]


def test_tags_match_exactly_any_or_all(client, school):
    # "engl" is a tag of its own: no substring matches either way.
    assert _listed(client, tag="english") == ["english draft", "english running"]
    assert _listed(client, tag="engl") == ["history failed"]
    assert _listed(client, tag="eng") == []
    assert _listed(client, tag=["maths", "english"]) == [
        "english draft",
        "english running",
        "maths done",
    ]
    assert _listed(client, tag=["english", "year 10"], tags_match="all") == ["english draft"]
    assert _listed(client, tag="english", status="archived") == ["old archived"]


def test_date_ranges_take_any_offset_and_include_their_ends(client, school):
    assert _listed(client, created_from="2025-03-05T12:00:00Z") == ["no tags paused"]
    # 14:00+02:00 is 12:00 UTC: the same instant, included.
    assert _listed(client, created_to="2025-03-02T14:00:00+02:00") == [
        "english draft",
        "english running",
    ]
    assert _listed(client, deadline_from="2025-03-08T12:00:01Z") == ["english running"]
    assert _listed(client, deadline_to="2025-03-08T12:00:00") == [
        "history failed",
        "no tags paused",
    ]
    assert _listed(client, started_from="2025-03-04T00:00:00Z") == [
        "history failed",
        "no tags paused",
    ]
    assert _listed(client, started_to="2025-03-02T13:00:00Z") == ["english running"]
    assert _listed(client, completed_from="2025-03-01", completed_to="2025-03-31") == ["maths done"]


def test_template_creator_and_free_text(client, school):
    assert _listed(client, template_id=school) == ["english draft", "maths done"]
    assert _listed(client, created_by="bob") == ["history failed", "no tags paused"]
    assert _listed(client, q="ENGLISH") == ["english draft", "english running"]
    # Words may be in the name, the description or a tag, in any case.
    assert _listed(client, q="essays history") == ["history failed"]
    assert _listed(client, q="YEAR 10") == ["english draft", "maths done"]
    assert _listed(client, q="100%") == []
    assert _listed(client, q="english", created_by="alice", priority_min=5) == ["english running"]


def test_default_order_is_priority_then_newest(client, school):
    names = _names(client.get("/api/batches"))
    assert names == [
        "english running",
        "history failed",
        "maths done",
        "no tags paused",
        "english draft",
    ]


@pytest.mark.parametrize(
    ("sort", "order", "expected"),
    [
        ("name", None, ["english draft", "english running", "history failed", "maths done"]),
        ("name", "desc", ["no tags paused", "maths done", "history failed", "english running"]),
        ("created_at", "asc", ["english draft", "english running", "maths done", "history failed"]),
        ("created_at", None, ["no tags paused", "history failed", "maths done", "english running"]),
        # Batches without a deadline come last in both directions.
        (
            "deadline",
            "asc",
            ["no tags paused", "history failed", "english running"],
        ),
        (
            "deadline",
            "desc",
            ["english running", "history failed", "no tags paused"],
        ),
        (
            "started_at",
            "asc",
            ["english running", "maths done", "history failed", "no tags paused"],
        ),
        ("completed_at", "desc", ["maths done"]),
        ("status", None, ["maths done", "english draft", "history failed", "no tags paused"]),
        ("priority", "asc", ["english draft", "no tags paused", "maths done", "history failed"]),
    ],
)
def test_every_sort_key_both_ways(client, school, sort, order, expected):
    params = {"sort": sort, **({"order": order} if order else {})}
    names = _names(client.get("/api/batches", params=params))
    assert names[: len(expected)] == expected
    if sort in ("deadline", "completed_at"):  # the batches without one, after the others
        assert len(names) == 5


def test_pages_of_equal_batches_neither_overlap_nor_skip(client, sessions):
    with unit_of_work(sessions) as session:
        for index in range(7):
            batch = make_batch(session, name=f"same {index}")
            batch.created_at = T0
    for sort in ("priority", "created_at", "name", "deadline"):
        for order in ("asc", "desc"):
            seen: list[str] = []
            for offset in range(0, 8, 3):
                page = client.get(
                    "/api/batches",
                    params={"sort": sort, "order": order, "limit": 3, "offset": offset},
                ).json()
                assert page["total"] == 7
                seen += [batch["id"] for batch in page["items"]]
            assert len(seen) == len(set(seen)) == 7, (sort, order)


def test_unknown_parameters_and_bad_values_are_a_422_naming_them(client, school):
    def detail(path, expected=422, **params):
        response = client.get(path, params=params)
        assert response.status_code == expected, response.text
        return response.json()["detail"]

    typo = detail("/api/batches", stauts="failed")
    assert typo.startswith("Unknown query parameter 'stauts' (did you mean 'status'?)")
    assert "tags_match" in typo and "offset" in typo
    # Every route, not only this one.
    assert "Unknown query parameter 'sort'" in detail("/api/batches/x/jobs", sort="name")
    assert "Unknown query parameter 'x'" in detail("/health", x="1")
    assert "status" in detail("/api/batches", status="finished")
    assert "priority_min" in detail("/api/batches", priority_min=11)
    # A rule between two parameters, which no schema can state, is a 400.
    assert "priority_min (4) is more than priority_max (3)" in detail(
        "/api/batches", 400, priority_min=4, priority_max=3
    )
    assert "created_from" in detail("/api/batches", created_from="yesterday")
    assert "deadline_from" in detail(
        "/api/batches", 400, deadline_from="2025-02-01", deadline_to="2025-01-01"
    )
    assert "tags_match" in detail("/api/batches", tags_match="some")
    assert "sort" in detail("/api/batches", sort="size")
    assert "order" in detail("/api/batches", order="up")
    assert "q" in detail("/api/batches", q="x" * 201)
    assert "NUL" in detail("/api/batches", q="a\x00b")
