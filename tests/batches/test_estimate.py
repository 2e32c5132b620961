"""GET /api/batches/{id}/estimate: tokens and costs per model of the documents still to
grade, worked out here again from the same prompt and documents, and calibrated by the
batch's own grades once there are some."""

from __future__ import annotations

import math
import os

import sqlalchemy as sa

from grading_app.db import unit_of_work
from grading_app.grading.prompt import build_request
from grading_app.models import GradeResult, JobBatch, WorkItem
from grading_app.models.costs import ModelPrice
from tests.batches.helpers import ESSAYS, add_job, new_batch
from tests.processing.helpers import grade_everything

# The price of openai:m1 in USD per million tokens; claude:c1 has none.
INPUT, CACHED, OUTPUT, DISCOUNT = 2.0, 0.5, 8.0, 0.5
LONG_PROMPT = "Grade it. " + "Reward a clear thesis backed by evidence. " * 150


def _price_m1(sessions) -> None:
    with unit_of_work(sessions) as session:
        session.add(
            ModelPrice(
                provider="openai",
                model="m1",
                input_per_million=INPUT,
                output_per_million=OUTPUT,
                cached_input_per_million=CACHED,
                batch_discount=DISCOUNT,
            )
        )


def _calls(prompt: str) -> list[str]:
    """Each call's text as build_request makes it, for the two essays."""
    calls = [
        build_request(model="m1", instructions=prompt, document_text=text.decode(), document_name=n)
        for _, (n, text, _) in ESSAYS
    ]
    return [call.system + call.user for call in calls]


def _tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def _cost(input_tokens: int, cached: int, output: int, *, batch: bool = False) -> float:
    usd = ((input_tokens - cached) * INPUT + cached * CACHED + output * OUTPUT) / 1e6
    return usd * (1 - DISCOUNT) if batch else usd


def test_estimates_tokens_and_costs_per_model(client, sessions):
    _price_m1(sessions)
    batch = new_batch(
        client,
        prompt=LONG_PROMPT,
        models=["openai:m1", "claude:c1"],
        settings={"delivery": "batch_api", "budget": 1},
    )
    add_job(client, batch["id"])

    response = client.get(f"/api/batches/{batch['id']}/estimate")

    assert response.status_code == 200, response.text
    estimate = response.json()
    calls = _calls(LONG_PROMPT)
    shared = os.path.commonprefix(calls)
    assert _tokens(shared) >= 1024  # long enough to be cached
    input_tokens = sum(_tokens(call) for call in calls)
    cached = _tokens(shared) * (len(calls) - 1)
    output = 2 * (120 + 90 * 4)  # no rubric: four criteria guessed
    m1, c1 = sorted(estimate["models"], key=lambda m: m["model"], reverse=True)
    assert m1["model"] == "openai:m1" and c1["model"] == "claude:c1"
    for figures in (m1, c1):
        assert figures["documents"] == figures["to_grade"] == 2
        assert figures["input_tokens"] == input_tokens
        assert figures["cached_input_tokens"] == cached
        assert figures["output_tokens"] == output
        assert "4 characters per token" in figures["input_basis"]
    assert m1["cost_live_usd"] == round(_cost(input_tokens, cached, output), 6)
    assert m1["cost_batch_api_usd"] == round(_cost(input_tokens, cached, output, batch=True), 6)
    assert c1["cost_live_usd"] is None and c1["cost_batch_api_usd"] is None
    assert "No price known for claude:c1" in c1["note"]
    totals = estimate["totals"]
    assert totals["input_tokens"] == 2 * input_tokens and totals["to_grade"] == 4
    assert totals["cost_live_usd"] == m1["cost_live_usd"] and not totals["complete"]
    assert totals["expected_cost_usd"] == m1["cost_batch_api_usd"]  # delivery batch_api
    assert estimate["budget_usd"] == 1 and estimate["spent_usd"] == 0
    assert estimate["remaining_budget_usd"] == 1 and estimate["within_budget"] is True


def test_a_short_prompt_is_not_cached_and_a_provider_without_batch_api_is_said(
    client, sessions, monkeypatch
):
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-test-openrouter")
    batch = new_batch(client, models=["openrouter:openai/gpt-4o"])
    add_job(client, batch["id"])

    [figures] = client.get(f"/api/batches/{batch['id']}/estimate").json()["models"]

    assert figures["cached_input_tokens"] == 0
    assert figures["cost_live_usd"] is not None  # a default price
    assert figures["cost_batch_api_usd"] is None
    assert figures["note"] == "openrouter has no batch API: live calls only"


def test_graded_documents_calibrate_the_rest(client, sessions, provider_env):
    _price_m1(sessions)
    batch = new_batch(client, prompt="Grade it.", models=["openai:m1"])
    first = add_job(client, batch["id"])["job"]["id"]
    second = add_job(client, batch["id"])["job"]["id"]
    client.post(f"/api/batches/{batch['id']}/start")
    assert client.post(f"/api/jobs/{second}/pause").status_code == 200

    grade_everything(sessions, provider_env)

    estimate = client.get(f"/api/batches/{batch['id']}/estimate").json()
    [figures] = estimate["models"]
    with unit_of_work(sessions, read_only=True) as session:
        used = session.execute(
            sa.select(GradeResult.prompt_tokens, GradeResult.completion_tokens)
            .join(WorkItem, WorkItem.id == GradeResult.work_item_id)
            .where(WorkItem.job_id == first)
        ).all()
    assert len(used) == 2
    estimated = sum(_tokens(call) for call in _calls("Grade it."))
    ratio = sum(row.prompt_tokens for row in used) / estimated
    mean_output = sum(row.completion_tokens for row in used) / 2
    assert figures["documents"] == 4 and figures["to_grade"] == 2 and figures["graded"] == 2
    # The second job's documents are the same two essays.
    assert figures["input_tokens"] == round(estimated * ratio)
    assert figures["output_tokens"] == round(mean_output * 2)
    assert figures["input_basis"].startswith("calibrated on 2 graded document(s)")
    assert figures["output_basis"].startswith("observed:")
    assert figures["cost_live_usd"] == round(
        _cost(figures["input_tokens"], 0, figures["output_tokens"]), 6
    )


def test_spent_and_the_budget_left(client, sessions):
    batch = new_batch(client, settings={"budget": 5})
    add_job(client, batch["id"])
    with unit_of_work(sessions) as session:
        session.get(JobBatch, batch["id"]).spent_usd = 4.25

    estimate = client.get(f"/api/batches/{batch['id']}/estimate").json()

    assert estimate["spent_usd"] == 4.25 and estimate["remaining_budget_usd"] == 0.75
    assert client.get("/api/batches/nope/estimate").status_code == 404
