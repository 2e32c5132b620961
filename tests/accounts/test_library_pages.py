"""The library page: prompts and marking schemes, written with a structured rubric or
uploaded, public or private, deleted by their owner."""

from __future__ import annotations

from tests.accounts.conftest import browser_as, csrf_of


def test_a_prompt_saved_private_is_its_owners_only(team):
    ana = browser_as(team, "ana")
    page = ana.get("/library").text
    saved = ana.post(
        "/library/prompts",
        data={"csrf_token": csrf_of(page), "name": "Essay rubric prompt", "prompt_text": "Grade."},
    )
    assert "Saved the prompt Essay rubric prompt" in saved.text
    assert "Essay rubric prompt" not in browser_as(team, "otto").get("/library").text
    empty = ana.post(
        "/library/prompts", data={"csrf_token": csrf_of(page), "name": "x", "prompt_text": ""}
    )
    assert empty.status_code == 400 and 'id="prompt_text-error"' in empty.text


def test_a_marking_scheme_with_a_structured_rubric(team):
    ana = browser_as(team, "ana")
    page = ana.get("/library").text
    saved = ana.post(
        "/library/schemes",
        data={
            "csrf_token": csrf_of(page),
            "scheme_name": "Argument essay",
            "criterion_0": "Thesis",
            "max_0": "10",
            "levels_0": "Excellent | 10 | A clear, arguable thesis\nWeak | 3 | No clear claim",
            "criterion_1": "Evidence",
            "max_1": "20",
            "scheme_public": "1",
        },
    )
    assert "Saved the marking scheme Argument essay" in saved.text
    schemes = team.as_role("owner").get("/api/marking-schemes").json()["items"]
    scheme = team.as_role("owner").get(f"/api/marking-schemes/{schemes[0]['id']}").json()
    criteria = scheme["rubric"]["criteria"]
    assert [(c["name"], c["max_score"]) for c in criteria] == [("Thesis", 10), ("Evidence", 20)]
    assert criteria[0]["levels"][0]["descriptor"] == "A clear, arguable thesis"
    assert "Argument essay" in browser_as(team, "otto").get("/library").text  # public

    too_high = ana.post(
        "/library/schemes",
        data={
            "csrf_token": csrf_of(page),
            "scheme_name": "Bad",
            "criterion_0": "Thesis",
            "max_0": "10",
            "levels_0": "Excellent | 12 | more than the maximum",
        },
    )
    assert too_high.status_code == 400 and 'id="scheme_rubric-error"' in too_high.text
    assert 'value="Bad"' in too_high.text


def test_an_uploaded_scheme_and_deleting_it(team):
    ana = browser_as(team, "ana")
    page = ana.get("/library").text
    table = b"| Criterion | Points |\n|---|---|\n| Content | 10 |\n| Style | 5 |\n"
    uploaded = ana.post(
        "/library/schemes/upload",
        data={"csrf_token": csrf_of(page), "name": "Uploaded scheme"},
        files={"file": ("scheme.md", table, "text/markdown")},
    )
    assert "Saved the marking scheme Uploaded scheme with a rubric" in uploaded.text
    item = team.as_role("owner").get("/api/marking-schemes").json()["items"][0]["id"]
    refused = browser_as(team, "otto").post(
        f"/library/schemes/{item}/delete", data={"csrf_token": csrf_of(page)}
    )
    assert refused.status_code == 403  # another session's token
    deleted = ana.post(f"/library/schemes/{item}/delete", data={"csrf_token": csrf_of(page)})
    assert "Deleted" in deleted.text
    assert team.as_role("owner").get("/api/marking-schemes").json()["total"] == 0
