"""Documents in, submissions out: the one path from a file to a stored, readable document.

Both `grading-app grade` and the HTTP API come through here. Each file is read once,
bounded by MAX_UPLOAD_MB; those bytes are validated, their text extracted, and the very
same bytes stored under a generated name. All of that happens before any database
transaction opens (DESIGN "One unit of work"); the rows are then inserted in one short
transaction (`create_job_from_uploads`, `add_uploads_to_job`, or the CLI's own).

A file that cannot be used becomes a failed submission carrying the reason; the others go
on. A .zip of documents is opened in place (never extracted to disk) and each document in
it is treated as an upload of its own.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import IO, Any

from sqlalchemy.orm import Session, sessionmaker

from grading_app.db import unit_of_work
from grading_app.documents.archives import ArchiveLimits, check_zip_directory
from grading_app.documents.errors import clean_filename
from grading_app.documents.extract import extract_text
from grading_app.documents.storage import spool_text, store_upload
from grading_app.documents.validate import (
    DocumentError,
    display_name,
    format_size,
    request_limit_bytes,
    too_large_error,
)
from grading_app.errors import BadRequest
from grading_app.grading.rubric import Rubric
from grading_app.jobs import service
from grading_app.jobs.schemas import FileOutcome, JobCreate, JobOut, UploadOut
from grading_app.library.scheme_files import scheme_rubric
from grading_app.lifecycle import service as lifecycle
from grading_app.models import JobBatch
from grading_app.trust.hidden_text import scan_document

# One request carries at most this many documents (a zip's documents count one by one),
# and at most deps.REQUEST_SIZE_FACTOR x MAX_UPLOAD_MB in total; a bigger class set goes
# in several requests to POST /api/jobs/{id}/submissions.
MAX_FILES_PER_REQUEST = 200
# Never graded, never reported: what macOS and Windows add to archives and folders.
_ARCHIVE_JUNK = frozenset({"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini"})
_NAME_LENGTH = 255  # submissions.original_filename, marking_schemes.name
# Texts longer than this (a long essay is 100,000 characters) wait on disk, not in memory,
# between reading and recording.
SPOOL_TEXT_CHARS = 1_000_000


@dataclass(frozen=True)
class PreparedDocument:
    """One document after reading: stored with its text, or refused with the reason."""

    original_filename: str
    stored_filename: str = ""
    file_type: str | None = None
    size_bytes: int | None = None
    text: str | None = None
    warnings: tuple[str, ...] = ()
    error: str | None = None
    error_code: str | None = None
    # A marking scheme's rubric, read from its tables.
    rubric: Rubric | None = None
    # A long text waits on disk until its row is written (`text` is then None), so
    # memory holds one document's text at a time however many a request carries.
    text_path: Path | None = None
    # What the hidden-instruction scan found (trust.findings.Finding.to_dict()).
    findings: tuple[dict[str, Any], ...] = ()

    @property
    def readable(self) -> bool:
        return self.error is None

    def full_text(self) -> str | None:
        if self.text_path is not None:
            with self.text_path.open(encoding="utf-8", newline="") as handle:
                return handle.read()
        return self.text


@dataclass(frozen=True)
class IncomingFile:
    """An uploaded file: its name as the client sent it and a seekable binary stream
    (FastAPI's UploadFile.file, a temporary file spooled to disk past 1 MB)."""

    filename: str
    stream: IO[bytes]


def _name(filename: str) -> str:
    """The name a submission keeps (documents.errors.clean_filename)."""
    return clean_filename(filename, default="unnamed", max_length=_NAME_LENGTH)


def _guessed_type(filename: str) -> str | None:
    return PurePosixPath(filename).suffix.lstrip(".").lower()[:10] or None


def _refused(filename: str, error: DocumentError, *, size: int | None) -> PreparedDocument:
    return PreparedDocument(
        original_filename=_name(filename),
        file_type=_guessed_type(filename),
        size_bytes=size,
        error=error.message,
        error_code=error.code,
    )


def prepare_document(
    data: bytes, *, filename: str, upload_dir: Path, max_bytes: int, spool: bool = False
) -> PreparedDocument:
    """Validate and extract `data`, then store exactly those bytes under a generated name.
    `spool`: a text longer than SPOOL_TEXT_CHARS waits on disk (`release_spooled`).

    The single gate every document passes, from the CLI or over HTTP."""
    try:
        document = extract_text(data, filename=filename, max_bytes=max_bytes)
    except DocumentError as exc:
        return _refused(filename, exc, size=len(data))
    stored = store_upload(data, upload_dir=upload_dir, file_type=document.file_type)
    findings = scan_document(upload_dir / stored.filename, document.file_type, document.text)
    text: str | None = document.text
    text_path = None
    if spool and len(document.text) > SPOOL_TEXT_CHARS:
        text, text_path = None, spool_text(document.text, upload_dir=upload_dir)
    return PreparedDocument(
        original_filename=_name(filename),
        stored_filename=stored.filename,
        file_type=document.file_type,
        size_bytes=stored.size_bytes,
        text=text,
        warnings=document.warnings,
        text_path=text_path,
        findings=tuple(finding.to_dict() for finding in findings),
    )


def _read_bounded(stream: IO[bytes], *, filename: str, size: int, max_bytes: int) -> bytes:
    if size > max_bytes:
        raise too_large_error(filename, size=size, max_bytes=max_bytes)
    # One byte past the limit, so a stream longer than it said is still refused.
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise too_large_error(filename, size=len(data), max_bytes=max_bytes)
    return data


def prepare_path(path: Path, *, upload_dir: Path, max_bytes: int) -> PreparedDocument:
    """A document on disk (the CLI); its size is checked before a byte is read."""
    size: int | None = None
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            data = _read_bounded(handle, filename=path.name, size=size, max_bytes=max_bytes)
    except DocumentError as exc:
        return _refused(path.name, exc, size=size)
    except OSError as exc:
        return PreparedDocument(
            original_filename=_name(path.name),
            file_type=_guessed_type(path.name),
            size_bytes=size,
            error=f"{display_name(path.name)} cannot be read: {exc.strerror or exc}",
            error_code="unreadable",
        )
    return prepare_document(
        data, filename=path.name, upload_dir=upload_dir, max_bytes=max_bytes, spool=True
    )


def prepare_upload(
    upload: IncomingFile, *, upload_dir: Path, max_bytes: int
) -> Iterator[PreparedDocument]:
    """One uploaded file: a document, or (named .zip) an archive of documents, one at a
    time (a generator, so a caller can remove what was stored if a later one fails)."""
    stream, filename = upload.stream, upload.filename or "unnamed"
    size = stream.seek(0, os.SEEK_END)
    stream.seek(0)
    is_zip = PurePosixPath(filename.replace("\\", "/")).suffix.lower() == ".zip"
    if is_zip and (archive := _document_archive(stream)) is not None:
        with archive:
            yield from _prepare_archive(
                archive, filename=filename, size=size, upload_dir=upload_dir, max_bytes=max_bytes
            )
        return
    try:
        data = _read_bounded(stream, filename=filename, size=size, max_bytes=max_bytes)
    except DocumentError as exc:
        yield _refused(filename, exc, size=size)
        return
    yield prepare_document(
        data, filename=filename, upload_dir=upload_dir, max_bytes=max_bytes, spool=True
    )


def _document_archive(stream: IO[bytes]) -> zipfile.ZipFile | None:
    """The upload as a zip of documents; None if it is not a zip, or is a Word document
    (a .docx is a zip too: then the documents code judges it, misnamed)."""
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError):
        stream.seek(0)
        return None
    if "word/document.xml" in archive.namelist():
        archive.close()
        stream.seek(0)
        return None
    return archive


