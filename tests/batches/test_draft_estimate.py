"""POST /api/batches/estimate: the cost of a batch not yet made, from its choices and
files, equal to what GET /api/batches/{id}/estimate says once the same batch exists;
nothing stored, and bad input a 4xx with a message."""

from __future__ import annotations

import tempfile

import sqlalchemy as sa

from grading_app.db import unit_of_work
from grading_app.models import JobBatch, Submission
from tests.batches.helpers import ESSAYS, add_job, new_batch
from tests.batches.test_estimate import LONG_PROMPT, _price_m1
from tests.conftest import ADMIN_PASSWORD
from tests.trust.corpus import docx_with, white
from tests.trust.test_trust_pipeline import PLANTED

BROKEN = ("files", ("broken.pdf", b"%PDF-1.4\nnot really a pdf", "application/pdf"))
SCHEME = (
    "marking_scheme",
    ("rubric.txt", b"Argument: 10 marks. Evidence: 10 marks.", "text/plain"),
)
RUBRIC = {
    "criteria": [
        {"name": "Argument", "max_score": 10},
        {"name": "Evidence", "max_score": 10},
        {"name": "Style", "max_score": 5},
    ]
}


def _figures(estimate: dict) -> tuple[list, dict]:
    return sorted(estimate["models"], key=lambda m: m["model"]), estimate["totals"]


def _estimate(client, files=ESSAYS, **form):
    return client.post("/api/batches/estimate", files=files, data=form)


def test_a_new_batch_is_estimated_as_the_batch_will_be(client, sessions):
    _price_m1(sessions)
    choices = {
        "prompt": LONG_PROMPT,
        "models": ["openai:m1", "claude:c1"],
        "delivery": "batch_api",
        "budget": "1",
    }

    response = _estimate(client, files=[*ESSAYS, BROKEN, SCHEME], **choices)

    assert response.status_code == 200, response.text
    draft = response.json()
    batch = new_batch(
        client,
        prompt=LONG_PROMPT,
        models=choices["models"],
        settings={"delivery": "batch_api", "budget": 1},
    )
    add_job(client, batch["id"], files=[*ESSAYS, BROKEN, SCHEME])
    made = client.get(f"/api/batches/{batch['id']}/estimate").json()
    assert _figures(draft) == _figures(made)
    assert draft["totals"]["to_grade"] == 4  # two essays, two models; the broken file left out
    assert draft["totals"]["cached_input_tokens"] > 0
    assert draft["delivery"] == "batch_api" and draft["budget_usd"] == 1
    assert draft["within_budget"] == made["within_budget"] is True
    assert draft["marking_scheme"] == "upload"
    files = {f["filename"]: f for f in draft["files"]}
    assert files["alice.txt"]["counted"] and files["alice.txt"]["characters"] == len(
        ESSAYS[0][1][1].decode()
    )
    assert not files["broken.pdf"]["counted"] and files["broken.pdf"]["characters"] == 0
    assert "broken.pdf" in files["broken.pdf"]["error"]
    assert files["broken.pdf"]["error_code"] == "corrupt"


def test_documents_held_for_review_are_left_out_as_the_batch_will_leave_them_out(client, sessions):
    _price_m1(sessions)
    planted = ("planted.docx", docx_with(planted=PLANTED, style=white), "application/octet-stream")
    files = [*ESSAYS, ("files", planted)]
    choices = {"prompt": "Grade the essay.", "models": ["openai:m1", "claude:c1"]}

    draft = _estimate(client, files=files, hidden_instructions="hold", **choices).json()

    batch = new_batch(client, settings={"hidden_instructions": "hold"}, **choices)
    upload = add_job(client, batch["id"], files=files, start="true")
    made = client.get(f"/api/batches/{batch['id']}/estimate").json()
    assert _figures(draft) == _figures(made)
    assert draft["totals"]["documents"] == 6  # three documents, two models
    assert draft["totals"]["to_grade"] == 4 and draft["totals"]["held"] == 2
    held = {f["filename"]: f["held"] for f in draft["files"]}
    assert held == {"alice.txt": False, "bob.txt": False, "planted.docx": True}
    # Flagged (the default), the same document is graded, and paid for.
    flagged = _estimate(client, files=files, **choices).json()
    assert flagged["totals"]["to_grade"] == 6 and flagged["totals"]["held"] == 0
    assert flagged["totals"]["cost_live_usd"] > draft["totals"]["cost_live_usd"]
    # Once a person has it graded anyway, the stored batch's estimate counts it.
    held_id = upload["files"][2]["submission_id"]
    assert client.post(f"/api/submissions/{held_id}/retry").status_code == 200
    retried = client.get(f"/api/batches/{batch['id']}/estimate").json()
    assert retried["totals"]["to_grade"] == 6 and retried["totals"]["held"] == 0


