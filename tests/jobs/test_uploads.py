"""The one path from a file to a stored document: read once, validated, extracted, and
those same bytes stored; archives of documents opened safely; no transaction held while
any of it happens."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile

from grading_app.jobs import uploads
from grading_app.jobs.uploads import IncomingFile, prepare_path, prepare_upload
from tests.documents.factories import make_docx, make_pdf, write_zip_bomb
from tests.jobs.helpers import assert_no_transaction_open, stored_files

MB = 1024 * 1024


def _upload(name: str, data: bytes) -> IncomingFile:
    return IncomingFile(name, io.BytesIO(data))


def test_the_stored_bytes_are_the_validated_bytes(tmp_path, monkeypatch):
    source = tmp_path / "essay.docx"
    source.write_bytes(make_docx(paragraphs=["The original essay."]))
    opened: list[str] = []
    real_open = type(source).open

    def counting_open(self, mode="r", *args, **kwargs):
        if "r" in mode:
            opened.append(self.name)
        return real_open(self, mode, *args, **kwargs)

    real_store = uploads.store_upload

    def store_then_change_source(data, **kwargs):
        stored = real_store(data, **kwargs)
        # A file that changes on disk after it was read makes no difference.
        source.write_bytes(b"replaced after validation")
        return stored

    original = source.read_bytes()
    monkeypatch.setattr(type(source), "open", counting_open)
    monkeypatch.setattr(uploads, "store_upload", store_then_change_source)

    document = prepare_path(source, upload_dir=tmp_path / "uploads", max_bytes=MB)

    assert opened == ["essay.docx"]  # read once
    kept = (tmp_path / "uploads" / document.stored_filename).read_bytes()
    assert hashlib.sha256(kept).digest() == hashlib.sha256(original).digest()
    assert document.text and "The original essay." in document.text
    assert document.original_filename == "essay.docx" and document.file_type == "docx"


def test_an_oversized_or_missing_file_is_refused_without_reading_it(tmp_path):
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * (MB + 1))
    refused = prepare_path(big, upload_dir=tmp_path / "uploads", max_bytes=MB)
    assert refused.error_code == "too_large" and refused.size_bytes == MB + 1
    gone = prepare_path(tmp_path / "gone.txt", upload_dir=tmp_path / "uploads", max_bytes=MB)
    assert gone.error_code == "unreadable" and "cannot be read" in gone.error
    assert stored_files(tmp_path / "uploads") == []


def test_a_browser_path_keeps_only_the_file_name(tmp_path):
    (document,) = prepare_upload(
        _upload("C:\\Users\\ada\\Desktop\\essay.txt", b"An essay."),
        upload_dir=tmp_path,
        max_bytes=MB,
    )
    assert document.original_filename == "essay.txt" and document.readable
    long_name = "n" * 300 + ".txt"
    (document,) = prepare_upload(
        _upload(long_name, b"An essay."), upload_dir=tmp_path, max_bytes=MB
    )
    assert len(document.original_filename) == 255


def test_a_zip_of_documents_is_read_entry_by_entry(tmp_path):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("essays/", b"")
        archive.writestr("essays/a.docx", make_docx(paragraphs=["Essay A."]))
        archive.writestr("essays/b.pdf", make_pdf(pages=["Essay B."]))
        archive.writestr("essays/big.txt", os.urandom(MB + 10))  # incompressible
        archive.writestr("essays/.hidden.txt", b"never graded")
        archive.writestr("__MACOSX/essays/._a.docx", b"resource fork")
    documents = prepare_upload(
        _upload("class.zip", out.getvalue()), upload_dir=tmp_path, max_bytes=MB
    )
    outcome = {d.original_filename: (d.readable, d.error_code) for d in documents}
    assert outcome == {
        "a.docx": (True, None),
        "b.pdf": (True, None),
        "big.txt": (False, "too_large"),
    }
    assert len(stored_files(tmp_path)) == 2


def test_a_zip_bomb_or_a_crafted_zip_is_not_opened(tmp_path):
    bomb = tmp_path / "bomb.zip"
    with (
        zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("zeros.txt", "w", force_zip64=True) as entry,
    ):
        for _ in range(40):
            entry.write(bytes(MB))
    (refused,) = prepare_upload(
        _upload("bomb.zip", bomb.read_bytes()), upload_dir=tmp_path / "up", max_bytes=MB
    )
    assert refused.error_code == "zip_bomb" and "not opened" in refused.error

    docx_bomb = write_zip_bomb(tmp_path / "bomb.docx", megabytes=40)
    (refused,) = prepare_upload(
        _upload("essay.zip", docx_bomb), upload_dir=tmp_path / "up", max_bytes=MB
    )
    assert refused.error_code == "zip_bomb"  # a .docx inside: judged as a Word document

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("../../etc/essay.txt", b"escape")
    (refused,) = prepare_upload(
        _upload("crafted.zip", out.getvalue()), upload_dir=tmp_path / "up", max_bytes=MB
    )
    assert refused.error_code == "unsafe_archive"
    (damaged,) = prepare_upload(
        _upload("cut.zip", b"PK\x03\x04 cut off"), upload_dir=tmp_path / "up", max_bytes=MB
    )
    assert not damaged.readable and damaged.error_code in ("corrupt", "unsupported_type")
    assert stored_files(tmp_path / "up") == []


def test_no_transaction_is_open_while_uploaded_files_are_read(client, database_url, monkeypatch):
    reads: list[str] = []
    real_extract = uploads.extract_text

    def extract_checking_the_database(data, *, filename, max_bytes):
        assert_no_transaction_open(database_url)
        reads.append(filename)
        return real_extract(data, filename=filename, max_bytes=max_bytes)

    monkeypatch.setattr(uploads, "extract_text", extract_checking_the_database)
    batch = client.post(
        "/api/batches", json={"name": "Essays", "prompt": "Grade it.", "models": ["openai:m"]}
    ).json()
    files = [("files", (f"e{i}.txt", f"Essay {i}.".encode(), "text/plain")) for i in range(3)]
    files.append(("marking_scheme", ("rubric.txt", b"Argument: 10 marks", "text/plain")))
    created = client.post(f"/api/batches/{batch['id']}/jobs", files=files)
    assert created.status_code == 201, created.text
    added = client.post(
        f"/api/jobs/{created.json()['job']['id']}/submissions",
        files=[("files", ("e3.txt", b"Essay 3.", "text/plain"))],
    )
    assert added.status_code == 201, added.text
    assert sorted(reads) == ["e0.txt", "e1.txt", "e2.txt", "e3.txt", "rubric.txt"]
