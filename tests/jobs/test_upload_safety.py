"""Uploads on a shared server: names that cannot disguise themselves, files a crash
left behind removed at start-up, and long texts kept on disk rather than in memory
between reading and recording."""

from __future__ import annotations

import io
import logging
import os
import time
import uuid

import sqlalchemy as sa
from fastapi.testclient import TestClient

from grading_app.app import create_app
from grading_app.config import Settings
from grading_app.documents.errors import clean_filename, display_name
from grading_app.jobs import uploads
from grading_app.jobs.uploads import IncomingFile, prepare_upload, release_spooled
from grading_app.library.scheme_files import read_scheme_file
from tests.conftest import sign_in_admin

BATCH = {"name": "Essays", "prompt": "Grade it.", "models": ["openai:m"]}
MB = 1024 * 1024


def _job_with(client, files):
    batch = client.post("/api/batches", json=BATCH).json()
    created = client.post(f"/api/batches/{batch['id']}/jobs", files=files)
    assert created.status_code == 201, created.text
    return created.json()


# --- names -----------------------------------------------------------------------------


def test_names_lose_control_and_bidirectional_characters():
    # U+202E turns "gnp.exe" around: the name would read "essayexe.png".
    assert clean_filename("essay\u202egnp.exe", default="x") == "essaygnp.exe"
    isolates = "\u2066Ada\u2069 \u2067Lovelace\u2068\u200e\u200f\u061c\u202a\u202b\u202c\u202d.txt"
    assert clean_filename(isolates, default="x") == "Ada Lovelace.txt"
    assert clean_filename("red\x1b[31m\x07.txt", default="x") == "red [31m .txt"
    assert clean_filename("c1\x85\x9b.txt", default="x") == "c1  .txt"  # C1 controls
    assert clean_filename("\u202e\x1b", default="unnamed") == "unnamed"
    assert clean_filename("C:\\Users\\ada\\\u202eessay.txt", default="x") == "essay.txt"
    assert display_name("bad\u202etxt.exe") == '"badtxt.exe"'
    # What is not a control stays: letters of any script, joiners inside emoji.
    assert (
        clean_filename("Ünïcødé 論文 👩\u200d🔬.txt", default="x") == "Ünïcødé 論文 👩\u200d🔬.txt"
    )


def test_stored_names_of_uploads_are_clean(client):
    names = ["essay\u202egnp.txt", "\u2066Ada\u2069 Lovelace.txt", "red\x1b[31m\x85.txt"]
    files = [("files", (name, b"An essay of some words.", "text/plain")) for name in names]
    upload = _job_with(client, files)
    assert [f["filename"] for f in upload["files"]] == [
        "essaygnp.txt",
        "Ada Lovelace.txt",
        "red [31m .txt",
    ]
    listed = client.get(f"/api/jobs/{upload['job']['id']}/submissions").json()["items"]
    assert sorted(s["original_filename"] for s in listed) == sorted(
        ["essaygnp.txt", "Ada Lovelace.txt", "red [31m .txt"]
    )


def test_marking_scheme_names_are_clean_too(tmp_path):
    scheme = read_scheme_file(
        b"Argument: 10 marks", filename="rubric\u202etxt.exe", upload_dir=tmp_path, max_bytes=MB
    )
    assert scheme.original_filename == "rubrictxt.exe"


# --- what a crash leaves ---------------------------------------------------------------


def _old(path, hours=2):
    then = time.time() - hours * 3600
    os.utime(path, (then, then))


