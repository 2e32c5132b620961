"""The library over real HTTP: saved prompts and marking schemes created, searched,
changed, uploaded as files, used by id from batches and jobs, and kept while in use.
Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import sqlalchemy as sa

from grading_app.db import unit_of_work
from grading_app.grading.rubric import Rubric
from grading_app.models import GradingJob, MarkingScheme, SavedMarkingScheme
from tests.documents.factories import make_docx, make_pdf
from tests.jobs.helpers import stored_files

RUBRIC = {
    "criteria": [
        {
            "name": "Thesis",
            "max_score": 20,
            "levels": [{"label": "Excellent", "points": 20, "descriptor": "Precise claim"}],
        },
        {"name": "Evidence", "max_score": 30},
    ]
}
RUBRIC_TABLE = (
    ("Criterion", "Marks", "Excellent", "Weak"),
    ("Argument", "60", "Compelling throughout", "Unsupported"),
    ("Style", "40", "Clear and varied", "Hard to follow"),
)


def _created(response, status: int = 201) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def _prompt(client, **fields) -> dict:
    body = {"name": "Essay feedback", "prompt_text": "Grade the essay out of 50.", **fields}
    return _created(client.post("/api/prompts", json=body))


def _scheme(client, **fields) -> dict:
    body = {"name": "Essay rubric", "rubric": RUBRIC, **fields}
    return _created(client.post("/api/marking-schemes", json=body))


def _upload(client, filename: str, data: bytes, **form):
    files = {"file": (filename, data, "x/y")}
    return client.post("/api/marking-schemes/upload", files=files, data=form)


def test_saved_prompts_are_created_searched_paged_changed_and_deleted(client):
    essay = _prompt(client, description="Short, actionable", category="Essays")
    _prompt(client, name="Lab report", prompt_text="Grade the lab report.", category="science")
    _prompt(client, name="100% honest_review", prompt_text="Be blunt.")
    assert essay["usage_count"] == 0 and essay["last_used"] is None
    assert essay["category"] == "Essays" and essay["created_at"].endswith("Z")

    listed = client.get("/api/prompts").json()
    assert listed["total"] == 3
    assert [p["name"] for p in listed["items"]] == [
        "100% honest_review",
        "Essay feedback",
        "Lab report",
    ]
    found = client.get("/api/prompts", params={"q": "ACTIONABLE"}).json()  # the description
    assert [p["id"] for p in found["items"]] == [essay["id"]]
    assert client.get("/api/prompts", params={"q": "scien"}).json()["total"] == 1  # category
    # % and _ are text to find, not wildcards.
    assert client.get("/api/prompts", params={"q": "0%"}).json()["total"] == 1
    assert client.get("/api/prompts", params={"q": "y_f"}).json()["total"] == 0  # "Essay f..."
    assert client.get("/api/prompts", params={"category": "essays"}).json()["total"] == 1
    page = client.get("/api/prompts", params={"limit": 2, "offset": 2}).json()
    assert page["total"] == 3 and [p["name"] for p in page["items"]] == ["Lab report"]

    changed = client.patch(
        f"/api/prompts/{essay['id']}", json={"prompt_text": "Grade it out of 20.", "category": None}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["prompt_text"] == "Grade it out of 20."
    assert changed.json()["category"] is None and changed.json()["name"] == "Essay feedback"
    assert client.get(f"/api/prompts/{essay['id']}").json()["prompt_text"] == "Grade it out of 20."

    assert client.delete(f"/api/prompts/{essay['id']}").status_code == 204
    missing = client.get(f"/api/prompts/{essay['id']}")
    assert missing.status_code == 404 and essay["id"] in missing.json()["detail"]
    assert client.get("/api/prompts").json()["total"] == 2


def test_bad_library_input_is_a_4xx_naming_the_field(client):
    def detail(response, status: int) -> str:
        assert response.status_code == status, response.text
        return response.json()["detail"]

    assert "needs a name" in detail(
        client.post("/api/prompts", json={"name": " ", "prompt_text": "x"}), 400
    )
    assert "prompt_text" in detail(client.post("/api/prompts", json={"name": "x"}), 422)
    assert "is empty" in detail(
        client.post("/api/prompts", json={"name": "x", "prompt_text": "  "}), 400
    )
    nul = detail(client.post("/api/prompts", json={"name": "x", "prompt_text": "a\x00b"}), 422)
    assert "prompt_text" in nul and "NUL" in nul
    surrogate = client.post(
        "/api/prompts",
        content=b'{"name": "x", "prompt_text": "\\ud800"}',
        headers={"content-type": "application/json"},
    )
    assert "surrogate" in detail(surrogate, 422)
    extra = client.post("/api/prompts", json={"name": "x", "prompt_text": "y", "colour": 1})
    assert "colour" in detail(extra, 422)
    prompt = _prompt(client)
    assert "needs a name" in detail(
        client.patch(f"/api/prompts/{prompt['id']}", json={"name": ""}), 400
    )
    assert "is empty" in detail(
        client.patch(f"/api/prompts/{prompt['id']}", json={"prompt_text": None}), 400
    )

    neither = detail(client.post("/api/marking-schemes", json={"name": "Empty"}), 400)
    assert "content" in neither and "rubric" in neither
    twice = {"criteria": [{"name": "A", "max_score": 5}, {"name": "a", "max_score": 5}]}
    assert "appears twice" in detail(
        client.post("/api/marking-schemes", json={"name": "R", "rubric": twice}), 400
    )
    no_max = {"criteria": [{"name": "A"}]}
    assert "max_score" in detail(
        client.post("/api/marking-schemes", json={"name": "R", "rubric": no_max}), 422
    )
    assert client.get("/api/marking-schemes").json()["total"] == 0
    assert client.get("/api/prompts").json()["total"] == 1


def test_marking_schemes_written_as_text_or_rubric(client):
    rubric_only = _scheme(client, category="History")
    assert [c["name"] for c in rubric_only["rubric"]["criteria"]] == ["Thesis", "Evidence"]
    # The text the model reads is the rubric written out, level descriptors included.
    assert "- Thesis: up to 20 marks" in rubric_only["content"]
    assert "Excellent (20): Precise claim" in rubric_only["content"]
    assert rubric_only["original_filename"] is None and rubric_only["usage_count"] == 0
    text_only = _created(
        client.post("/api/marking-schemes", json={"name": "Free text", "content": "Be fair."})
    )
    assert text_only["rubric"] is None and text_only["content"] == "Be fair."

    listed = client.get("/api/marking-schemes").json()
    assert listed["total"] == 2 and "content" not in listed["items"][0]
    assert client.get("/api/marking-schemes", params={"q": "histo"}).json()["total"] == 1

    weighted = {**RUBRIC, "max_score": 100}
    changed = client.patch(
        f"/api/marking-schemes/{text_only['id']}", json={"rubric": weighted, "content": "Be fair."}
    ).json()
    assert changed["rubric"]["max_score"] == 100 and changed["content"] == "Be fair."
    freed = client.patch(f"/api/marking-schemes/{rubric_only['id']}", json={"rubric": None})
    assert freed.status_code == 200 and freed.json()["rubric"] is None
    assert "Thesis" in freed.json()["content"]  # the text stays
    emptied = client.patch(
        f"/api/marking-schemes/{text_only['id']}", json={"rubric": None, "content": None}
    )
    assert emptied.status_code == 400 and "content" in emptied.json()["detail"]


def test_an_uploaded_docx_table_becomes_the_rubric_and_the_same_file_reuses_the_row(
    client, sessions, upload_dir
):
    data = make_docx(paragraphs=["Persuasive essay scheme."], table=RUBRIC_TABLE)

    first = _upload(client, "Essay scheme.docx", data, category="English")

    body = _created(first)
    assert body["reused"] is False and body["name"] == "Essay scheme"  # the file's name
    assert body["original_filename"] == "Essay scheme.docx" and body["file_type"] == "docx"
    assert "Persuasive essay scheme." in body["content"]
    criteria = body["rubric"]["criteria"]
    assert [(c["name"], c["max_score"]) for c in criteria] == [("Argument", 60), ("Style", 40)]
    level = criteria[0]["levels"][0]
    assert (level["label"], level["descriptor"]) == ("Excellent", "Compelling throughout")
    assert len(stored_files(upload_dir)) == 1

    again = _upload(client, "renamed copy.docx", data, name="Another name")

    assert again.status_code == 200, again.text
    assert again.json()["id"] == body["id"] and again.json()["reused"] is True
    assert again.json()["name"] == "Essay scheme"  # the row as it was
    assert client.get("/api/marking-schemes").json()["total"] == 1
    assert len(stored_files(upload_dir)) == 1  # no second copy kept

    # Edited, the row is no longer that file: the file uploaded again makes a new one.
    client.patch(f"/api/marking-schemes/{body['id']}", json={"content": "Edited."})
    third = _created(_upload(client, "Essay scheme.docx", data))
    assert third["id"] != body["id"] and third["reused"] is False
    with unit_of_work(sessions, read_only=True) as session:
        hashes = session.scalars(sa.select(SavedMarkingScheme.content_hash)).all()
    assert sorted(hashes, key=str) == sorted([None, _sha256(data)], key=str)
    assert len(stored_files(upload_dir)) == 2

    # Deleting a scheme removes its own stored file.
    assert client.delete(f"/api/marking-schemes/{third['id']}").status_code == 204
    assert len(stored_files(upload_dir)) == 1


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_other_scheme_files_are_text_and_bad_ones_are_refused(client, upload_dir):
    pdf = _created(_upload(client, "scheme.pdf", make_pdf(pages=["Thesis 20 marks."])))
    assert pdf["rubric"] is None and "Thesis 20 marks." in pdf["content"]
    plain = make_docx(paragraphs=["Argument: 10"])  # its table is "8/10": no rubric
    docx = _created(_upload(client, "plain.docx", plain))
    assert docx["rubric"] is None and any("not read as a rubric" in w for w in docx["warnings"])
    markdown = b"| Criterion | Points |\n|---|---|\n| Clarity | 5 |\n"
    md = _created(_upload(client, "scheme.md", markdown))
    assert [(c["name"], c["max_score"]) for c in md["rubric"]["criteria"]] == [("Clarity", 5)]

    broken = _upload(client, "broken.pdf", b"%PDF-1.7\nnot really a pdf")
    assert broken.status_code == 400 and "broken.pdf" in broken.json()["detail"]
    too_big = _upload(client, "big.txt", b"x" * (1024 * 1024 + 1))
    assert too_big.status_code == 400 and "1 MB" in too_big.json()["detail"]
    stored_before = len(stored_files(upload_dir))
    huge = _upload(client, "huge.txt", b"x" * (2 * 1024 * 1024))
    assert huge.status_code == 413
    assert len(stored_files(upload_dir)) == stored_before


def test_a_batch_and_its_jobs_use_library_items_by_id(client, sessions, upload_dir):
    prompt = _prompt(client)
    scheme = _scheme(client)
    before = datetime.now(UTC)

    batch = client.post(
        "/api/batches",
        json={
            "name": "Year 10 essays",
            "saved_prompt_id": prompt["id"],
            "saved_marking_scheme_id": scheme["id"],
            "models": ["openai:m1"],
        },
    )

    batch = _created(batch)
    assert batch["saved_prompt_id"] == prompt["id"]
    assert batch["saved_marking_scheme_id"] == scheme["id"]
    # The batch's jobs take the saved prompt's text as the prompt.
    assert client.get(f"/api/batches/{batch['id']}").json()["saved_prompt_id"] == prompt["id"]
    used = client.get(f"/api/prompts/{prompt['id']}").json()
    assert used["usage_count"] == 1
    assert datetime.fromisoformat(used["last_used"]) >= before.replace(microsecond=0)
    assert client.get(f"/api/marking-schemes/{scheme['id']}").json()["usage_count"] == 1

    inherited = _created(
        client.post(
            f"/api/batches/{batch['id']}/jobs",
            files=[("files", ("essay.txt", b"An essay on rivers.", "text/plain"))],
        )
    )
    # A job naming them counts one more use; one taking the batch's does not.
    other_scheme = _scheme(
        client, name="Short rubric", rubric={"criteria": [{"name": "Overall", "max_score": 10}]}
    )
    named = _created(
        client.post(
            f"/api/batches/{batch['id']}/jobs",
            data={"saved_prompt_id": prompt["id"], "saved_marking_scheme_id": other_scheme["id"]},
            files=[("files", ("essay.txt", b"An essay on lakes.", "text/plain"))],
        )
    )
    assert client.get(f"/api/prompts/{prompt['id']}").json()["usage_count"] == 2
    assert client.get(f"/api/marking-schemes/{scheme['id']}").json()["usage_count"] == 1
    assert client.get(f"/api/marking-schemes/{other_scheme['id']}").json()["usage_count"] == 1

    with unit_of_work(sessions, read_only=True) as session:
        first = session.get(GradingJob, inherited["job"]["id"])
        second = session.get(GradingJob, named["job"]["id"])
        assert first.prompt == second.prompt == "Grade the essay out of 50."
        assert first.saved_prompt_id == second.saved_prompt_id == prompt["id"]
        assert first.saved_marking_scheme_id == scheme["id"]
        assert second.saved_marking_scheme_id == other_scheme["id"]
        # Each job grades with its own copy of the scheme, rubric included.
        copy = session.get(MarkingScheme, first.marking_scheme_id)
        assert copy.name == "Essay rubric" and copy.filename == ""  # the file is the library's
        assert Rubric.model_validate(copy.rubric) == Rubric.model_validate(scheme["rubric"])
        assert "Thesis: up to 20 marks" in copy.content
        assert session.get(MarkingScheme, second.marking_scheme_id).rubric["criteria"] == [
            {"name": "Overall", "max_score": 10.0}
        ]

    # Editing the library changes new jobs, not the copy a job took.
    client.patch(f"/api/marking-schemes/{scheme['id']}", json={"rubric": None, "content": "New."})
    with unit_of_work(sessions, read_only=True) as session:
        assert session.get(MarkingScheme, first.marking_scheme_id).rubric is not None


def test_library_items_in_use_are_not_deleted_and_the_refusal_names_the_users(client):
    prompt = _prompt(client)
    scheme = _scheme(client)
    batch = _created(
        client.post(
            "/api/batches",
            json={
                "name": "Year 10 essays",
                "saved_prompt_id": prompt["id"],
                "models": ["openai:m1"],
            },
        )
    )
    for name in ("Draft one", "Draft two"):
        _created(
            client.post(
                f"/api/batches/{batch['id']}/jobs",
                data={"name": name, "saved_marking_scheme_id": scheme["id"]},
                files=[("files", ("essay.txt", b"An essay.", "text/plain"))],
            )
        )

    refused = client.delete(f"/api/prompts/{prompt['id']}")
    assert refused.status_code == 409
    detail = refused.json()["detail"]
    assert "'Essay feedback' is in use by 1 batch ('Year 10 essays')" in detail
    assert "2 jobs ('Draft one', 'Draft two')" in detail
    scheme_refused = client.delete(f"/api/marking-schemes/{scheme['id']}")
    assert scheme_refused.status_code == 409
    assert "2 jobs ('Draft one', 'Draft two')" in scheme_refused.json()["detail"]
    assert "batch" not in scheme_refused.json()["detail"].split("in use by")[1]
    assert client.get(f"/api/prompts/{prompt['id']}").status_code == 200

    unused = _scheme(client, name="Spare")
    assert client.delete(f"/api/marking-schemes/{unused['id']}").status_code == 204


def test_unknown_library_ids_and_conflicting_choices_are_refused(client, upload_dir):
    prompt = _prompt(client)
    missing_prompt = client.post(
        "/api/batches", json={"name": "x", "saved_prompt_id": "nope", "models": ["openai:m1"]}
    )
    assert missing_prompt.status_code == 404 and "nope" in missing_prompt.json()["detail"]
    both = client.post(
        "/api/batches", json={"name": "x", "saved_prompt_id": prompt["id"], "prompt": "Mine."}
    )
    assert both.status_code == 400 and "not both" in both.json()["detail"]
    missing_scheme = client.post(
        "/api/batches", json={"name": "x", "saved_marking_scheme_id": "nope"}
    )
    assert missing_scheme.status_code == 404
    assert client.get("/api/batches").json()["total"] == 0
    assert client.get(f"/api/prompts/{prompt['id']}").json()["usage_count"] == 0

    batch = _created(client.post("/api/batches", json={"name": "y", "models": ["openai:m1"]}))
    scheme = _scheme(client)
    file_and_id = client.post(
        f"/api/batches/{batch['id']}/jobs",
        data={"prompt": "Grade.", "saved_marking_scheme_id": scheme["id"]},
        files=[
            ("files", ("essay.txt", b"An essay.", "text/plain")),
            ("marking_scheme", ("rubric.txt", b"Argument 10", "text/plain")),
        ],
    )
    assert file_and_id.status_code == 400 and "not both" in file_and_id.json()["detail"]
    unknown = client.post(
        f"/api/batches/{batch['id']}/jobs",
        data={"saved_prompt_id": "nope"},
        files=[("files", ("essay.txt", b"An essay.", "text/plain"))],
    )
    assert unknown.status_code == 404
    assert stored_files(upload_dir) == []
