"""A job's documents and one document's page: text beside each grade, criteria,
feedback, failures with their cause, retry."""

from __future__ import annotations

import re

from tests.accounts.conftest import browser_as
from tests.factories import make_outcome
from tests.reports.helpers import grade_all


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
    page = browser_as(team, "vic").get(f"/jobs/{job_id}").text
    assert f'href="/documents/{documents["alice.txt"]}"' in page
    assert "70 / 100" in page and "model not found" in page
    only_failed = browser_as(team, "vic").get(f"/jobs/{job_id}", params={"status": "failed"}).text
    assert "bob.txt" in only_failed and "alice.txt" not in only_failed
    assert browser_as(team, "otto").get(f"/jobs/{job_id}").status_code == 404


def test_a_document_beside_its_grade_all_text_escaped(team, sessions):
    _, documents = _graded(team, sessions)
    page = browser_as(team, "vic").get(f"/documents/{documents['alice.txt']}").text
    assert "Alice argues that engines changed towns." in page
    assert "Argument" in page and "35" in page  # the criterion and its score
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "Retry this document" not in page  # nothing failed


def test_a_failed_document_says_why_and_can_be_retried_by_an_editor(team, sessions):
    _, documents = _graded(team, sessions)
    bob = documents["bob.txt"]
    viewed = browser_as(team, "vic").get(f"/documents/{bob}").text
    assert "model not found" in viewed and "Retry this document" not in viewed
    eddie = browser_as(team, "eddie")
    page = eddie.get(f"/documents/{bob}").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    retried = eddie.post(f"/documents/{bob}/retry", data={"csrf_token": token})
    assert "Queued again for 1 model(s)" in retried.text
    assert browser_as(team, "otto").get(f"/documents/{bob}").status_code == 404


def test_the_analytics_page_charts_each_models_scores(team, sessions):
    _graded(team, sessions)
    batch_id = team.as_role("owner").get("/api/batches").json()["items"][0]["id"]
    page = browser_as(team, "vic").get(f"/batches/{batch_id}/analytics")
    assert page.status_code == 200
    assert "openai:m1" in page.text and '<svg class="histogram"' in page.text
    assert "70.0%" in page.text  # alice's score, the only one
    assert browser_as(team, "otto").get(f"/batches/{batch_id}/analytics").status_code == 404


def test_share_duplicate_and_delete_from_the_batch_page(team):
    batch_id = team.shared_batch(name="Year 9 essays")
    ana = browser_as(team, "ana")
    page = ana.get(f"/batches/{batch_id}").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    shared = ana.post(f"/batches/{batch_id}/shares", data={"csrf_token": token, "user": "otto"})
    assert "Shared with otto (view)" in shared.text
    assert browser_as(team, "otto").get(f"/batches/{batch_id}").status_code == 200
    ana.post(f"/batches/{batch_id}/shares", data={"csrf_token": token, "revoke": "otto"})
    assert browser_as(team, "otto").get(f"/batches/{batch_id}").status_code == 404

    vic = browser_as(team, "vic")
    copy = vic.post(f"/batches/{batch_id}/duplicate", data={"csrf_token": _token(vic, batch_id)})
    assert "Duplicated: this is the copy" in copy.text and "Year 9 essays (copy)" in copy.text

    wrong = ana.post(f"/batches/{batch_id}/delete", data={"csrf_token": token, "confirm": "x"})
    assert "type the batch&#39;s name exactly" in wrong.text
    gone = ana.post(
        f"/batches/{batch_id}/delete", data={"csrf_token": token, "confirm": "Year 9 essays"}
    )
    assert "Deleted Year 9 essays (2 documents)" in gone.text
    assert ana.get(f"/batches/{batch_id}").status_code == 404


def _token(browser, batch_id: str) -> str:
    page = browser.get(f"/batches/{batch_id}").text
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
