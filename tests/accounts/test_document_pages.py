"""A job's documents and one document's page: text beside each grade, criteria,
feedback, failures with their cause, retry."""

from __future__ import annotations

import re

from tests.accounts.conftest import PASSWORD
from tests.factories import make_outcome
from tests.reports.helpers import grade_all


def _browser(team, username: str):
    client = team.as_role("none")
    assert (
        client.post("/sign-in", data={"username": username, "password": PASSWORD}).status_code
        == 200
    )
    return client


def _graded(team, sessions) -> tuple[str, dict[str, str]]:
    """A shared batch whose alice.txt is graded (with hostile feedback) and whose
    bob.txt failed; the job id and the documents' ids by name."""
    batch_id = team.shared_batch(name="Year 9 essays")
    owner = team.as_role("owner")
    owner.post(f"/api/batches/{batch_id}/start")
    grade_all(
        sessions,
        lambda item: (
            make_outcome(score=70, feedback="<script>alert(1)</script> Strong.")
            if item.document == "alice.txt"
            else "model not found"
        ),
    )
    job_id = owner.get(f"/api/batches/{batch_id}/jobs").json()["items"][0]["id"]
    documents = owner.get(f"/api/jobs/{job_id}/submissions").json()["items"]
    return job_id, {d["original_filename"]: d["id"] for d in documents}


def test_the_documents_of_a_job_with_each_models_score(team, sessions):
    job_id, documents = _graded(team, sessions)
    page = _browser(team, "vic").get(f"/jobs/{job_id}").text
    assert f'href="/documents/{documents["alice.txt"]}"' in page
    assert "70 / 100" in page and "model not found" in page
    only_failed = _browser(team, "vic").get(f"/jobs/{job_id}", params={"status": "failed"}).text
    assert "bob.txt" in only_failed and "alice.txt" not in only_failed
    assert _browser(team, "otto").get(f"/jobs/{job_id}").status_code == 404


def test_a_document_beside_its_grade_all_text_escaped(team, sessions):
    _, documents = _graded(team, sessions)
    page = _browser(team, "vic").get(f"/documents/{documents['alice.txt']}").text
    assert "Alice argues that engines changed towns." in page
    assert "Argument" in page and "35" in page  # the criterion and its score
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "Retry this document" not in page  # nothing failed


def test_a_failed_document_says_why_and_can_be_retried_by_an_editor(team, sessions):
    _, documents = _graded(team, sessions)
    bob = documents["bob.txt"]
    viewed = _browser(team, "vic").get(f"/documents/{bob}").text
    assert "model not found" in viewed and "Retry this document" not in viewed
    eddie = _browser(team, "eddie")
    page = eddie.get(f"/documents/{bob}").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    retried = eddie.post(f"/documents/{bob}/retry", data={"csrf_token": token})
    assert "Queued again for 1 model(s)" in retried.text
    assert _browser(team, "otto").get(f"/documents/{bob}").status_code == 404
