"""Stored uploads: write a validated upload to disk under a generated name; copy and
remove stored files."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from grading_app.documents.validate import SUPPORTED_TYPES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredFile:
    path: Path
    filename: str
    size_bytes: int
    sha256: str


def store_upload(data: bytes, *, upload_dir: Path, file_type: str) -> StoredFile:
    """Store ``data`` as ``<uuid4>.<file_type>`` in ``upload_dir``, atomically.

    The user's filename is never used on disk: it may hold path separators, reserved
    names or characters the filesystem refuses. ``file_type`` must come from
    ``validate_upload``/``extract_text``, so the extension matches the content.
    """
    if file_type not in SUPPORTED_TYPES:
        raise ValueError(f"file_type must be one of {SUPPORTED_TYPES}, not {file_type!r}")
    upload_dir.mkdir(parents=True, exist_ok=True)
    filename = f"{uuid.uuid4().hex}.{file_type}"
    final_path = upload_dir / filename
    # The temporary file sits in the same directory so os.replace is a rename on one
    # filesystem, which POSIX makes atomic: readers see no file or the whole file.
    fd, temp_name = tempfile.mkstemp(dir=upload_dir, prefix=".upload-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, final_path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    _fsync_directory(upload_dir)
    return StoredFile(
        path=final_path,
        filename=filename,
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )


def spool_text(text: str, *, upload_dir: Path) -> Path:
    """`text` in a temporary `.part` file of the upload folder (removed once its row is
    written, or by the start-up sweep after a crash: jobs/orphans.py)."""
    upload_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=upload_dir, prefix=".upload-", suffix=".text.part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry is flushed (fsync(2)); Windows
    # cannot open a directory, and there the rename is as durable as it gets.
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def stored_name(name: str | None) -> str | None:
    """A file name a row holds, if it names a file directly in the upload folder: rows
    of earlier releases may hold anything, and nothing outside the folder is touched."""
    if not name or name in (".", "..") or "\x00" in name:
        return None
    if PurePosixPath(name).name != name or PureWindowsPath(name).name != name:
        return None
    return name


def remove_stored_files(names: Iterable[str], *, upload_dir: Path) -> int:
    """Remove stored files no row refers to any more; returns how many were removed.
    One that cannot be removed is logged and left: the rows are gone already."""
    removed = 0
    for name in dict.fromkeys(names):
        safe = stored_name(name)
        if safe is None:
            continue
        try:
            (upload_dir / safe).unlink()
            removed += 1
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("could not remove stored file %s: %s", safe, exc.strerror or exc)
    return removed


def copy_stored_file(name: str | None, *, upload_dir: Path) -> str | None:
    """A copy of a stored file under a new generated name, so that removing either
    leaves the other: a hard link where the filesystem has them, else a copy. None if
    the file is not there (the row keeps its extracted text)."""
    safe = stored_name(name)
    if safe is None:
        return None
    source = upload_dir / safe
    copy = upload_dir / f"{uuid.uuid4().hex}{PurePosixPath(safe).suffix}"
    try:
        os.link(source, copy)
        # Written now, as far as the start-up sweep of unrecorded files is concerned
        # (jobs/orphans.py): a link keeps its source's time, and the copy's row is not
        # committed yet.
        os.utime(copy)
    except FileNotFoundError:
        return None
    except OSError:  # no hard links here (another device, FAT, some network shares)
        try:
            shutil.copyfile(source, copy)
        except FileNotFoundError:
            copy.unlink(missing_ok=True)
            return None
        except BaseException:
            copy.unlink(missing_ok=True)  # no half-written copy left behind
            raise
    return copy.name
