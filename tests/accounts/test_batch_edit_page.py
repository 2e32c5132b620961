"""Editing a batch's prompt, models and library items from its page, in the states the
batch service allows; and the dashboard's documents refused at upload."""

from __future__ import annotations

from grading_app.web.choices import configured_models
from tests.accounts.conftest import browser_as, csrf_of
from tests.batches.helpers import add_job


def _form(page: str, **changes) -> dict:
    fields = {
        "csrf_token": csrf_of(page),
        "name": "Year 9 essays",
        "priority": "5",
        "tags": "",
        "max_retries": "3",
        "grading_fields": "1",
        "prompt": "Grade it.",
        "models": ["openai:m1"],
    }
    return {**fields, **changes}


def test_a_draft_takes_a_new_prompt_models_and_library_items(team):
    batch_id = team.shared_batch(name="Year 9 essays")
    owner = team.as_role("owner")
    prompt = owner.post(
        "/api/prompts", json={"name": "Strict", "prompt_text": "Be strict.", "is_public": True}
    )
    scheme = owner.post(
        "/api/marking-schemes",
        json={"name": "Essay scheme", "content": "Thesis 10, evidence 10", "is_public": True},
    )
    assert prompt.status_code == 201 and scheme.status_code == 201, scheme.text
    eddie = browser_as(team, "eddie")
    page = eddie.get(f"/batches/{batch_id}").text
    assert 'id="edit-prompt"' in page and "Grade it." in page
    assert 'id="grading-locked"' not in page and "Strict" in page and "Essay scheme" in page
    model = configured_models()[0]
    saved = eddie.post(
        f"/batches/{batch_id}/edit",
        data=_form(page, prompt="Grade <it> kindly.", models=[model], other_models=""),
    )
    assert "Saved" in saved.text and "Grade &lt;it&gt; kindly." in saved.text
    batch = owner.get(f"/api/batches/{batch_id}").json()
    assert batch["prompt"] == "Grade <it> kindly." and batch["models_to_compare"] == [model]
    page = saved.text
    chosen = eddie.post(
        f"/batches/{batch_id}/edit",
        data=_form(
            page,
            prompt="Grade <it> kindly.",
            models=[model],
            saved_prompt_id=prompt.json()["id"],
            saved_marking_scheme_id=scheme.json()["id"],
        ),
    )
    assert "Saved" in chosen.text
    batch = owner.get(f"/api/batches/{batch_id}").json()
    assert batch["prompt"] == "Be strict."
    assert batch["saved_marking_scheme_id"] == scheme.json()["id"]


def test_a_mistake_is_shown_beside_the_field_with_what_was_typed(team):
    batch_id = team.shared_batch(name="Year 9 essays")
    eddie = browser_as(team, "eddie")
    page = eddie.get(f"/batches/{batch_id}").text
    refused = eddie.post(
        f"/batches/{batch_id}/edit",
        data=_form(
            page,
            name="Renamed",
            prompt="New words",
            models=[],
            other_models="nobody:x",
            max_retries="99",
        ),
    )
    assert refused.status_code == 400
    text = refused.text
    assert 'id="other_models-error"' in text and "not configured on this server" in text
    assert 'value="Renamed"' in text and "New words" in text and "nobody:x" in text
    assert 'aria-invalid="true"' in text
    batch = team.as_role("owner").get(f"/api/batches/{batch_id}").json()
    assert batch["batch_name"] == "Year 9 essays" and batch["prompt"] == "Grade it."
    retries = eddie.post(f"/batches/{batch_id}/edit", data=_form(page, max_retries="99"))
    assert retries.status_code == 400 and 'id="max_retries-error"' in retries.text


def test_a_viewer_may_not_edit(team):
    batch_id = team.shared_batch(name="Year 9 essays")
    vic = browser_as(team, "vic")
    page = vic.get(f"/batches/{batch_id}").text
    assert "Save changes" not in page and 'id="edit-prompt"' not in page
    refused = vic.post(f"/batches/{batch_id}/edit", data=_form(page, prompt="Mine"))
    assert refused.status_code == 403 and "only view" in refused.text
    assert team.as_role("owner").get(f"/api/batches/{batch_id}").json()["prompt"] == "Grade it."
    otto = browser_as(team, "otto")
    hidden = otto.post(f"/batches/{batch_id}/edit", data=_form(otto.get("/templates").text))
    assert hidden.status_code == 404


def test_a_started_batch_keeps_its_prompt_and_models(team):
    batch_id = team.shared_batch(name="Year 9 essays")
    team.as_role("owner").post(f"/api/batches/{batch_id}/start")
    eddie = browser_as(team, "eddie")
    page = eddie.get(f"/batches/{batch_id}").text
    assert 'id="grading-locked"' in page and "this batch is pending" in page
    assert "<fieldset disabled" in page
    # The details still change: the disabled fields are not sent.
    renamed = eddie.post(
        f"/batches/{batch_id}/edit",
        data={"csrf_token": csrf_of(page), "name": "Year 9 final", "priority": "6"},
    )
    assert "Saved" in renamed.text
    # Sent anyway (a form from before the start): the service's refusal, naming the state.
    refused = eddie.post(f"/batches/{batch_id}/edit", data=_form(page, prompt="Too late"))
    assert refused.status_code == 409
    assert "Cannot change the prompt" in refused.text and "it is pending" in refused.text
    assert 'value="Too late"' not in refused.text and "Too late" in refused.text
    batch = team.as_role("owner").get(f"/api/batches/{batch_id}").json()
    assert batch["batch_name"] == "Year 9 final" and batch["prompt"] == "Grade it."


def test_the_dashboard_lists_documents_refused_at_upload(team):
    batch_id = team.shared_batch(name="Year 9 essays")
    files = [("files", ("broken.pdf", b"%PDF-1.7 this is not a PDF", "application/pdf"))]
    job = add_job(team.as_role("owner"), batch_id, files=files)["job"]
    vic = browser_as(team, "vic")
    page = vic.get("/dashboard").text
    assert "Documents refused at upload" in page and "broken.pdf" in page
    assert f'href="/jobs/{job["id"]}?status=failed"' in page
    document = page.split("broken.pdf")[0].rsplit('href="', 1)[1].split('"')[0]
    assert document.startswith("/documents/")
    shown = vic.get(document)
    assert shown.status_code == 200 and "broken.pdf" in shown.text
    listed = vic.get(f"/jobs/{job['id']}", params={"status": "failed"}).text
    assert "broken.pdf" in listed and "alice.txt" not in listed
    assert "broken.pdf" not in browser_as(team, "otto").get("/dashboard").text
    api = team.as_role("viewer").get("/api/analytics").json()
    assert [d["document"] for d in api["refused_documents"]] == ["broken.pdf"]