def test_saved_prompt_and_rubric_are_estimated_as_the_batch_will_be(client, sessions):
    _price_m1(sessions)
    prompt = client.post("/api/prompts", json={"name": "P", "prompt_text": "Grade the essay."})
    scheme = client.post(
        "/api/marking-schemes", json={"name": "S", "content": "Three criteria.", "rubric": RUBRIC}
    )
    library = {
        "saved_prompt_id": prompt.json()["id"],
        "saved_marking_scheme_id": scheme.json()["id"],
    }

    draft = _estimate(client, models=["openai:m1"], **library).json()

    batch = new_batch(client, prompt=None, **library)
    add_job(client, batch["id"])
    made = client.get(f"/api/batches/{batch['id']}/estimate").json()
    assert _figures(draft) == _figures(made)
    [m1] = draft["models"]
    assert m1["output_tokens"] == 2 * (120 + 90 * 3)  # three criteria in the rubric
    assert draft["marking_scheme"] == "library"
    assert draft["within_budget"] is None  # no budget


def test_nothing_is_stored_and_the_temporary_files_are_gone(
    client, sessions, upload_dir, tmp_path, monkeypatch
):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    long_essay = ("files", ("long.txt", b"Words and more words. " * 40_000, "text/plain"))

    response = _estimate(
        client, files=[*ESSAYS, long_essay, SCHEME], models="openai:m1", prompt="Go"
    )

    assert response.status_code == 200, response.text
    assert response.json()["totals"]["documents"] == 3
    assert list(scratch.iterdir()) == []
    assert not upload_dir.exists() or list(upload_dir.rglob("*")) == []
    with unit_of_work(sessions, read_only=True) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(JobBatch)) == 0
        assert session.scalar(sa.select(sa.func.count()).select_from(Submission)) == 0


def test_without_documents_there_is_nothing_to_pay(client):
    estimate = _estimate(client, files=None, models="openai:m1", prompt="Grade it.").json()

    assert estimate["models"] == [] and estimate["files"] == []
    assert estimate["totals"]["documents"] == 0 and estimate["totals"]["cost_live_usd"] is None


def test_bad_input_is_a_4xx_with_a_message(client):
    def refused(files=ESSAYS, **form) -> tuple[int, str]:
        response = _estimate(client, files=files, **form)
        assert 400 <= response.status_code < 500, response.text
        return response.status_code, response.json()["detail"]

    status, detail = refused(models="nowhere:m1", prompt="Grade it.")
    assert "nowhere:m1" in detail
    status, detail = refused(prompt="Grade it.")
    assert "Choose at least one model" in detail
    status, detail = refused(models="openai:m1")
    assert "prompt is empty" in detail
    broken_scheme = ("marking_scheme", ("rubric.pdf", b"%PDF-1.4\nbroken", "application/pdf"))
    status, detail = refused(files=[*ESSAYS, broken_scheme], models="openai:m1", prompt="Go")
    assert status == 400 and "marking scheme cannot be used" in detail
    status, detail = refused(models="openai:m1", prompt="Go", budget="lots")
    assert status == 422 and "budget" in detail
    # A budget the batch would refuse is refused, not estimated as no budget.
    for budget in ("0", "inf", "2000000"):
        status, detail = refused(models="openai:m1", prompt="Go", budget=budget)
        assert status == 422 and "budget" in detail
    status, detail = refused(models="openai:m1", prompt="Go", saved_prompt_id="nope")
    assert status == 404
    # The client's upload limit is 1 MB a file; a request carries at most 16 of them.
    huge = [("files", (f"big{i}.txt", b"x" * 1024 * 1024, "text/plain")) for i in range(17)]
    status, detail = refused(files=huge, models="openai:m1", prompt="Go")
    assert status == 413


def test_a_file_over_the_upload_limit_is_refused_and_left_out(client):
    big = ("files", ("big.txt", b"y" * (1024 * 1024 + 1), "text/plain"))

    estimate = _estimate(client, files=[ESSAYS[0], big], models="openai:m1", prompt="Go").json()

    [m1] = estimate["models"]
    assert m1["documents"] == 1
    [_, refused] = estimate["files"]
    assert refused["error_code"] == "too_large" and "upload limit" in refused["error"]


def test_a_browser_session_needs_its_csrf_token(client):
    del client.headers["Authorization"]
    signed = client.post(
        "/api/auth/sign-in", json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    form = {"models": "openai:m1", "prompt": "Grade it."}

    without = client.post("/api/batches/estimate", files=ESSAYS, data=form)
    token = {"X-CSRF-Token": signed.json()["csrf_token"]}
    with_token = client.post("/api/batches/estimate", files=ESSAYS, data=form, headers=token)

    assert without.status_code == 403 and "CSRF" in without.json()["detail"]
    assert with_token.status_code == 200, with_token.text
