"""Ownership and sharing: who sees and changes which batch, template and library item."""

from __future__ import annotations


def _ids(response) -> set[str]:
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["items"]}


def test_a_teacher_sees_their_own_and_shared_batches_only(team):
    shared = team.shared_batch()
    otto = team.as_role("other")
    own = otto.post("/api/batches", json={"name": "Otto's"}).json()["id"]
    assert _ids(otto.get("/api/batches")) == {own}
    assert _ids(team.as_role("viewer").get("/api/batches")) == {shared}
    assert _ids(team.as_role("admin").get("/api/batches")) == {shared, own}
    assert otto.get(f"/api/batches/{shared}").status_code == 404
    assert otto.get(f"/api/batches/{shared}").json() == {"detail": f"No batch with id {shared}"}


def test_a_view_share_reads_but_does_not_change(team):
    batch_id = team.shared_batch()
    vic = team.as_role("viewer")
    assert vic.get(f"/api/batches/{batch_id}").status_code == 200
    assert vic.get(f"/api/batches/{batch_id}/export?format=csv").status_code == 200
    refused = vic.post(f"/api/batches/{batch_id}/start")
    assert refused.status_code == 403 and "only view" in refused.json()["detail"]
    copy = vic.post(f"/api/batches/{batch_id}/duplicate")
    assert copy.status_code == 201  # a copy of one's own
    assert copy.json()["created_by"] == "vic"


def test_an_edit_share_changes_but_does_not_delete_or_reshare(team):
    batch_id = team.shared_batch()
    eddie = team.as_role("editor")
    assert eddie.patch(f"/api/batches/{batch_id}", json={"priority": 9}).status_code == 200
    assert eddie.post(f"/api/batches/{batch_id}/start").status_code == 200
    assert eddie.post(f"/api/batches/{batch_id}/pause").status_code == 200
    reshare = eddie.post(f"/api/batches/{batch_id}/shares", json={"user": "otto"})
    assert reshare.status_code == 403 and "owner" in reshare.json()["detail"]
    assert eddie.delete(f"/api/batches/{batch_id}").status_code == 403


def test_revoking_a_share_takes_effect_at_once(team):
    batch_id = team.shared_batch()
    vic = team.as_role("viewer")
    assert vic.get(f"/api/batches/{batch_id}").status_code == 200
    owner = team.as_role("owner")
    listed = owner.get(f"/api/batches/{batch_id}/shares").json()
    assert {(s["user"], s["permission"]) for s in listed} == {("vic", "view"), ("eddie", "edit")}
    assert owner.get(f"/api/batches/{batch_id}").json()["shared_with"] == ["eddie", "vic"]
    assert owner.delete(f"/api/batches/{batch_id}/shares/vic").status_code == 204
    assert vic.get(f"/api/batches/{batch_id}").status_code == 404
    assert batch_id not in _ids(vic.get("/api/batches"))
    assert owner.delete(f"/api/batches/{batch_id}/shares/vic").status_code == 404


def test_sharing_names_an_existing_user_and_not_the_owner(team):
    batch_id = team.shared_batch()
    owner = team.as_role("owner")
    unknown = owner.post(f"/api/batches/{batch_id}/shares", json={"user": "nobody"})
    assert unknown.status_code == 404 and "nobody" in unknown.json()["detail"]
    itself = owner.post(f"/api/batches/{batch_id}/shares", json={"user": "ana"})
    assert itself.status_code == 400
    upgraded = owner.post(
        f"/api/batches/{batch_id}/shares", json={"user": "vic", "permission": "edit"}
    )
    assert upgraded.status_code == 201 and upgraded.json()["permission"] == "edit"
    assert team.as_role("viewer").post(f"/api/batches/{batch_id}/start").status_code == 200


def test_jobs_and_documents_follow_their_batch(team):
    batch_id = team.shared_batch()
    owner = team.as_role("owner")
    job_id = owner.get(f"/api/batches/{batch_id}/jobs").json()["items"][0]["id"]
    document = owner.get(f"/api/jobs/{job_id}/submissions").json()["items"][0]["id"]
    otto, vic = team.as_role("other"), team.as_role("viewer")
    for path in (f"/api/jobs/{job_id}", f"/api/submissions/{document}"):
        assert otto.get(path).status_code == 404
        assert vic.get(path).status_code == 200
    assert vic.delete(f"/api/submissions/{document}").status_code == 403
    assert otto.delete(f"/api/submissions/{document}").status_code == 404


