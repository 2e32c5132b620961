"""Write a validated upload to disk under a generated name."""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from grading_app.documents.validate import SUPPORTED_TYPES


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
