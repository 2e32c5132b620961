"""The templates page: the defaults, copying one, deleting one's own, a batch saved as a
template."""

from __future__ import annotations

import re

from tests.accounts.conftest import browser_as, csrf_of


def test_copy_a_default_then_delete_the_copy(team):
    ana = browser_as(team, "ana")
    page = ana.get("/templates").text
    assert "Academic Essay Grading" in page and "default" in page
    default_id = re.search(
        r'action="/templates/([^/]+)/duplicate"[^<]*<input[^>]*>\s*<label[^>]*>Name of the copy '
        r"of Academic Essay Grading",
        page,
    ).group(1)
    copied = ana.post(
        f"/templates/{default_id}/duplicate",
        data={"csrf_token": csrf_of(page), "name": "My essay template"},
    )
    assert "Copied as My essay template: yours to change" in copied.text
    refused = ana.post(f"/templates/{default_id}/delete", data={"csrf_token": csrf_of(page)})
    assert "read-only" in refused.text or "default" in refused.text
    mine = re.search(r'action="/templates/([^/]+)/delete"', copied.text).group(1)
    assert (
        "Template deleted"
        in ana.post(f"/templates/{mine}/delete", data={"csrf_token": csrf_of(page)}).text
    )


def test_a_batch_saved_as_a_template(team):
    batch_id = team.shared_batch(name="Year 9 essays")
    ana = browser_as(team, "ana")
    page = ana.get(f"/batches/{batch_id}").text
    saved = ana.post(
        f"/batches/{batch_id}/save-as-template",
        data={"csrf_token": csrf_of(page), "name": "Year 9 setup"},
    )
    assert "Saved the batch&#39;s configuration as the template Year 9 setup" in saved.text
    otto = browser_as(team, "otto")
    refused = otto.post(
        f"/batches/{batch_id}/save-as-template",
        data={"csrf_token": csrf_of(otto.get("/templates").text), "name": "Stolen"},
    )
    assert f"No batch with id {batch_id}" in refused.text