def _prepare_archive(
    archive: zipfile.ZipFile, *, filename: str, size: int, upload_dir: Path, max_bytes: int
) -> Iterator[PreparedDocument]:
    name = display_name(filename)
    entries = [info for info in archive.infolist() if not _skipped(info)]
    if len(entries) > MAX_FILES_PER_REQUEST:
        too_many = DocumentError(
            "unsafe_archive",
            f"{name} holds {len(entries)} files; one request takes at most "
            f"{MAX_FILES_PER_REQUEST}. Split it into smaller zips.",
            filename=filename,
        )
        yield _refused(filename, too_many, size=size)
        return
    # The directory is checked before anything is inflated: no traversal or duplicate
    # names, no encrypted entries, no declared total or ratio of a zip bomb.
    limits = ArchiveLimits(
        max_entries=len(archive.infolist()), max_total_bytes=request_limit_bytes(max_bytes)
    )
    try:
        check_zip_directory(archive.infolist(), archive_size=size, filename=filename, limits=limits)
    except DocumentError as exc:
        yield _refused(filename, _archive_error(exc, name, filename), size=size)
        return
    unpacked = 0
    for info in entries:
        entry_name = info.filename
        if unpacked > limits.max_total_bytes:
            # The directory understated the sizes: stop at what a request may carry.
            bomb = DocumentError(
                "zip_bomb",
                f"{display_name(entry_name)} was not unpacked: {name} unpacks to more than "
                f"{format_size(limits.max_total_bytes)}.",
                filename=entry_name,
            )
            yield _refused(entry_name, bomb, size=info.file_size)
            continue
        try:
            with archive.open(info) as entry:
                data = _read_bounded(
                    entry, filename=entry_name, size=info.file_size, max_bytes=max_bytes
                )
        except DocumentError as exc:
            yield _refused(entry_name, exc, size=info.file_size)
            continue
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError):
            # A CRC mismatch lands here too: the entry is not what the directory says.
            damaged = DocumentError(
                "corrupt",
                f"{display_name(entry_name)} in {name} is damaged and cannot be unpacked. "
                "Zip the documents again, or upload them one by one.",
                filename=entry_name,
            )
            yield _refused(entry_name, damaged, size=info.file_size)
            continue
        unpacked += len(data)
        yield prepare_document(
            data, filename=entry_name, upload_dir=upload_dir, max_bytes=max_bytes, spool=True
        )
    if not entries:
        empty = DocumentError("empty", f"{name} holds no documents.", filename=filename)
        yield _refused(filename, empty, size=size)


