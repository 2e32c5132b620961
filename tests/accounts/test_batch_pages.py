"""The dashboard, batch list and batch page as a signed-in browser sees them (TestClient;
tests/e2e drives them in Chromium)."""

from __future__ import annotations

from tests.accounts.conftest import PASSWORD, browser_as, csrf_of


def test_pages_need_a_session_and_come_back_after_sign_in(team):
    client = team.as_role("none")
    response = client.get("/batches?q=essay", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/?next=/batches%3Fq%3Dessay"
    home = client.get(response.headers["location"])
    assert 'name="next" value="/batches?q=essay"' in home.text
    landed = client.post(
        "/sign-in", data={"username": "ana", "password": PASSWORD, "next": "/batches?q=essay"}
    )
    assert landed.url.path == "/batches" and "Batches" in landed.text
    evil = client.post(
        "/sign-in",
        data={"username": "ana", "password": PASSWORD, "next": "//evil.example/"},
        follow_redirects=False,
    )
    assert evil.headers["location"] == "/"


def test_the_batch_list_shows_ones_own_and_shared_batches(team):
    shared = team.shared_batch(name="Year 9 essays", tags=["english"])
    team.as_role("other").post("/api/batches", json={"name": "Otto's own"})
    vic = browser_as(team, "vic")
    page = vic.get("/batches").text
    assert "Year 9 essays" in page and "Otto&#39;s own" not in page and "Otto's own" not in page
    assert f'href="/batches/{shared}"' in page
    searched = vic.get("/batches", params={"q": "nothing like it"}).text
    assert "No batch matches" in searched
    bad = vic.get("/batches", params={"priority_min": "99"})
    assert bad.status_code == 400 and "priority_min-error" in bad.text
    assert "Year 9 essays" in bad.text  # the rest of the filters still list


def test_a_bulk_action_reports_each_batch(team):
    shared = team.shared_batch(name="Year 9 essays")
    eddie = browser_as(team, "eddie")
    page = eddie.get("/batches").text
    result = eddie.post(
        "/batches/bulk",
        data={"csrf_token": csrf_of(page), "action": "add_tags", "ids": [shared], "tags": "mock"},
    )
    assert result.status_code == 200
    assert "add_tags: 1 done, 0 skipped" in result.text
    forged = eddie.post("/batches/bulk", data={"csrf_token": "forged", "action": "start"})
    assert forged.status_code == 403


def test_the_batch_page_offers_actions_to_editors_only(team):
    batch_id = team.shared_batch(name="Year 9 essays")
    vic = browser_as(team, "vic")
    viewed = vic.get(f"/batches/{batch_id}").text
    assert "Download CSV" in viewed and "Start batch" not in viewed
    eddie = browser_as(team, "eddie")
    page = eddie.get(f"/batches/{batch_id}").text
    assert "Start batch" in page and "data-live" not in page  # a draft: nothing to follow
    started = eddie.post(f"/batches/{batch_id}/do/start", data={"csrf_token": csrf_of(page)})
    assert "Start batch: done" in started.text and "data-live" in started.text
    again = eddie.post(f"/batches/{batch_id}/do/start", data={"csrf_token": csrf_of(page)})
    assert again.status_code == 200 and 'class="notice"' in again.text  # the 409's reason
    refused = vic.post(f"/batches/{batch_id}/do/pause", data={"csrf_token": csrf_of(viewed)})
    assert "only view" in refused.text
    otto = browser_as(team, "otto")
    assert otto.get(f"/batches/{batch_id}").status_code == 404


def test_the_dashboard_shows_progress_of_what_one_may_see(team):
    batch_id = team.shared_batch(name="Year 9 essays")
    team.as_role("owner").post(f"/api/batches/{batch_id}/start")
    page = browser_as(team, "vic").get("/dashboard").text
    assert "Year 9 essays" in page and 'role="progressbar"' in page
    assert "Year 9 essays" not in browser_as(team, "otto").get("/dashboard").text


def test_editing_a_batch_from_its_page(team):
    batch_id = team.shared_batch(name="Year 9 essays")
    eddie = browser_as(team, "eddie")
    page = eddie.get(f"/batches/{batch_id}").text
    saved = eddie.post(
        f"/batches/{batch_id}/edit",
        data={
            "csrf_token": csrf_of(page),
            "name": "Year 9 mock essays",
            "priority": "8",
            "tags": "english, mock",
            "max_retries": "5",
        },
    )
    assert "Saved" in saved.text
    batch = team.as_role("owner").get(f"/api/batches/{batch_id}").json()
    assert (batch["batch_name"], batch["priority"], batch["tags"]) == (
        "Year 9 mock essays",
        8,
        ["english", "mock"],
    )
    assert batch["batch_settings"]["max_retries"] == 5
    bad = eddie.post(
        f"/batches/{batch_id}/edit",
        data={"csrf_token": csrf_of(page), "name": "x", "max_retries": "99"},
    )
    assert bad.status_code == 400 and 'id="max_retries-error"' in bad.text
    assert 'value="99"' in bad.text  # what was typed stays
    vic = browser_as(team, "vic")
    assert "Save changes" not in vic.get(f"/batches/{batch_id}").text
