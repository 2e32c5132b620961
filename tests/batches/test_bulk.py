"""POST /api/batches/bulk: one action on many batches, each on its own (done, or skipped
with the reason), chosen by ids or by the list's filter; a dry run changes nothing."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from grading_app.db import unit_of_work
from grading_app.models import BatchStatus, JobBatch, utcnow
from tests.batches.helpers import add_job, batch_with_job, claim_items, fail_items, new_batch
from tests.factories import make_batch


def _bulk(client, status: int = 200, **body):
    response = client.post("/api/batches/bulk", json=body)
    assert response.status_code == status, response.text
    return response.json()


def _statuses(client) -> dict[str, str]:
    listed = client.get("/api/batches", params={"status": [s for s in _ALL], "limit": 500})
    return {batch["batch_name"]: batch["status"] for batch in listed.json()["items"]}


_ALL = tuple(BatchStatus)


def _batches(sessions, **statuses: str) -> dict[str, str]:
    with unit_of_work(sessions) as session:
        return {
            name: make_batch(session, name=name, status=status).id
            for name, status in statuses.items()
        }


def test_each_batch_is_done_or_skipped_with_the_reason(client, sessions):
    ids = _batches(sessions, a="pending", b="draft", c="processing")

    answer = _bulk(client, action="pause", ids=[ids["a"], ids["b"], ids["c"], "nope", ids["a"]])

    assert (answer["matched"], answer["done"], answer["skipped"]) == (4, 2, 2)
    assert answer["action"] == "pause" and answer["dry_run"] is False
    by_id = {result["id"]: result for result in answer["results"]}
    assert by_id[ids["a"]] == {
        "id": ids["a"],
        "batch_name": "a",
        "outcome": "done",
        "reason": None,
        "status": "paused",
    }
    assert by_id[ids["b"]]["outcome"] == "skipped"
    assert by_id[ids["b"]]["reason"] == "Cannot pause batch 'b': it is draft"
    assert by_id[ids["b"]]["status"] == "draft"
    assert by_id["nope"] == {
        "id": "nope",
        "batch_name": None,
        "outcome": "skipped",
        "reason": "No batch with id nope",
        "status": None,
    }
    # The refusal undid nothing else.
    assert _statuses(client) == {"a": "paused", "b": "draft", "c": "paused"}


def test_a_filter_selects_the_batches(client, sessions):
    _batches(sessions, done="completed", bad="failed", off="cancelled", busy="processing")

    answer = _bulk(client, action="archive", filter={"status": "completed,failed"})

    assert sorted(r["batch_name"] for r in answer["results"]) == ["bad", "done"]
    assert answer["done"] == 2
    assert sorted(b["batch_name"] for b in client.get("/api/batches").json()["items"]) == [
        "busy",
        "off",
    ]
    everything = _bulk(client, action="archive", filter={})
    assert sorted((r["batch_name"], r["outcome"]) for r in everything["results"]) == [
        ("busy", "skipped"),
        ("off", "done"),
    ]
    bad_filter = _bulk(client, 422, action="archive", filter={"status": "finished"})
    assert "filter.status" in bad_filter["detail"]
    assert "stauts" in _bulk(client, 422, action="archive", filter={"stauts": "x"})["detail"]


def test_a_dry_run_says_what_would_happen_and_changes_nothing(client, sessions, upload_dir):
    kept = new_batch(client, name="with files")
    add_job(client, kept["id"])
    ids = _batches(sessions, running="processing", done="completed")
    chosen = [kept["id"], ids["running"], ids["done"]]
    files = set(upload_dir.iterdir())

    dry = _bulk(client, action="delete", ids=chosen, dry_run=True)

    assert dry["dry_run"] is True and (dry["done"], dry["skipped"]) == (2, 1)
    assert set(upload_dir.iterdir()) == files
    assert client.get("/api/batches").json()["total"] == 3
    real = _bulk(client, action="delete", ids=chosen)
    assert [(r["outcome"], r["reason"]) for r in real["results"]] == [
        (r["outcome"], r["reason"]) for r in dry["results"]
    ]
    assert real["results"][1]["reason"] == (
        "Cannot delete batch 'running': it is processing; pause or cancel it first"
    )
    assert not any(upload_dir.iterdir())
    assert client.get("/api/batches").json()["total"] == 1


def test_the_lifecycle_actions(client, sessions):
    batch = new_batch(client, name="graded")
    add_job(client, batch["id"], start="true")
    fail_items(sessions, claim_items(sessions))
    ids = _batches(sessions, paused="paused")
    ids["draft"], _ = batch_with_job(client, name="to start")
    empty = _batches(sessions, empty="draft")["empty"]

    started = _bulk(client, action="start", ids=[ids["draft"], empty])["results"]
    assert [r["status"] for r in started] == ["pending", "draft"]
    assert "no documents" in started[1]["reason"]
    resumed = _bulk(client, action="resume", ids=[ids["paused"], batch["id"]])["results"]
    assert [r["outcome"] for r in resumed] == ["done", "skipped"]
    assert resumed[0]["status"] == "pending"
    retried = _bulk(client, action="retry-failed", ids=[batch["id"], ids["draft"]])["results"]
    assert [r["outcome"] for r in retried] == ["done", "skipped"]
    assert retried[0]["status"] == "processing"
    assert client.get(f"/api/batches/{batch['id']}").json()["failed_items"] == 0
    cancelled = _bulk(client, action="cancel", filter={"status": ["processing", "pending"]})
    assert {r["status"] for r in cancelled["results"]} == {"cancelled"}
    assert cancelled["done"] == 3


def test_tags_and_priority(client, sessions):
    ids = _batches(sessions, a="draft", b="completed", old="archived")
    with unit_of_work(sessions) as session:
        session.get(JobBatch, ids["a"]).tags = ["english", "term 1"]

    added = _bulk(client, action="add_tags", ids=list(ids.values()), tags=["year 10", "english"])
    assert [r["outcome"] for r in added["results"]] == ["done", "done", "skipped"]
    assert added["results"][2]["reason"] == "Cannot change batch 'old': it is archived"
    removed = _bulk(client, action="remove_tags", filter={"tag": "english"}, tags=["english"])
    assert removed["done"] == 2
    tags = {b["batch_name"]: b["tags"] for b in client.get("/api/batches").json()["items"]}
    assert tags == {"a": ["term 1", "year 10"], "b": ["year 10"]}

    _bulk(client, action="set_priority", ids=[ids["a"], ids["b"]], priority=9)
    priorities = {
        b["batch_name"]: b["priority"] for b in client.get("/api/batches").json()["items"]
    }
    assert priorities == {"a": 9, "b": 9}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"action": "pause"}, "either by `ids` or by `filter`"),
        ({"action": "pause", "ids": ["a"], "filter": {}}, "either by `ids` or by `filter`"),
        ({"action": "pause", "ids": []}, "`ids` is empty"),
        ({"action": "add_tags", "ids": ["a"]}, "add_tags needs `tags`"),
        ({"action": "pause", "ids": ["a"], "tags": ["x"]}, "`tags` goes with add_tags"),
        ({"action": "set_priority", "ids": ["a"]}, "set_priority needs `priority`"),
        ({"action": "set_priority", "ids": ["a"], "priority": 11}, "between 1 and 10, not 11"),
        ({"action": "pause", "ids": ["a"], "priority": 3}, "`priority` goes with set_priority"),
        ({"action": "add_tags", "ids": ["a"], "tags": ["x" * 51]}, "longer than 50"),
        ({"action": "pause", "ids": [str(i) for i in range(1001)]}, "at most 1000"),
    ],
)
def test_a_bad_request_as_a_whole_is_a_400(client, sessions, body, message):
    assert message in _bulk(client, 400, **body)["detail"]


def test_an_unknown_action_is_a_422(client):
    assert "action" in _bulk(client, 422, action="explode", ids=["a"])["detail"]


def test_a_filter_matching_too_many_batches_is_refused(client, sessions):
    now = utcnow()
    rows = [
        {
            "id": str(uuid.uuid4()),
            "batch_name": f"batch {i}",
            "status": "draft",
            "priority": 5,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(1001)
    ]
    with unit_of_work(sessions) as session:
        session.execute(sa.insert(JobBatch), rows)
    refused = _bulk(client, 400, action="archive", filter={"status": "draft"})["detail"]
    assert refused.startswith("The filter matches more than 1000 batches")
    assert client.get("/api/batches", params={"status": "archived"}).json()["total"] == 0
    fits = _bulk(client, action="add_tags", filter={"q": "batch 99"}, tags=["x"], dry_run=True)
    assert fits["matched"] == 19  # every word: "batch 99", "batch 199", "batch 990"...