def _skipped(info: zipfile.ZipInfo) -> bool:
    parts = PurePosixPath(info.filename).parts
    return info.is_dir() or any(p in _ARCHIVE_JUNK or p.startswith(".") for p in parts)


def _archive_error(exc: DocumentError, name: str, filename: str) -> DocumentError:
    """The documents code words its zip findings for a .docx; say them for a zip."""
    reasons = {
        "zip_bomb": "unpacks to more than is safe to open",
        "unsafe_archive": "contains unsafe or duplicated paths",
        "encrypted_docx": "is password-protected",
    }
    reason = reasons.get(exc.code, "cannot be opened")
    return DocumentError(
        exc.code,
        f"{name} {reason}, so it was not opened. Zip the documents again (no password, "
        "nothing but the documents), or upload them one by one.",
        filename=filename,
    )


def prepare_uploads(
    uploads: Sequence[IncomingFile], *, upload_dir: Path, max_bytes: int
) -> list[PreparedDocument]:
    """Every upload, in order; if one fails unexpectedly the stored ones are removed."""
    if len(uploads) > MAX_FILES_PER_REQUEST:
        raise BadRequest(
            f"This request holds {len(uploads)} files; one request takes at most "
            f"{MAX_FILES_PER_REQUEST}. Send them in several requests."
        )
    documents: list[PreparedDocument] = []
    try:
        for upload in uploads:
            for document in prepare_upload(upload, upload_dir=upload_dir, max_bytes=max_bytes):
                documents.append(document)
    except BaseException:
        discard(documents, upload_dir=upload_dir)
        raise
    if len(documents) > MAX_FILES_PER_REQUEST:
        discard(documents, upload_dir=upload_dir)
        raise BadRequest(
            f"This upload holds {len(documents)} documents; one request takes at most "
            f"{MAX_FILES_PER_REQUEST}. Send them in several requests."
        )
    return documents


def discard(documents: Sequence[PreparedDocument], *, upload_dir: Path) -> None:
    """Remove stored copies whose rows were never committed."""
    release_spooled(documents)
    for document in documents:
        if document.stored_filename:
            (upload_dir / document.stored_filename).unlink(missing_ok=True)


def release_spooled(documents: Sequence[PreparedDocument]) -> None:
    """Remove the texts that waited on disk, once their rows are written (or not)."""
    for document in documents:
        if document.text_path is not None:
            document.text_path.unlink(missing_ok=True)


