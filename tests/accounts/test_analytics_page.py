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


def test_the_pages_show_what_grading_cost(team, sessions):
    price = {"input_per_million": 10_000, "output_per_million": 20_000, "batch_discount": 0}
    assert team.as_role("admin").put("/api/prices/openai/m1", json=price).status_code == 200
    _, documents = _graded(team, sessions)  # alice.txt: 100 prompt, 50 completion tokens
    owner = team.as_role("owner")
    batch_id = owner.get("/api/batches").json()["items"][0]["id"]
    cost = (100 * 10_000 + 50 * 20_000) / 1e6  # $2.00

    assert owner.get(f"/api/batches/{batch_id}").json()["spent_usd"] == cost
    vic = browser_as(team, "vic")
    assert "<dt>Spent</dt><dd>$2.00" in vic.get(f"/batches/{batch_id}").text
    page = vic.get(f"/batches/{batch_id}/analytics").text
    assert "$2.00 in all" in page and "<td>$2.00</td>" in page
    assert ", cost $2.00" in vic.get(f"/documents/{documents['alice.txt']}").text
    assert "Your spending" in vic.get("/dashboard").text
    ana = browser_as(team, "ana").get("/dashboard").text
    assert "Your spending" in ana and "<td>ana</td><td>1</td><td>$2.00</td>" in ana
