"""A server killed in the middle of an upload: the files it had stored, and the texts
waiting on disk, belong to no row; the next server removes them and nothing else."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import sqlalchemy as sa
from fastapi.testclient import TestClient

from grading_app.app import create_app
from grading_app.config import Settings
from grading_app.upgrade.schema import upgrade_schema
from tests.conftest import admin_token

GRADING_APP = str(Path(sys.executable).with_name("grading-app"))
BATCH = {"name": "Essays", "prompt": "Grade it.", "models": ["openai:m"]}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _submissions(database_url: str) -> int:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text("SELECT count(*) FROM submissions")).scalar_one()
    finally:
        engine.dispose()


def _wait_until(condition, *, process: subprocess.Popen, what: str) -> None:
    pause = threading.Event()
    for _ in range(6_000):  # a bound, not a timing: a minute of 10 ms looks
        if condition():
            return
        assert process.poll() is None, f"the server stopped before {what}"
        pause.wait(0.01)
    raise AssertionError(f"never saw {what}")


def test_a_kill_during_an_upload_leaves_nothing_after_the_next_start(
    database_url, tmp_path, caplog
):
    upgrade_schema(database_url, write=lambda _: None)
    upload_dir = tmp_path / "uploads"
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "UPLOAD_DIR": str(upload_dir),
        "MAX_UPLOAD_MB": "2",
        "WORKER_CONCURRENCY": "0",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "OPENAI_API_KEY": "sk-never-used",
    }
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [GRADING_APP, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:

        def up() -> bool:
            try:
                return httpx.get(f"{base}/health", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        _wait_until(up, process=server, what="the server answer")
        signed = {"Authorization": f"Bearer {admin_token(database_url)}"}
        batch = httpx.post(f"{base}/api/batches", json=BATCH, headers=signed, timeout=30).json()
        # Long texts (over a million characters: they wait on disk) and many of them, so
        # the kill lands while the server is still storing them.
        essay = ("An essay that goes on and on. " * 64_000).encode()
        # 15 x 1.9 MB: within the 16 x MAX_UPLOAD_MB a request may carry.
        files = [("files", (f"e{n}.txt", essay, "text/plain")) for n in range(15)]
        answered: list[httpx.Response] = []
        upload = threading.Thread(
            target=lambda: _ignore_errors(
                lambda: answered.append(
                    httpx.post(
                        f"{base}/api/batches/{batch['id']}/jobs",
                        files=files,
                        headers=signed,
                        timeout=60,
                    )
                )
            ),
            daemon=True,
        )
        upload.start()
        stored = lambda: [p for p in upload_dir.glob("*.txt")]  # noqa: E731
        _wait_until(
            lambda: len(stored()) >= 2 or bool(answered), process=server, what="files stored"
        )
        assert not answered, answered[0].text  # the upload must still be in progress
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=60)
        upload.join(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=60)

    left_by_the_crash = sorted(p.name for p in upload_dir.iterdir())
    assert len(stored()) >= 2 and _submissions(database_url) == 0
    assert left_by_the_crash

    caplog.set_level(logging.INFO, logger="grading_app.jobs.orphans")
    settings = Settings(database_url=database_url, upload_dir=upload_dir)
    application = create_app(settings)
    with TestClient(application, base_url="http://localhost") as client:
        assert client.get("/health").status_code == 200
        # Just written: another process's upload, for all the start-up sweep can tell.
        assert sorted(p.name for p in upload_dir.iterdir()) == left_by_the_crash
        removed = application.state.orphan_sweep.after_grace()  # its timer, 5 min on
    assert removed == len(left_by_the_crash)
    assert list(upload_dir.iterdir()) == []
    assert f"removed {removed} stored file(s)" in caplog.text


def _ignore_errors(call) -> None:
    with contextlib.suppress(httpx.HTTPError):  # the server was killed under it
        call()
