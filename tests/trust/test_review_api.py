"""Human review: the queue says which documents need a look and why, most doubtful
first; a reviewer accepts or overrides (the override is checked against the grade and
recorded in the audit trail); grades are released only when reviewed, or on purpose.
On SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from grading_app.db import unit_of_work
from grading_app.models import AuditEvent, JobBatch, Submission
from tests.conftest import sign_in_admin
from tests.factories import make_batch, make_outcome
from tests.reports.helpers import CLAUDE, GPT, Decision, Item, add_job, grade_all

# Percent of 100 per document: GPT, Claude (None: the model fails it).
SCORES = {
    "essay_0.txt": (40, 50),  # disagree by 10
    "essay_1.txt": (60, 60),  # agree, on the 60 boundary
    "essay_2.txt": (70, 95),  # disagree by 25
    "essay_3.txt": (80, 82),  # agree, far from a boundary
    "essay_4.txt": ("invalid", "invalid"),  # no grade at all
}


@pytest.fixture
def batch_id(client, sessions) -> str:
    sign_in_admin(client)
    with unit_of_work(sessions) as session:
        batch = make_batch(
            session,
            name="Reviewed essays",
            settings={"disagreement_threshold": 5, "grade_boundaries": [60], "boundary_margin": 2},
        )
        add_job(
            session, batch=batch, name="Compared", targets=[GPT, CLAUDE], documents=list(SCORES)
        )
        batch_id = batch.id

    def decide(item: Item) -> Decision:
        score = SCORES[item.document][0 if item.model == GPT.model else 1]
        if score == "invalid":
            return "the model's answer was not a valid grade, even after a repair request"
        return make_outcome(score=score)

    grade_all(sessions, decide)
    with unit_of_work(sessions) as session:
        assert session.get(JobBatch, batch_id).status == "completed_with_errors"
    return batch_id


def _ids(sessions) -> dict[str, str]:
    with unit_of_work(sessions, read_only=True) as session:
        return dict(session.execute(sa.select(Submission.original_filename, Submission.id)).all())


def test_the_queue_lists_doubtful_documents_most_doubtful_first_with_reasons(client, batch_id):
    response = client.get(f"/api/batches/{batch_id}/review-queue")

    assert response.status_code == 200, response.text
    page = response.json()
    names = [item["original_filename"] for item in page["items"]]
    assert names == ["essay_2.txt", "essay_0.txt", "essay_1.txt"]
    assert page["total"] == 3
    by_name = {item["original_filename"]: item for item in page["items"]}
    assert [r["code"] for r in by_name["essay_2.txt"]["reasons"]] == ["disagreement"]
    assert "25.0 points" in by_name["essay_2.txt"]["reasons"][0]["detail"]
    assert {r["code"] for r in by_name["essay_1.txt"]["reasons"]} == {"boundary"}
    assert by_name["essay_2.txt"]["scores"] == {
        "openai:gpt-4o": 70.0,
        "claude:claude-sonnet-4": 95.0,
    }
    assert (
        by_name["essay_2.txt"]["doubt"]
        > by_name["essay_0.txt"]["doubt"]
        > by_name["essay_1.txt"]["doubt"]
    )


def test_an_override_is_checked_wins_and_leaves_the_queue(client, sessions, batch_id):
    essay = _ids(sessions)["essay_2.txt"]
    url = f"/api/submissions/{essay}/review"

    too_high = client.post(url, json={"action": "override", "score": 101})
    assert (
        too_high.status_code == 400 and "above the grade's maximum 100" in too_high.json()["detail"]
    )
    unknown = client.post(url, json={"action": "override", "score": 80, "criteria": {"Style": 3}})
    assert (
        unknown.status_code == 400
        and "no criterion 'Style' (it has: Argument)" in unknown.json()["detail"]
    )
    criterion_high = client.post(
        url, json={"action": "override", "score": 80, "criteria": {"argument": 51}}
    )
    assert (
        criterion_high.status_code == 400
        and "above its maximum 50" in criterion_high.json()["detail"]
    )

    done = client.post(
        url,
        json={"action": "override", "score": 78, "criteria": {" ARGUMENT ": 39}, "comment": "Fair"},
    )

    assert done.status_code == 200, done.text
    review = done.json()
    assert review["state"] == "overridden" and review["score"] == 78 and review["max_score"] == 100
    assert review["criteria"] == {"Argument": 39} and review["comment"] == "Fair"
    assert review["reviewed_by"] == "admin" and review["reviewed_at"]
    assert [r["code"] for r in review["reasons"]] == ["disagreement"]  # still says why
    assert client.get(url).json()["state"] == "overridden"
    queue = client.get(f"/api/batches/{batch_id}/review-queue").json()
    assert "essay_2.txt" not in [item["original_filename"] for item in queue["items"]]
    with unit_of_work(sessions, read_only=True) as session:
        events = session.scalars(sa.select(AuditEvent).where(AuditEvent.target_id == essay)).all()
    assert [(e.action, e.actor, e.detail["score"]) for e in events] == [
        ("review_override", "admin", 78)
    ]


def test_accepting_keeps_the_models_grade(client, sessions, batch_id):
    essay = _ids(sessions)["essay_0.txt"]

    accepted = client.post(f"/api/submissions/{essay}/review", json={"action": "accept"})

    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["state"] == "accepted" and accepted.json()["score"] == 45  # mean
    mixed = client.post(f"/api/submissions/{essay}/review", json={"action": "accept", "score": 3})
    assert mixed.status_code == 400


def test_a_document_without_a_grade_cannot_be_reviewed(client, sessions, batch_id):
    essay = _ids(sessions)["essay_4.txt"]

    refused = client.post(f"/api/submissions/{essay}/review", json={"action": "accept"})

    assert refused.status_code == 409 and "no grade to review yet" in refused.json()["detail"]


def test_release_needs_every_document_reviewed_or_says_so(client, sessions, batch_id):
    url = f"/api/batches/{batch_id}/release"
    refused = client.post(url, json={})
    assert refused.status_code == 409
    assert "4 of 4 graded documents are not reviewed" in refused.json()["detail"]

    ids = _ids(sessions)
    for name in ("essay_0.txt", "essay_1.txt", "essay_2.txt"):
        assert (
            client.post(
                f"/api/submissions/{ids[name]}/review", json={"action": "accept"}
            ).status_code
            == 200
        )
    still = client.post(url, json={})
    assert still.status_code == 409 and "1 of 4" in still.json()["detail"]

    released = client.post(url, json={"release_unreviewed": True})

    assert released.status_code == 200, released.text
    body = released.json()
    assert (body["documents"], body["reviewed"], body["released_unreviewed"]) == (4, 3, 1)
    with unit_of_work(sessions, read_only=True) as session:
        batch = session.get(JobBatch, batch_id)
        assert batch.grades_released_at is not None and batch.grades_released_unreviewed == 1


def test_an_unknown_document_or_batch_is_a_404(client, batch_id):
    assert client.post("/api/submissions/nope/review", json={"action": "accept"}).status_code == 404
    assert client.get("/api/batches/nope/review-queue").status_code == 404


def test_the_gradebook_shows_the_grade_that_counts_and_what_waits(client, sessions, batch_id):
    import csv
    import io

    essay = _ids(sessions)["essay_2.txt"]
    client.post(f"/api/submissions/{essay}/review", json={"action": "override", "score": 78})

    response = client.get(f"/api/batches/{batch_id}/export", params={"format": "csv"})

    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text.lstrip("\ufeff"))))
    by_name = {row["document"]: row for row in rows}
    assert (by_name["essay_2.txt"]["final_score"], by_name["essay_2.txt"]["review"]) == (
        "78",
        "overridden",
    )
    assert by_name["essay_2.txt"]["openai:gpt-4o score"] == "70"  # the AI grade stays
    assert (by_name["essay_0.txt"]["final_score"], by_name["essay_0.txt"]["needs_review"]) == (
        "45",
        "yes",
    )
    assert by_name["essay_3.txt"]["needs_review"] == "" and by_name["essay_3.txt"]["review"] == (
        "unreviewed"
    )
    assert "models disagree by 10.0 points" in by_name["essay_0.txt"]["review_reasons"]


def test_analytics_count_reviews_and_measure_each_model_against_the_reviewers(
    client, sessions, batch_id
):
    ids = _ids(sessions)
    before = client.get(f"/api/batches/{batch_id}/analytics").json()  # kept: the batch settled
    # The models' means: 45, 60, 82.5, 81 (essay_4 has no grade).
    assert before["final_scores"]["count"] == 4 and before["final_scores"]["mean"] == 67.125
    # Human 45 on essay_0 (GPT 40, Claude 50), 78 on essay_2 (GPT 70, Claude 95).
    client.post(f"/api/submissions/{ids['essay_0.txt']}/review", json={"action": "accept"})
    client.post(
        f"/api/submissions/{ids['essay_2.txt']}/review",
        json={"action": "override", "score": 78, "criteria": {"Argument": 40}},
    )

    analytics = client.get(f"/api/batches/{batch_id}/analytics").json()

    review = analytics["review"]
    assert (review["waiting"], review["accepted"], review["overridden"]) == (1, 1, 1)
    # The reviewers' grades win: 45, 60, 78, 81.
    assert analytics["final_scores"]["mean"] == 66.0
    by_label = {model["label"]: model for model in review["model_vs_human"]}
    gpt, claude = by_label["openai:gpt-4o"], by_label["claude:claude-sonnet-4"]
    assert gpt["documents"] == 2 and gpt["mean_absolute_difference"] == 6.5  # 5 and 8
    assert gpt["share_within_5_points"] == 0.5 and gpt["share_within_10_points"] == 1.0
    assert claude["mean_absolute_difference"] == 11.0  # 5 and 17
    # Criterion Argument (of 50): GPT gave 35, the reviewer 40 -> 10 points of 100.
    assert gpt["criteria"] == {"Argument": 10.0}


def test_batches_from_the_education_templates_redact_by_default(client):
    def settings_of(**request) -> dict:
        response = client.post("/api/batches", json={"name": "From a template", **request})
        assert response.status_code == 201, response.text
        return response.json()["batch_settings"]

    assert settings_of(template="Academic Essay Grading")["redact_pii"] is True
    assert settings_of(template="Creative Writing Assessment")["redact_pii"] is True
    assert "redact_pii" not in settings_of(template="Business Report Review")
    assert "redact_pii" not in settings_of()
    kept_off = settings_of(template="Academic Essay Grading", settings={"redact_pii": False})
    assert kept_off["redact_pii"] is False


def test_the_dashboard_says_how_many_wait_per_batch(client, batch_id):
    board = client.get("/api/analytics").json()

    assert board["waiting_for_review"] == [
        {"batch_id": batch_id, "batch_name": "Reviewed essays", "waiting": 3}
    ]
