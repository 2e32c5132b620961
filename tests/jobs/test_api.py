"""From an uploaded file to a stored, structured grade, over real HTTP: create a batch,
upload real documents (good and bad), grade them with a real worker against the fake
vendor, and read the grades back. Every test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import csv
import io
import re
import zipfile

import sqlalchemy as sa

from grading_app.db import unit_of_work
from grading_app.models import BatchTemplate, GradingJob, MarkingScheme, Submission, WorkItem
from tests.documents.factories import encrypt_pdf, make_docx, make_pdf, png_bytes
from tests.fakes.llm_server import CRITERIA, Fault, expected_grade
from tests.jobs.helpers import stored_files
from tests.processing.helpers import grade_everything

MB = 1024 * 1024
GENERATED_NAME = re.compile(r"[0-9a-f]{32}\.(docx|pdf|txt|md)")


def _new_batch(client, **fields) -> dict:
    response = client.post("/api/batches", json={"name": "Year 9 essays", **fields})
    assert response.status_code == 201, response.text
    return response.json()


def _texts(sessions) -> dict[str, str]:
    with unit_of_work(sessions, read_only=True) as session:
        rows = session.execute(sa.select(Submission.original_filename, Submission.extracted_text))
        return {name: text for name, text in rows}


def test_uploaded_documents_are_checked_queued_graded_and_read_back(
    client, sessions, provider_env, upload_dir
):
    batch = _new_batch(
        client, priority=7, tags=["english", " english ", "term 1"], settings={"max_retries": 2}
    )
    assert batch["status"] == "draft" and batch["priority"] == 7
    assert batch["tags"] == ["english", "term 1"] and batch["batch_settings"]["max_retries"] == 2
    docx = make_docx(paragraphs=["Ada argues that engines compute."])
    files = [
        ("files", ("ada.docx", docx, "application/octet-stream")),
        ("files", ("bob.pdf", make_pdf(pages=["Bob's essay, page one.", "Page two."]), "x/y")),
        ("files", ("cy.txt", b"Cy writes a short plain-text essay.", "text/plain")),
        ("files", ("broken.pdf", b"%PDF-1.7\nnot really a pdf", "application/pdf")),
        ("files", ("locked.pdf", encrypt_pdf(make_pdf(), user_password="s3cret"), "x/y")),
        ("files", ("dee.pdf", make_docx(paragraphs=["Dee's essay, saved as .pdf."]), "x/y")),
        ("files", ("photo.docx", png_bytes(), "image/png")),
        ("files", ("huge.txt", b"An essay that goes on. " * (MB // 20), "text/plain")),
    ]
    response = client.post(
        f"/api/batches/{batch['id']}/jobs",
        data={"name": "Persuasive essay", "prompt": "Grade this essay.", "models": "openai:m1"},
        files=files,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    outcome = {f["filename"]: f for f in body["files"]}
    assert [f["filename"] for f in body["files"]] == [name for _, (name, *_) in files]
    for name in ("ada.docx", "bob.pdf", "cy.txt", "dee.pdf"):
        assert outcome[name]["status"] == "queued" and outcome[name]["error"] is None
    assert outcome["dee.pdf"]["file_type"] == "docx"
    assert "read as a Word document" in outcome["dee.pdf"]["warnings"][0]
    expected_failures = {
        "broken.pdf": ("corrupt", "incomplete PDF"),
        "locked.pdf": ("encrypted_pdf", "password-protected PDF"),
        "photo.docx": ("unsupported_type", "PNG image"),
        "huge.txt": ("too_large", "more than the 1 MB upload limit"),
    }
    for name, (code, words) in expected_failures.items():
        assert outcome[name]["status"] == "failed", name
        assert outcome[name]["error_code"] == code and words in outcome[name]["error"], name
    assert body["queued_items"] == 4 and body["batch_status"] == "draft"
    job = body["job"]
    assert job["models"] == ["openai:m1"] and job["total_items"] == 4
    assert job["total_submissions"] == 8 and job["failed_submissions"] == 4
    # Stored under generated names: only the readable four, never the user's names.
    kept = stored_files(upload_dir)
    assert len(kept) == 4 and all(GENERATED_NAME.fullmatch(name) for name in kept)
    with unit_of_work(sessions, read_only=True) as session:
        items = session.execute(sa.select(WorkItem.state, WorkItem.model)).all()
        assert sorted(items) == [("queued", "m1")] * 4
    # A draft batch is not graded; starting it lets the worker take its items.
    assert client.get(f"/api/batches/{batch['id']}").json()["total_items"] == 4
    started = client.post(f"/api/batches/{batch['id']}/start")
    assert started.json()["status"] == "pending"

    grade_everything(sessions, provider_env)

    texts = _texts(sessions)
    page = client.get(f"/api/jobs/{job['id']}/submissions").json()
    assert page["total"] == 8 and len(page["items"]) == 8
    for item in page["items"]:
        name = item["original_filename"]
        if name in expected_failures:
            assert item["status"] == "failed" and item["error"] and item["grades"] == []
            assert item["score"] is None
            continue
        expected = expected_grade("m1", texts[name])
        assert item["status"] == "completed" and item["error"] is None
        assert item["score"] == expected["overall_score"]
        assert item["max_score"] == expected["max_score"]
        (grade,) = item["grades"]
        assert grade["provider"] == "openai" and grade["model"] == "m1"
        assert [c["name"] for c in grade["criteria"]] == list(CRITERIA)
        assert grade["feedback"] == expected["feedback"]
    export = client.get(f"/api/jobs/{job['id']}/results.csv")
    rows = {r["document"]: r for r in csv.DictReader(io.StringIO(export.text))}
    assert export.status_code == 200 and set(rows) == set(outcome)
    assert (
        float(rows["ada.docx"]["score"]) == expected_grade("m1", texts["ada.docx"])["overall_score"]
    )
    assert rows["locked.pdf"]["status"] == "failed" and "password" in rows["locked.pdf"]["error"]
    listed = client.get(f"/api/batches/{batch['id']}/jobs").json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == job["id"]
    # Every readable document graded, but some could not be read: not a clean finish.
    assert listed["items"][0]["status"] == "completed_with_errors"
    assert listed["items"][0]["progress"] == 1.0
    assert client.get(f"/api/batches/{batch['id']}").json()["status"] == "completed_with_errors"


def test_submissions_page_by_limit_and_offset_and_filter_by_status(client, sessions):
    batch = _new_batch(client, models=["openai:m1"], prompt="Grade it.")
    files = [
        ("files", (f"essay_{i:02}.txt", f"Essay {i}.".encode(), "text/plain")) for i in range(7)
    ]
    files.append(("files", ("empty.txt", b"", "text/plain")))
    job = client.post(f"/api/batches/{batch['id']}/jobs", files=files).json()["job"]
    url = f"/api/jobs/{job['id']}/submissions"

    pages = [client.get(url, params={"limit": 3, "offset": o}).json() for o in (0, 3, 6)]
    assert [len(p["items"]) for p in pages] == [3, 3, 2]
    assert {p["total"] for p in pages} == {8}
    names = [item["original_filename"] for p in pages for item in p["items"]]
    assert sorted(names) == sorted(f for _, (f, *_) in files) and len(set(names)) == 8
    failed = client.get(url, params={"status": "failed"}).json()
    assert failed["total"] == 1 and failed["items"][0]["original_filename"] == "empty.txt"
    assert "empty" in failed["items"][0]["error"]
    assert client.get(url, params={"limit": 0}).status_code == 422
    too_many = client.get(url, params={"limit": 501})
    assert too_many.status_code == 422
    assert too_many.json()["detail"].startswith("Invalid request: limit (query): ")
    assert "500" in too_many.json()["detail"]
    assert client.get(url, params={"offset": -1}).status_code == 422
    bogus = client.get(url, params={"status": "bogus"})
    assert bogus.status_code == 400 and "Unknown status 'bogus'" in bogus.json()["detail"]
    assert client.get("/api/jobs/nope/submissions").status_code == 404
    jobs_page = client.get(f"/api/batches/{batch['id']}/jobs", params={"limit": 1, "offset": 1})
    assert jobs_page.json() == {"total": 1, "limit": 1, "offset": 1, "items": []}
    assert client.get("/api/batches/nope/jobs").status_code == 404


def _zip(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def test_documents_added_to_a_running_job_are_graded_and_a_finished_job_takes_none(
    client, sessions, provider_env, upload_dir
):
    batch = _new_batch(client)
    created = client.post(
        f"/api/batches/{batch['id']}/jobs",
        data={"prompt": "Grade it.", "models": ["openai:m1", "claude:c1"], "start": "true"},
        files=[("files", ("first.txt", b"The first essay.", "text/plain"))],
    )
    assert created.status_code == 201 and created.json()["batch_status"] == "pending"
    job_id = created.json()["job"]["id"]
    class_set = _zip(
        {
            "class/ann.docx": make_docx(paragraphs=["Ann's essay in a zip."]),
            "class/ben.txt": b"Ben's essay in a zip.",
            "class/notes.png": png_bytes(),
            "__MACOSX/class/._ann.docx": b"\x00\x05\x16\x07 resource fork",
            "class/.DS_Store": b"\x00\x00\x00\x01Bud1",
        }
    )
    added = client.post(
        f"/api/jobs/{job_id}/submissions",
        files=[
            ("files", ("class.zip", class_set, "application/zip")),
            ("files", ("last.pdf", make_pdf(pages=["The last essay."]), "application/pdf")),
        ],
    )
    assert added.status_code == 201, added.text
    outcome = {f["filename"]: f["status"] for f in added.json()["files"]}
    assert outcome == {
        "ann.docx": "queued",
        "ben.txt": "queued",
        "notes.png": "failed",
        "last.pdf": "queued",
    }
    assert added.json()["queued_items"] == 6 and added.json()["job"]["total_items"] == 8

    grade_everything(sessions, provider_env)

    with unit_of_work(sessions, read_only=True) as session:
        job = session.get(GradingJob, job_id)
        # notes.png could not be read: every item graded, the job finished with errors.
        assert job.status == "completed_with_errors" and job.completed_items == 8
        assert job.processed_submissions == 4 and job.failed_submissions == 1
        sequences = session.execute(
            sa.select(Submission.original_filename, sa.func.min(WorkItem.sequence))
            .join(WorkItem, WorkItem.submission_id == Submission.id)
            .group_by(Submission.original_filename)
        ).all()
        assert dict(sequences)["first.txt"] == 0 and len({s for _, s in sequences}) == 4
    page = client.get(f"/api/jobs/{job_id}/submissions").json()
    graded = [i for i in page["items"] if i["status"] == "completed"]
    assert len(graded) == 4 and all(len(i["grades"]) == 2 for i in graded)
    assert all(i["score"] is None for i in graded)  # two models: see grades

    late = client.post(
        f"/api/jobs/{job_id}/submissions",
        files=[("files", ("late.txt", b"Too late.", "text/plain"))],
    )
    assert late.status_code == 409 and "is completed" in late.json()["detail"]
    another = client.post(
        f"/api/batches/{batch['id']}/jobs",
        data={"prompt": "Grade it.", "models": "openai:m1"},
        files=[("files", ("late.txt", b"Too late.", "text/plain"))],
    )
    assert another.status_code == 409 and "Year 9 essays" in another.json()["detail"]
    assert len(stored_files(upload_dir)) == 4  # the refused uploads left nothing behind


def test_a_template_fills_in_the_batch_and_its_jobs(client, sessions):
    batch = _new_batch(client, template="academic ESSAY grading", priority=9)
    assert batch["priority"] == 9 and batch["tags"] == ["essay", "academic"]
    assert batch["temperature"] == 0.2 and batch["max_tokens"] == 2000
    assert batch["batch_settings"]["max_retries"] == 3
    assert batch["batch_settings"]["timeout_seconds"] == 120
    by_id = _new_batch(client, template_id=batch["template_id"], settings={"max_retries": 5})
    assert by_id["batch_settings"]["max_retries"] == 5 and by_id["priority"] == 5

    created = client.post(
        f"/api/batches/{batch['id']}/jobs",
        data={"models": "anthropic:c1"},
        files=[("files", ("essay.txt", b"An essay on engines.", "text/plain"))],
    )
    assert created.status_code == 201, created.text
    job_view = created.json()["job"]
    assert job_view["models"] == ["claude:c1"] and job_view["job_name"] == "Year 9 essays"
    with unit_of_work(sessions, read_only=True) as session:
        job = session.get(GradingJob, job_view["id"])
        template = session.get(BatchTemplate, batch["template_id"])
        assert job.prompt == template.job_structure["prompt"] and job.temperature == 0.2
        scheme = session.get(MarkingScheme, job.marking_scheme_id)
        assert "Thesis and focus: up to 20 marks" in scheme.content
        assert template.usage_count == 2 and template.last_used is not None

    with_scheme = client.post(
        f"/api/batches/{batch['id']}/jobs",
        data={"models": "openai:m1", "prompt": "Own prompt.", "name": "With a rubric"},
        files=[
            ("files", ("essay.txt", b"Another essay.", "text/plain")),
            ("marking_scheme", ("rubric.docx", make_docx(paragraphs=["Argument: 10"]), "x/y")),
        ],
    )
    assert with_scheme.status_code == 201, with_scheme.text
    with unit_of_work(sessions, read_only=True) as session:
        job = session.get(GradingJob, with_scheme.json()["job"]["id"])
        scheme = session.get(MarkingScheme, job.marking_scheme_id)
        assert job.prompt == "Own prompt." and job.job_name == "With a rubric"
        assert scheme.original_filename == "rubric.docx" and scheme.file_type == "docx"
        assert "Argument: 10" in scheme.content and scheme.filename.endswith(".docx")
    missing = client.post("/api/batches", json={"name": "x", "template_id": "nope"})
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]


def test_bad_input_gets_a_4xx_with_a_message_and_changes_nothing(client, sessions, upload_dir):
    def detail(response, status: int) -> str:
        assert response.status_code == status, response.text
        return response.json()["detail"]

    def new_batch(**fields):
        return client.post("/api/batches", json={"name": "Essays", **fields})

    assert "between 1 and 10, not 11" in detail(new_batch(priority=11), 400)
    assert "needs a name" in detail(new_batch(name="  "), 400)
    assert "at most 255 characters" in detail(new_batch(name="x" * 256), 422)
    assert "settings.max_retries" in detail(new_batch(settings={"max_retries": 99}), 422)
    assert "Temperature" in detail(new_batch(temperature=7), 400)
    unknown_template = detail(new_batch(template="Nope"), 404)
    assert "No template named 'Nope'" in unknown_template
    assert "Academic Essay Grading" in unknown_template
    unknown = detail(new_batch(models=["mystery:m"]), 400)
    assert "unknown provider 'mystery'" in unknown
    assert all(name in unknown for name in ("openai", "claude", "openrouter", "ollama"))
    assert "needs a provider" in detail(new_batch(models=["gpt-4o"]), 422)
    assert "OPENROUTER_API_KEY" in detail(new_batch(models=["openrouter:openai/gpt-4o"]), 400)
    assert client.get("/api/batches").json()["total"] == 0

    batch = client.post("/api/batches", json={"name": "Essays"}).json()
    url = f"/api/batches/{batch['id']}/jobs"
    essay = [("files", ("essay.txt", b"An essay.", "text/plain"))]
    good = {"prompt": "Grade it.", "models": "openai:m1"}
    assert "prompt is empty" in detail(
        client.post(url, data={**good, "prompt": " "}, files=essay), 400
    )
    assert "prompt is empty" in detail(
        client.post(url, data={"models": "openai:m1"}, files=essay), 400
    )
    assert "at least one model" in detail(
        client.post(url, data={"prompt": "Go."}, files=essay), 400
    )
    bad_model = detail(client.post(url, data={**good, "models": "mystery:m"}, files=essay), 400)
    assert "unknown provider 'mystery'" in bad_model and "openai" in bad_model
    assert "files (body): Field required" in detail(client.post(url, data=good), 422)
    assert "Temperature" in detail(
        client.post(url, data={**good, "temperature": "3"}, files=essay), 400
    )
    scheme = [*essay, ("marking_scheme", ("rubric.pdf", b"%PDF-1.4\nbroken", "x/y"))]
    assert "marking scheme cannot be used" in detail(client.post(url, data=good, files=scheme), 400)
    assert "No batch with id nope" in detail(
        client.post("/api/batches/nope/jobs", data=good, files=essay), 404
    )
    assert "No grading job with id nope" in detail(
        client.post("/api/jobs/nope/submissions", files=essay), 404
    )
    assert client.get(f"/api/batches/{batch['id']}/jobs").json()["total"] == 0
    assert stored_files(upload_dir) == []

    client.post(f"/api/batches/{batch['id']}/cancel")
    assert "is cancelled" in detail(client.post(url, data=good, files=essay), 409)


def test_an_oversized_request_is_refused_with_413_before_anything_is_stored(
    client, sessions, upload_dir, monkeypatch
):
    from grading_app.documents import validate

    monkeypatch.setattr(validate, "REQUEST_SIZE_FACTOR", 2)  # 2 x 1 MB + 1 MB of form
    batch = _new_batch(client, prompt="Grade it.", models=["openai:m1"])
    url = f"/api/batches/{batch['id']}/jobs"
    essay = b"Words of an essay. " * (900 * 1024 // 19)
    files = [("files", (f"essay_{i}.txt", essay, "text/plain")) for i in range(4)]

    declared = client.post(url, files=files)
    assert declared.status_code == 413
    message = declared.json()["detail"]
    assert "one request may carry" in message and "several smaller requests" in message

    # Without a Content-Length (chunked), the limit holds as the bytes arrive.
    boundary = "grading-app-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
        'filename="big.txt"\r\nContent-Type: text/plain\r\n\r\n'
    ).encode()
    body = head + essay * 4 + f"\r\n--{boundary}--\r\n".encode()
    chunked = client.post(
        url,
        content=(body[i : i + 64 * 1024] for i in range(0, len(body), 64 * 1024)),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert chunked.status_code == 413 and "one request may carry" in chunked.json()["detail"]

    within = client.post(url, files=files[:2])
    assert within.status_code == 201 and within.json()["queued_items"] == 2
    assert len(stored_files(upload_dir)) == 2
    with unit_of_work(sessions, read_only=True) as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(GradingJob)) == 1


def test_a_text_file_named_docx_or_pdf_becomes_a_failed_submission_saying_so(client, sessions):
    batch = _new_batch(client)
    files = [
        ("files", ("essay.docx", b"Typed in Notepad and renamed.", "application/octet-stream")),
        ("files", ("report.pdf", b"<html><body>Sign in to download</body></html>", "x/y")),
        ("files", ("notes.txt", b"A real plain-text essay.", "text/plain")),
    ]
    response = client.post(
        f"/api/batches/{batch['id']}/jobs",
        data={"prompt": "Grade this essay.", "models": "openai:m1"},
        files=files,
    )

    assert response.status_code == 201, response.text
    outcome = {f["filename"]: f for f in response.json()["files"]}
    assert outcome["notes.txt"]["status"] == "queued"
    for name, suffix in (("essay.docx", ".docx"), ("report.pdf", ".pdf")):
        assert outcome[name]["status"] == "failed" and outcome[name]["error_code"] == "not_its_type"
        assert outcome[name]["error"].startswith(f'"{name}" is not a {suffix} file')
    job_id = response.json()["job"]["id"]
    failed = client.get(f"/api/jobs/{job_id}/submissions", params={"status": "failed"}).json()
    assert {item["original_filename"] for item in failed["items"]} == {"essay.docx", "report.pdf"}
    assert all("is not a" in item["error"] for item in failed["items"])
    assert "Typed in Notepad" not in _texts(sessions).values()


def _partly_failed_job(client, llm) -> tuple[str, dict]:
    """A job of two documents graded by two models; the second model fails on one."""
    batch = _new_batch(client)
    llm.script("c1", [Fault.status(404, "model not found")])  # its first call only
    created = client.post(
        f"/api/batches/{batch['id']}/jobs",
        data={"prompt": "Grade it.", "models": ["openai:m1", "claude:c1"], "start": "true"},
        files=[
            ("files", ("ann.txt", b"Ann's essay.", "text/plain")),
            ("files", ("ben.txt", b"Ben's essay.", "text/plain")),
        ],
    )
    assert created.status_code == 201, created.text
    return created.json()["job"]["id"], batch


def test_a_document_one_model_failed_is_shown_partly_failed(client, sessions, llm, provider_env):
    job_id, _ = _partly_failed_job(client, llm)

    grade_everything(sessions, provider_env, concurrency=1)

    page = client.get(f"/api/jobs/{job_id}/submissions").json()
    by_partly = {item["partly_failed"]: item for item in page["items"]}
    partly, whole = by_partly[True], by_partly[False]
    assert partly["status"] == "completed"  # the legacy status: a model graded it
    assert [g["model"] for g in partly["grades"]] == ["m1"]
    [failure] = partly["failed_models"]
    assert (failure["provider"], failure["model"]) == ("claude", "c1")
    assert "not found" in failure["error"]
    assert whole["failed_models"] == [] and len(whole["grades"]) == 2
    job = client.get(f"/api/jobs/{job_id}").json()
    assert (job["processed_submissions"], job["partly_failed_submissions"]) == (2, 1)
    assert job["failed_items"] == 1 and job["status"] == "completed_with_errors"


def test_retrying_the_failed_model_clears_the_partly_failed_count(
    client, sessions, llm, provider_env
):
    job_id, _ = _partly_failed_job(client, llm)
    grade_everything(sessions, provider_env, concurrency=1)

    retried = client.post(f"/api/jobs/{job_id}/retry-failed")
    assert retried.status_code == 200, retried.text
    assert client.get(f"/api/jobs/{job_id}").json()["partly_failed_submissions"] == 0
    llm.script("c1", [Fault.status(404, "model not found")])  # fails again
    grade_everything(sessions, provider_env, concurrency=1)
    assert client.get(f"/api/jobs/{job_id}").json()["partly_failed_submissions"] == 1

    client.post(f"/api/jobs/{job_id}/retry-failed")
    grade_everything(sessions, provider_env, concurrency=1)  # succeeds this time

    job = client.get(f"/api/jobs/{job_id}").json()
    assert (job["partly_failed_submissions"], job["processed_submissions"]) == (0, 2)
    assert job["status"] == "completed"
    page = client.get(f"/api/jobs/{job_id}/submissions").json()
    assert [item["partly_failed"] for item in page["items"]] == [False, False]
