"""The analytics page's review figures: how many wait, accepted and overridden, each
model against the reviewers; only the causes that failed something are listed."""

from __future__ import annotations

from tests.accounts.conftest import browser_as
from tests.accounts.test_document_pages import _graded


def test_the_analytics_page_shows_reviews_and_each_model_against_the_reviewers(team, sessions):
    _, documents = _graded(team, sessions)
    owner = team.as_role("owner")
    batch_id = owner.get("/api/batches").json()["items"][0]["id"]
    before = browser_as(team, "vic").get(f"/batches/{batch_id}/analytics").text
    assert "0 accepted · 0 overridden" in before
    assert "<title>Analytics of Year 9 essays · Grading App</title>" in before
    assert "agreement with the reviewers shows here" in before

    reviewed = owner.post(
        f"/api/submissions/{documents['alice.txt']}/review",
        json={"action": "override", "score": 80, "criteria": {"Argument": 45}},
    )
    assert reviewed.status_code == 200, reviewed.text

    page = browser_as(team, "vic").get(f"/batches/{batch_id}/analytics").text
    assert "0 accepted · 1 overridden" in page
    assert (
        "The grades that count (a reviewer's wins, else the models' mean): 1 documents, mean 80.0%"
        in page
    )
    assert "10.0 points" in page  # the model's 70 against the reviewer's 80
    assert "Argument: 20.0" in page  # 35 of 50 against 45 of 50
    assert "rate limit: 0" not in page  # causes that failed nothing are not listed
