"""Malformed requests get a 4xx naming what is wrong, never a 500, on every route (the
request guard sits in front of all of them, those added later too), and the OpenAPI
document says what the API answers. Every database test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from grading_app.api_schema import ERROR_DESCRIPTIONS
from grading_app.app import create_app
from grading_app.config import Settings
from grading_app.db import unit_of_work
from grading_app.fields import DESCRIPTION_LENGTH, NAME_LENGTH, PROMPT_LENGTH, TAG_LENGTH
from grading_app.models import GradingJob, JobBatch, Submission
from tests.documents.factories import make_docx

MB = 1024 * 1024
NUL_REFUSED = "must not contain the NUL character"
SURROGATE_REFUSED = "must be valid Unicode text"


def _detail(response, status: int) -> str:
    assert response.status_code == status, response.text
    return response.json()["detail"]


def _count(sessions, model) -> int:
    with unit_of_work(sessions, read_only=True) as session:
        return session.scalar(sa.select(sa.func.count()).select_from(model)) or 0


def _raw_json(client, url: str, text: str):
    """`text` sent as it is: JSON escapes such as \\ud800 reach the server unchanged."""
    return client.post(url, content=text.encode(), headers={"content-type": "application/json"})


def _multipart(parts: list[tuple[str, str | None, bytes]]) -> tuple[bytes, dict[str, str]]:
    """A multipart body written byte by byte (HTTP clients escape what this test needs
    to send raw): (field name, file name or None, value)."""
    boundary = b"robustness-boundary"
    body = b""
    for name, filename, value in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        body += b"--" + boundary + b"\r\nContent-Disposition: "
        body += disposition.encode("utf-8") + b"\r\n\r\n" + value + b"\r\n"
    body += b"--" + boundary + b"--\r\n"
    return body, {"content-type": f"multipart/form-data; boundary={boundary.decode()}"}


class Note(BaseModel):
    text: str


def _new_batch(client) -> dict:
    response = client.post(
        "/api/batches", json={"name": "Essays", "models": ["openai:m1"], "prompt": "Grade it."}
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_nul_and_lone_surrogates_in_json_bodies_are_a_422_naming_the_field(client, sessions):
    name = _detail(client.post("/api/batches", json={"name": "Essays\x00"}), 422)
    assert name == f"Invalid request: name (body): {NUL_REFUSED} (\\u0000)"
    tag = _detail(
        _raw_json(client, "/api/batches", '{"name": "x", "tags": ["a", "b\\ud800"]}'), 422
    )
    assert tag.startswith(f"Invalid request: tags.1 (body): {SURROGATE_REFUSED}")
    # Encoded as UTF-8 bytes rather than escaped: json.loads lets those through too.
    raw = b'{"name": "x", "description": "\xed\xa0\x80"}'
    raw_response = client.post(
        "/api/batches", content=raw, headers={"content-type": "application/json"}
    )
    assert "description (body)" in _detail(raw_response, 422)
    key = _detail(client.post("/api/batches", json={"name": "x", "settings": {"a\x00": 1}}), 422)
    assert key == f"Invalid request: settings (body): a key {NUL_REFUSED} (\\u0000)"
    # No content type at all is read as JSON by FastAPI, and checked the same way.
    untyped = client.post("/api/batches", content=b'{"name": "\\u0000"}', headers={})
    assert "name (body)" in _detail(untyped, 422)
    assert _count(sessions, JobBatch) == 0

    fine = client.post("/api/batches", json={"name": "Ünïcödé 😀 essays", "description": "a\tb"})
    assert fine.status_code == 201, fine.text
    assert fine.json()["batch_name"] == "Ünïcödé 😀 essays"


def test_nul_in_path_and_query_parameters_is_a_422_naming_the_parameter(client):
    batch = _detail(client.get("/api/batches/abc%00def"), 422)
    assert batch == f"Invalid request: batch_id (path): {NUL_REFUSED} (\\u0000)"
    assert "job_id (path)" in _detail(client.post("/api/jobs/x%00/pause"), 422)
    assert "job_id (path)" in _detail(client.get("/api/jobs/x%00/submissions"), 422)
    assert "status (query)" in _detail(client.get("/api/batches?status=draft%00"), 422)
    assert "offset (query)" in _detail(client.get("/api/batches?offset=%00"), 422)
    # Bytes that are not UTF-8 are decoded with replacement characters: refused as an
    # unknown status, not a 500.
    assert "Unknown status" in _detail(client.get("/api/batches?status=%ED%A0%80"), 422)
    # Static files too (a NUL in a file path is a ValueError in the os module).
    assert "(path)" in _detail(client.get("/static/app%00.css"), 422)


def test_nul_in_form_fields_and_file_names_is_a_422_and_nothing_is_stored(
    client, sessions, upload_dir
):
    url = f"/api/batches/{_new_batch(client)['id']}/jobs"
    essay = ("files", "essay.txt", b"An essay on engines.")
    body, headers = _multipart([("name", None, b"Week\x001"), essay])
    named = _detail(client.post(url, content=body, headers=headers), 422)
    assert named == f"Invalid request: name (form): {NUL_REFUSED} (\\u0000)"
    body, headers = _multipart([("files", "ess\x00ay.txt", b"An essay.")])
    assert "files (file name)" in _detail(client.post(url, content=body, headers=headers), 422)
    assert _count(sessions, GradingJob) == 0
    assert not upload_dir.exists() or not any(upload_dir.rglob("*.*"))

    # A file's content may hold any bytes (a .docx is a zip full of NULs).
    docx = ("files", "essay.docx", make_docx())
    body, headers = _multipart([docx, ("name", None, b"Week 1")])
    accepted = client.post(url, content=body, headers=headers)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["files"][0]["status"] == "queued"

    url_encoded = client.post(
        f"/api/batches/{_new_batch(client)['id']}/jobs",
        content=b"name=a%00b",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert "name (form)" in _detail(url_encoded, 422)


def test_uploaded_file_names_are_stored_without_control_characters(client, sessions):
    url = f"/api/batches/{_new_batch(client)['id']}/jobs"
    body, headers = _multipart([("files", "essay\tone\x1b.txt", b"An essay on engines.")])
    response = client.post(url, content=body, headers=headers)
    assert response.status_code == 201, response.text
    with unit_of_work(sessions, read_only=True) as session:
        assert session.scalars(sa.select(Submission.original_filename)).all() == ["essay one .txt"]


def test_text_fields_have_maximum_lengths(client, sessions):
    def refused(field: str, **body) -> str:
        return _detail(client.post("/api/batches", json={"name": "x", **body}), 422)

    too_long = f"String should have at most {DESCRIPTION_LENGTH} characters"
    description = refused("description", description="d" * (DESCRIPTION_LENGTH + 1))
    assert description == f"Invalid request: description (body): {too_long}"
    assert "prompt (body)" in refused("prompt", prompt="p" * (PROMPT_LENGTH + 1))
    assert "tags.0 (body)" in refused("tags", tags=["t" * (TAG_LENGTH + 1)])
    assert "name (body)" in _detail(
        client.post("/api/batches", json={"name": "n" * (NAME_LENGTH + 1)}), 422
    )
    assert _count(sessions, JobBatch) == 0
    longest = {"name": "n" * NAME_LENGTH, "description": "d" * DESCRIPTION_LENGTH}
    assert client.post("/api/batches", json=longest).status_code == 201

    url = f"/api/batches/{_new_batch(client)['id']}/jobs"
    form = {"prompt": "p" * (PROMPT_LENGTH + 1)}
    essay = [("files", ("essay.txt", b"An essay.", "text/plain"))]
    assert "prompt (body)" in _detail(client.post(url, data=form, files=essay), 422)


def test_json_bodies_over_the_limit_are_a_413_while_uploads_keep_their_own(client, sessions):
    big = {"name": "x", "description": "d" * 3 * MB}
    declared = _detail(client.post("/api/batches", json=big), 413)
    assert "is 3 MB, over the 2 MB this endpoint takes (MAX_BODY_KB)" in declared

    def chunks():  # no Content-Length: counted as it arrives
        yield b'{"name": "x", "description": "'
        for _ in range(40):
            yield b"d" * 65536
        yield b'"}'

    streamed = client.post(
        "/api/batches", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "The request body is over the 2 MB" in _detail(streamed, 413)
    assert _count(sessions, JobBatch) == 0

    # Every field at its longest, each character an emoji written as JSON escapes
    # (12 bytes): within the limit.
    emoji = "\U0001f600"
    longest = {
        "name": emoji * NAME_LENGTH,
        "description": emoji * DESCRIPTION_LENGTH,
        "prompt": emoji * PROMPT_LENGTH,
        "tags": [emoji * TAG_LENGTH] * 20,
        "models": ["openai:m1"],
    }
    assert len(json.dumps(longest)) > MB
    accepted = client.post("/api/batches", json=longest)
    assert accepted.status_code == 201, accepted.text[:200]

    # Three documents of 0.9 MB: over MAX_BODY_KB, within the upload limit.
    url = f"/api/batches/{_new_batch(client)['id']}/jobs"
    essay = b"An essay on engines. " * (900_000 // 21)
    files = [("files", (f"essay{i}.txt", essay, "text/plain")) for i in range(3)]
    uploaded = client.post(url, files=files)
    assert uploaded.status_code == 201, uploaded.text
    assert [f["status"] for f in uploaded.json()["files"]] == ["queued"] * 3


def test_a_method_a_path_does_not_take_gets_405_with_every_method_it_does(client):
    batch_id = _new_batch(client)["id"]
    jobs = f"/api/batches/{batch_id}/jobs"
    refused = client.put(jobs)
    assert refused.status_code == 405
    # Two routes serve this path (GET lists, POST uploads): both are named.
    assert refused.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    assert (
        refused.json()["detail"]
        == f"PUT is not allowed on {jobs}; it takes GET, HEAD, OPTIONS, POST"
    )
    options = client.options(jobs)
    assert options.status_code == 204 and options.headers["allow"] == "GET, HEAD, OPTIONS, POST"
    assert client.options("/api/batches").headers["allow"] == "GET, HEAD, OPTIONS, POST"
    assert client.options(f"/api/batches/{batch_id}/pause").headers["allow"] == "OPTIONS, POST"
    assert client.options("/api/nothing-here").status_code == 404

    head = client.head(f"/api/batches/{batch_id}")
    get = client.get(f"/api/batches/{batch_id}")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"] == "application/json"
    assert client.head("/api/batches/nope").status_code == 404


def test_routes_added_after_the_app_is_built_are_guarded_too(sqlite_url):
    """Other routers come and go; the guard reads the routes on each request."""
    application: FastAPI = create_app(Settings(database_url=sqlite_url, max_body_kb=1))

    @application.post("/api/notes", response_model=Note)
    def add_note(note: Note) -> Note:
        return note

    with TestClient(application, base_url="http://localhost") as client:
        assert client.post("/api/notes", json={"text": "fine"}).json() == {"text": "fine"}
        assert "text (body)" in _detail(client.post("/api/notes", json={"text": "\x00"}), 422)
        assert "(MAX_BODY_KB)" in _detail(client.post("/api/notes", json={"text": "x" * 2000}), 413)
        assert client.options("/api/notes").headers["allow"] == "OPTIONS, POST"


def _keys(value) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for item in value.values() for k in _keys(item)}
    if isinstance(value, list):
        return {k for item in value for k in _keys(item)}
    return set()


def test_the_openapi_document_types_every_answer_and_error(client):
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert schemas["ErrorOut"] == {
        "description": schemas["ErrorOut"]["description"],
        "properties": {"detail": {"title": "Detail", "type": "string"}},
        "required": ["detail"],
        "title": "ErrorOut",
        "type": "object",
    }
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
    operations = [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]
    assert len(operations) >= 20
    for path, method, operation in operations:
        responses = operation["responses"]
        success = [code for code in responses if code.startswith("2")]
        assert success, f"{method} {path} documents no success"
        content = responses[success[0]].get("content", {})
        if success == ["204"]:
            assert not content, f"{method} {path}: a 204 with a body"
        else:
            assert content, f"{method} {path} has no typed success body"
        if "application/json" in content:
            assert content["application/json"]["schema"], f"{method} {path} is untyped"
        expected = {"400", "422", "503"}
        if "{" in path or "requestBody" in operation:
            expected.add("404")
        if method != "get":
            expected.add("409")
        if "requestBody" in operation:
            expected.add("413")
        for code in expected - ({"503"} if path == "/health" else set()):
            assert responses[code]["content"] == error, f"{method} {path} {code}"
            assert responses[code]["description"] == ERROR_DESCRIPTIONS[int(code)]
        # A query parameter or form field cannot be null, only left out.
        for parameter in operation.get("parameters", []):
            assert '"null"' not in json.dumps(parameter["schema"]), f"{method} {path}"
    # Bounds in JSON Schema's words (pydantic can leak its own "ge"/"le" into a schema).
    leaked = {"ge", "le", "gt", "lt"} & _keys(document["components"])
    assert not leaked, f"bounds JSON Schema does not know: {leaked}"
    form = schemas["Body_create_job_api_batches__batch_id__jobs_post"]
    assert form["properties"]["prompt"] == {
        "type": "string",
        "maxLength": PROMPT_LENGTH,
        "title": "Prompt",
        "description": "Grading instructions; default the batch's or template's",
    }
    job = document["paths"]["/api/jobs/{job_id}"]["get"]["responses"]["200"]
    assert job["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/JobDetailOut"
    }
    assert "agreement" not in schemas["JobDetailOut"]["properties"]  # analytics' (a scan)
    csv = document["paths"]["/api/jobs/{job_id}/results.csv"]["get"]["responses"]["200"]
    assert [media.split(";")[0] for media in csv["content"]] == ["text/csv"]
    # What the validation handler really sends is that shape.
    answer = client.get("/api/batches", params={"limit": "many"})
    assert answer.status_code == 422 and list(answer.json()) == ["detail"]
    assert isinstance(answer.json()["detail"], str)


def test_job_answers_match_their_documented_shape(client, sessions):
    from grading_app.jobs.schemas import JobDetailOut

    batch = _new_batch(client)
    essay = [("files", ("essay.txt", b"An essay on engines.", "text/plain"))]
    url = f"/api/batches/{batch['id']}/jobs"
    job = client.post(url, files=essay, data={"start": "true"}).json()["job"]
    detail = client.get(f"/api/jobs/{job['id']}").json()
    assert JobDetailOut.model_validate(detail).total_submissions == 1
    assert set(detail) == set(JobDetailOut.model_json_schema(mode="serialization")["properties"])
    paused = client.post(f"/api/jobs/{job['id']}/pause").json()
    assert JobDetailOut.model_validate(paused).status == "paused"
    retried = client.post(f"/api/jobs/{job['id']}/retry-failed")
    assert retried.status_code == 409 and list(retried.json()) == ["detail"]


def test_form_fields_are_checked_whatever_chunks_the_body_arrives_in():
    """Uploads stream through the guard: a header or a NUL may straddle two chunks."""
    from grading_app.request_guard import FormChecker

    essay = ("files", "essay.txt", b"An essay on engines.")
    for parts, expected in (
        ([essay, ("prompt", None, b"Grade\x00it")], "prompt (form)"),
        ([("files", "ess\x00ay.txt", b"x"), essay], "files (file name)"),
        ([essay, ("prompt", None, b"Grade it.")], None),
    ):
        body, headers = _multipart(parts)
        checker = FormChecker(headers["content-type"])
        found = [checker.feed(body[i : i + 1]) for i in range(len(body))]
        if expected is None:
            assert not any(found)
        else:
            assert (found[-1] or "").startswith(f"Invalid request: {expected}")
