"""What grading cost, as the batch, its analytics, its exports and the dashboard report
it: each the sum of the costs stored with the grades."""

from __future__ import annotations

import csv
import io
import json

import pytest
import sqlalchemy as sa

from grading_app.accounts import credentials, users
from grading_app.accounts.principal import Role
from grading_app.db import unit_of_work
from grading_app.models import GradeResult, JobBatch
from tests.factories import make_batch
from tests.reports.helpers import CLAUDE, GPT, MYSTERY, graded_batch
from tests.reports.xlsx import read_workbook


def _stored(sessions, batch_id):
    with unit_of_work(sessions, read_only=True) as session:
        rows = session.execute(
            sa.select(GradeResult.provider, GradeResult.model, GradeResult.cost_usd)
        ).all()
        spent = session.get(JobBatch, batch_id).spent_usd
    return rows, spent


def test_the_batch_its_analytics_and_exports_report_the_stored_costs(client, sessions):
    graded = graded_batch(sessions)
    rows, spent = _stored(sessions, graded.batch_id)
    by_model: dict[str, float] = {}
    for provider, model, cost in rows:
        if cost is not None:
            by_model[f"{provider}:{model}"] = by_model.get(f"{provider}:{model}", 0) + cost
    assert spent > 0 and spent == pytest.approx(sum(by_model.values()))

    batch = client.get(f"/api/batches/{graded.batch_id}").json()
    assert batch["spent_usd"] == pytest.approx(spent)

    figures = client.get(f"/api/batches/{graded.batch_id}/analytics").json()
    assert figures["cost"]["total_usd"] == pytest.approx(spent)
    assert not figures["cost"]["estimated"] and figures["cost"]["unpriced_calls"] == 1
    models = {m["label"]: m for m in figures["models"]}
    for label in (GPT.label, CLAUDE.label):
        assert models[label]["cost"]["recorded_usd"] == pytest.approx(by_model[label])
    assert models[MYSTERY.label]["cost"] is None
    job = client.get(f"/api/jobs/{graded.compared_job_id}/analytics").json()
    assert job["cost"]["total_usd"] == pytest.approx(spent)  # the other job has no price

    exported = client.get(f"/api/batches/{graded.batch_id}/export", params={"format": "csv"})
    table = list(csv.DictReader(io.StringIO(exported.text)))
    cost_columns = [c for c in table[0] if c.endswith(" cost_usd")]
    assert sorted(cost_columns) == sorted(
        f"{label} cost_usd" for label in (GPT.label, CLAUDE.label, MYSTERY.label)
    )
    assert f"{GPT.label} cached_tokens" in table[0]
    csv_total = sum(float(row[c]) for row in table for c in cost_columns if row[c])
    assert csv_total == pytest.approx(spent)

    document = client.get(f"/api/batches/{graded.batch_id}/export", params={"format": "json"})
    exported_json = json.loads(document.text)
    assert exported_json["cost_usd"] == pytest.approx(spent)
    assert exported_json["batch"]["spent_usd"] == pytest.approx(spent)
    grades = [g for j in exported_json["jobs"] for d in j["documents"] for g in d["grades"]]
    assert sum(g["cost_usd"] or 0 for g in grades) == pytest.approx(spent)
    assert all("cached_tokens" in g for g in grades)

    workbook = client.get(f"/api/batches/{graded.batch_id}/export", params={"format": "xlsx"})
    summary = {row[0]: row[1] for row in read_workbook(workbook.content)["Summary"] if len(row) > 1}
    assert summary["Total cost (USD)"] == pytest.approx(spent)


def _token(client, username: str, role: Role = Role.TEACHER) -> tuple[str, dict[str, str]]:
    with unit_of_work(client.app.state.sessionmaker) as session:
        user = users.create_user(
            session, username=username, password="a long enough password", role=role
        )
        token = credentials.create_token(session, user, name="tests").token
        return user.id, {"Authorization": f"Bearer {token}"}


def test_the_dashboard_lists_spending_per_owner_to_administrators_and_their_own_to_others(
    client, sessions
):
    ana, ana_headers = _token(client, "ana")
    bob, _ = _token(client, "bob")
    with unit_of_work(sessions) as session:
        for owner, spent in ((ana, 1.25), (ana, 0.5), (bob, 3.0)):
            batch = make_batch(session, name=f"Spent {spent}")
            batch.owner_id = owner
            batch.spent_usd = spent

    everyone = client.get("/api/analytics").json()["cost_by_owner"]
    owners = {row["owner"]: row for row in everyone}
    assert [row["owner"] for row in everyone][:2] == ["bob", "ana"]  # most first
    assert owners["ana"]["spent_usd"] == pytest.approx(1.75) and owners["ana"]["batches"] == 2
    assert owners["bob"]["spent_usd"] == pytest.approx(3.0)

    own = client.get("/api/analytics", headers=ana_headers).json()["cost_by_owner"]
    assert [(row["owner"], row["spent_usd"]) for row in own] == [("ana", pytest.approx(1.75))]
