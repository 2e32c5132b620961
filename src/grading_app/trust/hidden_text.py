"""The hidden-instruction scan: text in a document aimed at the grading model rather
than at the teacher who reads it.

``scan_document`` looks at the extracted text (what the model is sent) for
instructions, fake conversation turns and invisible characters, and at the file itself
for text a reader does not see: Word runs formatted hidden, white or tiny; PDF text
drawn invisibly, in white, tiny or off the page; comments, document properties,
headers and footers Word does not show, picture descriptions. ``strip_hidden`` removes
what was found from the text, for the batch setting that grades the rest.

The finding kinds are listed in ``findings.KINDS``; the phrases in ``patterns.PATTERNS``.
A scan never raises: a file it cannot read yields the findings of its text alone.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable
from pathlib import Path

from grading_app.trust.characters import remove_invisible
from grading_app.trust.docx_scan import scan_docx
from grading_app.trust.findings import HIDDEN_TEXT, KINDS, Finding
from grading_app.trust.pdf_scan import scan_pdf
from grading_app.trust.text_scan import findings_in_text

__all__ = ["KINDS", "Finding", "scan_document", "strip_hidden"]

logger = logging.getLogger(__name__)


def scan_document(path: Path, file_type: str, text: str) -> list[Finding]:
    """Findings for one document, in the order of the text (those outside it last).

    ``file_type`` is "docx", "pdf" or "txt" (anything else: the text alone); ``text``
    is what ``documents.extract`` made of the file."""
    file_findings: list[Finding] = []
    location_of: Callable[[int], str] = _everywhere("body")
    try:
        if file_type == "docx":
            scan = scan_docx(path, text)
            file_findings = scan.findings
            location_of = _by_region(scan.regions)
        elif file_type == "pdf":
            file_findings = scan_pdf(path, text)
            location_of = _by_page(text)
    except Exception:  # a damaged or odd file: its text is still scanned below
        logger.info("hidden-text scan could not read %s as %s", path, file_type, exc_info=True)
    try:
        openings = {f.start for f in file_findings if f.kind == HIDDEN_TEXT and f.start is not None}
        text_findings = findings_in_text(text, location_of, openings)
    except Exception:
        logger.warning("hidden-text scan failed on the text of %s", path, exc_info=True)
        text_findings = []
    findings = _unique(file_findings + text_findings)
    return sorted(findings, key=lambda f: (f.start is None, f.start or 0, f.end or 0))


def strip_hidden(text: str, findings: list[Finding]) -> str:
    """``text`` without the spans of ``findings`` (hidden text, instructions and fake
    turns: all aimed at the model, not the reader) and without invisible characters.
    Findings with no offsets (metadata, comments) have nothing in the text to remove."""
    spans = sorted(
        (finding.start, finding.end)
        for finding in findings
        if finding.start is not None and finding.end is not None and finding.end > finding.start
    )
    pieces: list[str] = []
    cursor = 0
    for start, end in spans:
        if end <= cursor:
            continue
        pieces.append(text[cursor : max(cursor, start)])
        cursor = max(cursor, end)
    pieces.append(text[cursor:])
    return remove_invisible("".join(pieces))


def _everywhere(location: str) -> Callable[[int], str]:
    return lambda _offset: location


def _by_region(regions: list[tuple[int, int, str]]) -> Callable[[int], str]:
    """A docx offset's part: a header, footer or note paragraph it lies in, else body."""

    def location_of(offset: int) -> str:
        for start, end, location in regions:
            if start <= offset < end:
                return location
        return "body"

    return location_of


def _by_page(text: str) -> Callable[[int], str]:
    """A PDF offset's page, from the form feeds that separate pages."""
    breaks = [index for index, char in enumerate(text) if char == "\f"]
    return lambda offset: f"pdf page {bisect.bisect_right(breaks, offset) + 1}"


def _unique(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, str, str, int | None]] = set()
    out = []
    for finding in findings:
        key = (finding.kind, finding.location, finding.excerpt, finding.start)
        if key not in seen:
            seen.add(key)
            out.append(finding)
    return out
