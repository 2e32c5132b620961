"""Storing uploads under generated names, atomically."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest

from grading_app.documents import storage
from grading_app.documents.storage import store_upload


def test_store_upload_writes_under_a_generated_name(tmp_path: Path) -> None:
    upload_dir = tmp_path / "uploads" / "batch-1"
    data = b"%PDF-1.7 pretend content"
    stored = store_upload(data, upload_dir=upload_dir, file_type="pdf")
    assert re.fullmatch(r"[0-9a-f]{32}\.pdf", stored.filename)
    assert stored.path == upload_dir / stored.filename
    assert stored.path.read_bytes() == data
    assert stored.size_bytes == len(data)
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert sorted(os.listdir(upload_dir)) == [stored.filename]  # no temp file left


def test_each_upload_gets_its_own_name(tmp_path: Path) -> None:
    first = store_upload(b"same", upload_dir=tmp_path, file_type="txt")
    second = store_upload(b"same", upload_dir=tmp_path, file_type="txt")
    assert first.filename != second.filename
    assert first.sha256 == second.sha256
    assert {first.path.read_bytes(), second.path.read_bytes()} == {b"same"}


def test_markdown_keeps_its_extension(tmp_path: Path) -> None:
    assert store_upload(b"# x", upload_dir=tmp_path, file_type="md").filename.endswith(".md")


def test_unknown_file_type_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="file_type must be one of"):
        store_upload(b"x", upload_dir=tmp_path, file_type="../../evil")
    assert not any(tmp_path.iterdir())


def test_failed_write_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_replace(source: str, target: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(storage.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        store_upload(b"data", upload_dir=tmp_path, file_type="docx")
    assert list(tmp_path.iterdir()) == []


def test_a_copy_outlives_its_original(tmp_path: Path) -> None:
    original = store_upload(b"an essay", upload_dir=tmp_path, file_type="txt")
    copy = storage.copy_stored_file(original.filename, upload_dir=tmp_path)
    assert copy is not None and copy != original.filename and copy.endswith(".txt")
    assert storage.remove_stored_files([original.filename], upload_dir=tmp_path) == 1
    assert (tmp_path / copy).read_bytes() == b"an essay"


def test_a_copy_is_written_where_hard_links_fail(tmp_path: Path, monkeypatch) -> None:
    original = store_upload(b"an essay", upload_dir=tmp_path, file_type="txt")

    def no_links(source, target):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    copy = storage.copy_stored_file(original.filename, upload_dir=tmp_path)
    assert copy is not None and (tmp_path / copy).read_bytes() == b"an essay"
    assert storage.copy_stored_file("gone.txt", upload_dir=tmp_path) is None
    assert sorted(os.listdir(tmp_path)) == sorted([original.filename, copy])


@pytest.mark.parametrize("name", ["", ".", "..", "../outside.txt", "a/b.txt", "a\\b.txt", "x\x00"])
def test_nothing_outside_the_upload_folder_is_touched(tmp_path: Path, name: str) -> None:
    upload_dir = tmp_path / "uploads"
    upload_dir.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"not ours")
    assert storage.stored_name(name) is None
    assert storage.copy_stored_file(name, upload_dir=upload_dir) is None
    assert storage.remove_stored_files([name], upload_dir=upload_dir) == 0
    assert outside.read_bytes() == b"not ours" and not any(upload_dir.iterdir())