def test_bulk_skips_batches_one_may_not_see_as_not_found(team):
    shared = team.shared_batch()
    otto = team.as_role("other")
    own = otto.post("/api/batches", json={"name": "Otto's"}).json()["id"]
    tag = {"action": "add_tags", "tags": ["checked"]}
    result = otto.post("/api/batches/bulk", json={**tag, "ids": [shared, own]}).json()
    outcomes = {r["id"]: r for r in result["results"]}
    assert outcomes[own]["outcome"] == "done"
    assert outcomes[shared]["outcome"] == "skipped"
    assert outcomes[shared]["reason"] == f"No batch with id {shared}"
    assert outcomes[shared]["batch_name"] is None  # nothing about it leaks
    vic = team.as_role("viewer")
    viewed = vic.post("/api/batches/bulk", json={**tag, "filter": {}}).json()
    assert viewed["matched"] == 1 and viewed["results"][0]["outcome"] == "skipped"
    assert "only view" in viewed["results"][0]["reason"]


def test_the_dashboard_counts_only_what_one_may_see(team):
    team.shared_batch()
    otto = team.as_role("other")
    otto.post("/api/batches", json={"name": "Otto's"})
    assert otto.get("/api/analytics").json()["totals"]["batches"] == 1
    assert team.as_role("viewer").get("/api/analytics").json()["totals"]["documents"] == 2
    assert team.as_role("admin").get("/api/analytics").json()["totals"]["batches"] == 2


def test_private_library_items_and_templates_are_their_owners(team):
    owner, otto = team.as_role("owner"), team.as_role("other")
    prompt = owner.post("/api/prompts", json={"name": "Mine", "prompt_text": "Grade."}).json()
    public = owner.post(
        "/api/prompts", json={"name": "Ours", "prompt_text": "Grade.", "is_public": True}
    ).json()
    assert _ids(otto.get("/api/prompts")) == {public["id"]}
    assert otto.get(f"/api/prompts/{prompt['id']}").status_code == 404
    assert otto.patch(f"/api/prompts/{public['id']}", json={"name": "x"}).status_code == 403
    used = otto.post("/api/batches", json={"name": "x", "saved_prompt_id": prompt["id"]})
    assert used.status_code == 404
    assert (
        otto.post("/api/batches", json={"name": "x", "saved_prompt_id": public["id"]}).status_code
        == 201
    )

    template = owner.post(
        "/api/templates", json={"name": "Ana's rubric", "is_public": False}
    ).json()
    assert otto.get(f"/api/templates/{template['id']}").status_code == 404
    by_name = otto.post("/api/batches", json={"name": "x", "template": "Ana's rubric"})
    assert by_name.status_code == 404 and "Ana's rubric" in by_name.json()["detail"]
    defaults = otto.get("/api/templates").json()
    assert defaults["total"] == 4 and all(t["is_default"] for t in defaults["items"])


def test_each_teacher_keeps_their_own_copy_of_an_uploaded_scheme(team):
    scheme = [("file", ("scheme.txt", b"Content 10 points. Style 10 points.", "text/plain"))]
    first = team.as_role("owner").post("/api/marking-schemes/upload", files=scheme)
    again = team.as_role("owner").post("/api/marking-schemes/upload", files=scheme)
    other = team.as_role("other").post("/api/marking-schemes/upload", files=scheme)
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]


def test_the_audit_trail_names_who_acted_on_a_batch(team):
    batch_id = team.shared_batch()
    eddie, owner = team.as_role("editor"), team.as_role("owner")
    eddie.post(f"/api/batches/{batch_id}/start")
    eddie.post(f"/api/batches/{batch_id}/pause")
    eddie.post(f"/api/batches/{batch_id}/cancel")
    team.as_role("viewer").get(f"/api/batches/{batch_id}/export?format=xlsx")
    team.as_role("viewer").post(f"/api/batches/{batch_id}/start")  # refused: not recorded
    owner.delete(f"/api/batches/{batch_id}")
    events = team.as_role("admin").get(f"/api/audit?target_id={batch_id}&limit=50").json()
    trail = [(e["actor"], e["action"], e["detail"]) for e in reversed(events["items"])]
    assert trail == [
        ("ana", "create", {"name": "Mock exams"}),
        ("ana", "add_job", None),
        ("ana", "share", {"user": "vic", "permission": "view"}),
        ("ana", "share", {"user": "eddie", "permission": "edit"}),
        ("eddie", "start", None),
        ("eddie", "pause", None),
        ("eddie", "cancel", None),
        ("vic", "export", {"format": "xlsx"}),
        ("ana", "delete", {"name": "Mock exams"}),
    ]
