"""The local worker's writer: writes that queue up share a transaction, one that fails
takes no other with it, and every caller gets its own result once it is committed."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from grading_app.db import unit_of_work
from grading_app.models import JobBatch
from grading_app.processing.writer import BatchingWriter
from tests.factories import make_batch


def _rename(batch_id: str, name: str):
    def write(session):
        session.execute(sa.update(JobBatch).where(JobBatch.id == batch_id).values(batch_name=name))
        return name

    return write


def _explode(session):
    session.execute(sa.text("UPDATE no_such_table SET x = 1"))


def test_writes_are_committed_and_one_failure_spares_the_others(sessions):
    with unit_of_work(sessions) as session:
        ids = [make_batch(session, name=f"batch {i}").id for i in range(20)]
    writer = BatchingWriter(sessions).start()
    busy, release = threading.Event(), threading.Event()

    def hold(session):
        busy.set()
        release.wait(10)
        return "held"

    first = threading.Thread(target=writer, args=(hold,))
    first.start()
    busy.wait(10)  # the writer is busy: what comes now queues up for one transaction
    results: dict[int, object] = {}

    def hand_over(index: int) -> None:
        try:
            results[index] = writer(_rename(ids[index], f"renamed {index}"))
        except Exception as exc:  # pragma: no cover - reported by the assert below
            results[index] = exc

    threads = [threading.Thread(target=hand_over, args=(i,)) for i in range(20)]
    failures: list[Exception] = []
    threads.append(threading.Thread(target=lambda: _catch(writer, failures)))
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    release.set()
    for thread in [first, *threads]:
        thread.join(10)
    writer.stop()

    assert results == {i: f"renamed {i}" for i in range(20)}
    assert len(failures) == 1 and isinstance(failures[0], sa.exc.DatabaseError)
    with unit_of_work(sessions, read_only=True) as session:
        names = dict(session.execute(sa.select(JobBatch.id, JobBatch.batch_name)).all())
    assert [names[i] for i in ids] == [f"renamed {i}" for i in range(20)]


def _catch(writer, failures):
    try:
        writer(_explode)
    except Exception as exc:
        failures.append(exc)


def test_a_stopped_writer_refuses_new_writes(sessions):
    writer = BatchingWriter(sessions).start()
    writer.stop()
    with pytest.raises(RuntimeError, match="not running"):
        writer(_explode)
