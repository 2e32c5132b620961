"""Stored files a crash left behind, removed when the server starts.

Uploads are stored before the transaction that records them (architecture: no
transaction is held across a file read), and removed again if that transaction fails.
A process killed in between leaves files no row names, and a `.part` of a file being
written. At start-up those are removed, with care for anything else that may share the
folder:

- only names the application generates (`<32 hex>.<type>`, `.upload-*.part`), directly
  in UPLOAD_DIR;
- only files last written before this server started, and not while another process
  (a second server, `grading-app grade`) may still be about to record them: at start,
  files written IN_FLIGHT_GRACE_SECONDS before it; that long after the start, all
  files written before it (what a crash just before this start left);
- a stored file is removed only if no submission or marking scheme names it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from grading_app.documents.storage import remove_stored_files
from grading_app.documents.validate import SUPPORTED_TYPES
from grading_app.jobs.submissions import unreferenced_files

log = logging.getLogger(__name__)

# An upload in flight in another process is recorded within a minute or two of storing
# its first file.
IN_FLIGHT_GRACE_SECONDS = 300.0
_STORED = re.compile(r"[0-9a-f]{32}\.(?:" + "|".join(map(re.escape, SUPPORTED_TYPES)) + r")")
_PARTIAL = re.compile(r"\.upload-[^/]*\.part")


class OrphanSweep:
    """The two sweeps of one server: `at_start`, and `after_grace` on a timer."""

    def __init__(self, engine: Engine, upload_dir: Path) -> None:
        self.engine = engine
        self.upload_dir = upload_dir
        self.started = time.time()
        self._timer: threading.Timer | None = None

    def at_start(self) -> int:
        return remove_orphan_uploads(
            self.engine, self.upload_dir, written_before=self.started - IN_FLIGHT_GRACE_SECONDS
        )

    def after_grace(self) -> int:
        return remove_orphan_uploads(self.engine, self.upload_dir, written_before=self.started)

    def start(self) -> None:
        """The start-up sweep now, the second one later in a thread of its own."""
        self.at_start()
        self._timer = threading.Timer(IN_FLIGHT_GRACE_SECONDS, self.after_grace)
        self._timer.daemon = True
        self._timer.start()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def remove_orphan_uploads(engine: Engine, upload_dir: Path, *, written_before: float) -> int:
    """Remove what a crash left in `upload_dir` last written before `written_before`;
    returns how many files were removed. Never fails: a folder or database it cannot
    read is logged and left."""
    cutoff = written_before
    try:
        partial, stored = _old_generated_files(upload_dir, cutoff)
    except OSError as exc:
        log.warning("could not look for orphan uploads in %s: %s", upload_dir, exc)
        return 0
    for path in partial:
        path.unlink(missing_ok=True)
    try:
        with Session(engine) as session:
            orphans = unreferenced_files(session, stored)
    except SQLAlchemyError as exc:
        log.warning(
            "orphan uploads not checked: the database cannot be read (%s)", type(exc).__name__
        )
        orphans = []
    removed = len(partial) + remove_stored_files(orphans, upload_dir=upload_dir)
    if removed:
        log.info(
            "removed %d stored file(s) a crash left in %s (%d partial, %d not recorded)",
            removed,
            upload_dir,
            len(partial),
            removed - len(partial),
        )
    return removed


def _old_generated_files(upload_dir: Path, cutoff: float) -> tuple[list[Path], list[str]]:
    partial: list[Path] = []
    stored: list[str] = []
    if not upload_dir.is_dir():
        return partial, stored
    for entry in upload_dir.iterdir():
        name = entry.name
        is_partial = _PARTIAL.fullmatch(name) is not None
        if not is_partial and _STORED.fullmatch(name) is None:
            continue
        try:
            if not entry.is_file() or entry.stat().st_mtime >= cutoff:
                continue
        except OSError:
            continue
        if is_partial:
            partial.append(entry)
        else:
            stored.append(name)
    return partial, stored