def prepare_marking_scheme(
    upload: IncomingFile, *, upload_dir: Path, max_bytes: int
) -> PreparedDocument:
    """The marking scheme file: read like a document; one that cannot be read is a 400."""
    stream = upload.stream
    size = stream.seek(0, os.SEEK_END)
    stream.seek(0)
    filename = upload.filename or "marking scheme"
    try:
        data = _read_bounded(stream, filename=filename, size=size, max_bytes=max_bytes)
    except DocumentError as exc:
        raise BadRequest(f"The marking scheme cannot be used: {exc.message}") from exc
    scheme = prepare_document(data, filename=filename, upload_dir=upload_dir, max_bytes=max_bytes)
    if scheme.error:
        raise BadRequest(f"The marking scheme cannot be used: {scheme.error}")
    reading = scheme_rubric(data, file_type=scheme.file_type or "", text=scheme.text or "")
    return replace(scheme, rubric=reading.rubric, warnings=scheme.warnings + reading.warnings)


# --- over HTTP: read, prepare, then one short transaction --------------------------------


@dataclass(frozen=True)
class UploadOutcome:
    job_id: str
    documents: list[PreparedDocument]
    submission_ids: list[str]
    queued_items: int


def create_job_from_uploads(
    sessions: sessionmaker[Session],
    *,
    batch_id: str,
    request: JobCreate,
    scheme_file: IncomingFile | None,
    files: Sequence[IncomingFile],
    upload_dir: Path,
    max_bytes: int,
    start: bool = False,
) -> UploadOutcome:
    """A new job in a batch with its documents: the batch's defaults and the providers are
    checked first (a read), then the files are read and stored, then one write."""
    if not files:
        raise BadRequest("Upload at least one document in `files`")
    if scheme_file is not None and request.saved_marking_scheme_id is not None:
        raise BadRequest("Give a `marking_scheme` file or `saved_marking_scheme_id`, not both")
    with unit_of_work(sessions, read_only=True) as session:
        plan = service.plan_job(session, batch_id=batch_id, request=request)
    scheme = None
    if scheme_file is not None:
        scheme = prepare_marking_scheme(scheme_file, upload_dir=upload_dir, max_bytes=max_bytes)
    try:
        documents = prepare_uploads(files, upload_dir=upload_dir, max_bytes=max_bytes)
    except BaseException:
        discard([scheme] if scheme else [], upload_dir=upload_dir)
        raise
    stored = [*documents, *([scheme] if scheme else [])]
    try:
        with unit_of_work(sessions) as session:
            job, submissions, queued = service.create_job_with_documents(
                session, plan=plan, scheme=scheme, documents=documents, start=start
            )
            job_id = job.id
    except BaseException:
        discard(stored, upload_dir=upload_dir)
        raise
    finally:
        release_spooled(documents)
    return UploadOutcome(job_id, documents, [s.id for s in submissions], queued)


def add_uploads_to_job(
    sessions: sessionmaker[Session],
    *,
    job_id: str,
    files: Sequence[IncomingFile],
    upload_dir: Path,
    max_bytes: int,
) -> UploadOutcome:
    """More documents for a job that has not finished; their items are queued at once."""
    if not files:
        raise BadRequest("Upload at least one document in `files`")
    with unit_of_work(sessions, read_only=True) as session:
        service.job_accepting_documents(session, job_id=job_id)
    documents = prepare_uploads(files, upload_dir=upload_dir, max_bytes=max_bytes)
    try:
        with unit_of_work(sessions) as session:
            submissions, queued = service.add_documents_to_job(
                session, job_id=job_id, documents=documents
            )
    except BaseException:
        discard(documents, upload_dir=upload_dir)
        raise
    finally:
        release_spooled(documents)
    return UploadOutcome(job_id, documents, [s.id for s in submissions], queued)


def describe(session: Session, outcome: UploadOutcome) -> UploadOut:
    """The job as it now stands and what became of each file."""
    job = lifecycle.get_job(session, job_id=outcome.job_id)
    batch = session.get(JobBatch, job.batch_id) if job.batch_id else None
    files = [
        FileOutcome(
            filename=document.original_filename,
            status="queued" if document.readable else "failed",
            submission_id=submission_id,
            file_type=document.file_type,
            size_bytes=document.size_bytes,
            warnings=list(document.warnings),
            error=document.error,
            error_code=document.error_code,
        )
        for document, submission_id in zip(outcome.documents, outcome.submission_ids, strict=True)
    ]
    return UploadOut(
        job=JobOut.of(job),
        batch_status=batch.status if batch else None,
        queued_items=outcome.queued_items,
        files=files,
    )
