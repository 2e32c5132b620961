"""Stored files a crash left behind, removed when the server starts.

Uploads are stored before the transaction that records them (architecture: no
transaction is held across a file read), and removed again if that transaction fails.
A process killed in between leaves files no row names, and a `.part` of a file being
written. At start-up those are removed, with care for anything else that may share the
folder:

- only names the application generates (`<32 hex>.<type>`, `.upload-*.part`), directly
  in UPLOAD_DIR;
- only files last written well before this process started, so an upload another
  process (a second server, `grading-app grade`) has stored but not yet recorded stays;
- a stored file is removed only if no submission or marking scheme names it.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from grading_app.documents.storage import remove_stored_files
from grading_app.documents.validate import SUPPORTED_TYPES
from grading_app.jobs.submissions import unreferenced_files

log = logging.getLogger(__name__)

PROCESS_STARTED = time.time()
# An upload in flight in another process is recorded within a minute or two of storing
# its first file; files of a crash just before this start are removed at the next one.
IN_FLIGHT_GRACE_SECONDS = 300.0
_STORED = re.compile(r"[0-9a-f]{32}\.(?:" + "|".join(map(re.escape, SUPPORTED_TYPES)) + r")")
_PARTIAL = re.compile(r"\.upload-[^/]*\.part")


def remove_orphan_uploads(
    engine: Engine, upload_dir: Path, *, written_before: float | None = None
) -> int:
    """Remove what a crash left in `upload_dir`; returns how many files were removed.
    Never fails the start-up: a folder or database it cannot read is logged and left."""
    cutoff = (written_before or PROCESS_STARTED) - IN_FLIGHT_GRACE_SECONDS
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