def test_files_a_crash_left_are_removed_when_the_server_starts(
    sessions, database_url, upload_dir, provider_env, monkeypatch, caplog
):
    """A process killed between storing files and recording them leaves stored files
    no row names and a `.part`; the next start removes them, and nothing else."""
    for key, value in provider_env.items():
        monkeypatch.setenv(key, value)
    settings = Settings(database_url=database_url, upload_dir=upload_dir, max_upload_mb=1)
    with TestClient(create_app(settings), base_url="http://localhost") as client:
        sign_in_admin(client)
        _job_with(client, [("files", ("kept.txt", b"A recorded essay.", "text/plain"))])
    (recorded,) = [p.name for p in upload_dir.iterdir()]
    crashed = {
        f"{uuid.uuid4().hex}.txt": b"stored, never recorded",
        f"{uuid.uuid4().hex}.pdf": b"%PDF- stored, never recorded",
        ".upload-k1ll3d.part": b"half written",
        ".upload-t3xt.text.part": b"a long text waiting for its row",
    }
    others = {
        "notes.txt": b"not a name the application makes",
        f"{uuid.uuid4().hex}.exe": b"not a type it stores",
    }
    for name, data in {**crashed, **others}.items():
        (upload_dir / name).write_bytes(data)
    for path in upload_dir.iterdir():
        _old(path)
    (upload_dir / "sub").mkdir()  # folders are never touched
    in_flight = f"{uuid.uuid4().hex}.txt"  # another process's upload, stored just now
    (upload_dir / in_flight).write_bytes(b"being recorded elsewhere")

    caplog.set_level(logging.INFO, logger="grading_app.jobs.orphans")
    application = create_app(settings)
    with TestClient(application, base_url="http://localhost") as client:
        assert client.get("/health").status_code == 200
        left = {p.name for p in upload_dir.iterdir()}
        assert left == {recorded, in_flight, "sub", *others}
        assert "removed 4 stored file(s)" in caplog.text
        assert "(2 partial, 2 not recorded)" in caplog.text

        # IN_FLIGHT_GRACE_SECONDS after the start, its timer sweeps again: by then the
        # file stored just before the start would have been recorded; it was not.
        after_start = upload_dir / f"{uuid.uuid4().hex}.txt"
        after_start.write_bytes(b"stored after the start: not this sweep's to judge")
        later = application.state.orphan_sweep.started + 1  # file clocks are coarse
        os.utime(after_start, (later, later))
        assert application.state.orphan_sweep.after_grace() == 1
        left = {p.name for p in upload_dir.iterdir()}
        assert left == {recorded, after_start.name, "sub", *others}


def test_nothing_to_remove_logs_nothing_and_a_missing_folder_is_fine(
    sessions, database_url, tmp_path, caplog
):
    caplog.set_level(logging.INFO, logger="grading_app.jobs.orphans")
    settings = Settings(database_url=database_url, upload_dir=tmp_path / "never-made")
    with TestClient(create_app(settings), base_url="http://localhost") as client:
        assert client.get("/health").status_code == 200
    assert "removed" not in caplog.text
    assert not (tmp_path / "never-made").exists()


# --- long texts ------------------------------------------------------------------------


def test_a_long_text_waits_on_disk_until_its_row_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(uploads, "SPOOL_TEXT_CHARS", 100)
    essay = ("A long essay line with some words.\n" * 20).encode()
    (document,) = prepare_upload(
        IncomingFile("long.txt", io.BytesIO(essay)), upload_dir=tmp_path, max_bytes=MB
    )
    assert document.text is None and document.text_path is not None
    assert document.text_path.parent == tmp_path and document.text_path.name.endswith(".part")
    assert document.full_text() == essay.decode().strip()
    release_spooled([document])
    assert not document.text_path.exists()
    (short,) = prepare_upload(
        IncomingFile("short.txt", io.BytesIO(b"Short.")), upload_dir=tmp_path, max_bytes=MB
    )
    assert short.text == "Short." and short.text_path is None


def test_long_texts_are_recorded_whole_and_their_spools_removed(
    client, database_url, upload_dir, monkeypatch
):
    monkeypatch.setattr(uploads, "SPOOL_TEXT_CHARS", 1000)
    texts = [f"Essay {n}: " + "words and more words, " * 200 for n in range(3)]
    files = [("files", (f"e{n}.txt", text.encode(), "text/plain")) for n, text in enumerate(texts)]
    files.append(("files", ("short.txt", b"A short one.", "text/plain")))
    _job_with(client, files)
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            recorded = dict(
                connection.execute(
                    sa.text("SELECT original_filename, extracted_text FROM submissions")
                ).all()
            )
    finally:
        engine.dispose()
    assert recorded == {
        **{f"e{n}.txt": text.strip() for n, text in enumerate(texts)},
        "short.txt": "A short one.",
    }
    assert not [p.name for p in upload_dir.iterdir() if p.name.endswith(".part")]
