"""The library and templates on databases an earlier release made, after the upgrade:
their saved prompts and marking schemes are listed, used by id, counted and kept while
legacy jobs refer to them; the default template the guide's own script made is read-only."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from grading_app.app import create_app
from grading_app.config import Settings
from grading_app.db import make_engine, make_sessionmaker, unit_of_work
from grading_app.models import GradingJob, MarkingScheme
from tests import legacy_db
from tests.conftest import sign_in_admin
from tests.upgrade.helpers import build_legacy, upgrade


@pytest.fixture
def upgraded(database_url, tmp_path, provider_env, monkeypatch):
    """Build a legacy database of the given generation, upgrade it, and serve it."""

    def serve(generation: str, *, original_script: bool = False) -> TestClient:
        build_legacy(database_url, generation)
        if original_script:
            legacy_db.apply_original_script(database_url)
        upgrade(database_url, tmp_path)
        for key, value in provider_env.items():
            monkeypatch.setenv(key, value)
        settings = Settings(
            database_url=database_url, upload_dir=tmp_path / "uploads", max_upload_mb=1
        )
        client = TestClient(create_app(settings), base_url="http://localhost")
        sign_in_admin(client)
        return client

    return serve


@pytest.fixture
def legacy_sessions(database_url) -> Iterator:
    engine = make_engine(database_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()


@pytest.mark.parametrize("generation", ["G4", "G5"])
def test_saved_items_of_an_earlier_release_are_listed_and_used_by_id(
    upgraded, legacy_sessions, generation
):
    with upgraded(generation) as client:
        prompts = client.get("/api/prompts").json()
        assert prompts["total"] == 2
        by_id = {p["id"]: p for p in prompts["items"]}
        essay = by_id[legacy_db.SAVED_PROMPT_ID]
        assert essay["usage_count"] == 12 and essay["category"] == "essays"
        # G4/G5 prompts name their preferred model; NULL usage reads as never used.
        assert (essay["provider"], essay["model"]) == ("openrouter", "openai/gpt-4o")
        assert by_id[legacy_db.SAVED_PROMPT_BARE_ID]["usage_count"] == 0
        schemes = client.get("/api/marking-schemes", params={"q": "dissertation"}).json()
        assert [s["id"] for s in schemes["items"]] == [legacy_db.SAVED_MARKING_SCHEME_ID]
        scheme = client.get(f"/api/marking-schemes/{legacy_db.SAVED_MARKING_SCHEME_ID}").json()
        assert scheme["rubric"] is None and "Thèse (20 pts)" in scheme["content"]
        assert scheme["original_filename"] == "Rubrique – dissertation.docx"

        batch = client.post(
            "/api/batches",
            json={
                "name": "Reused from the old library",
                "saved_prompt_id": legacy_db.SAVED_PROMPT_ID,
                "saved_marking_scheme_id": legacy_db.SAVED_MARKING_SCHEME_ID,
                "models": ["openai:m1"],
            },
        )
        assert batch.status_code == 201, batch.text
        job = client.post(
            f"/api/batches/{batch.json()['id']}/jobs",
            files=[("files", ("essay.txt", b"An essay on rivers.", "text/plain"))],
        )
        assert job.status_code == 201, job.text

        assert client.get(f"/api/prompts/{legacy_db.SAVED_PROMPT_ID}").json()["usage_count"] == 13
        used = client.get(f"/api/marking-schemes/{legacy_db.SAVED_MARKING_SCHEME_ID}").json()
        assert used["usage_count"] == 5
        with unit_of_work(legacy_sessions, read_only=True) as session:
            made = session.get(GradingJob, job.json()["job"]["id"])
            assert made.prompt.startswith("Grade this essay out of 100.")
            copy = session.get(MarkingScheme, made.marking_scheme_id)
            assert copy.content == scheme["content"] and copy.rubric is None

        # Jobs of the earlier release refer to them: they stay.
        refused = client.delete(f"/api/prompts/{legacy_db.SAVED_PROMPT_ID}")
        assert refused.status_code == 409
        assert "· part" in refused.json()["detail"]  # a legacy job's name
        assert client.delete(f"/api/prompts/{legacy_db.SAVED_PROMPT_BARE_ID}").status_code == 204
        # New rows fit the old tables (G4/G5 made saved_prompts.provider NOT NULL).
        added = client.post("/api/prompts", json={"name": "New", "prompt_text": "Grade it."})
        assert added.status_code == 201, added.text


def test_the_default_template_the_guides_script_made_is_read_only(upgraded):
    with upgraded("G6", original_script=True) as client:
        templates = client.get("/api/templates").json()["items"]
        script_made = next(t for t in templates if t["id"] == legacy_db.ORIGINAL_SCRIPT_TEMPLATE_ID)
        assert script_made["is_default"] and script_made["created_by"] == "system"
        assert sum(t["is_default"] for t in templates) == 4

        refused = client.delete(f"/api/templates/{legacy_db.ORIGINAL_SCRIPT_TEMPLATE_ID}")
        assert refused.status_code == 409 and "duplicate it" in refused.json()["detail"]
        copy = client.post(f"/api/templates/{legacy_db.ORIGINAL_SCRIPT_TEMPLATE_ID}/duplicate")
        assert copy.status_code == 201 and not copy.json()["is_default"]
