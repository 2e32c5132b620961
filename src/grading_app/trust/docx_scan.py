"""Where a Word document keeps text from its reader: runs formatted hidden, white or
tiny; comments; headers and footers Word does not show; document properties; the
descriptions of pictures.

The paragraphs are walked the way ``documents.extract`` walks them, so a hidden run's
place in the extracted text (what the model reads) can be found and reported.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docx
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.oxml.parser import parse_xml

from grading_app.documents import extract
from grading_app.trust.docx_look import (
    TINY_HALF_POINTS,
    Look,
    Styles,
    look_of,
    near_white,
    on_coloured_background,
)
from grading_app.trust.findings import HIDDEN_TEXT, Finding, excerpt_of, locate
from grading_app.trust.text_scan import findings_outside_text

logger = logging.getLogger(__name__)

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"
_WP = "{http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing}"
# The parts of a paragraph extraction skips and the containers it looks through: the
# scan walks the text exactly as extraction does, so its offsets land in the same text.
_SKIP = extract.SKIPPED_ELEMENTS
_BLOCK_WRAPPERS = extract.BLOCK_WRAPPERS
_PARTS = {
    RT.HEADER: "header",
    RT.FOOTER: "footer",
    RT.FOOTNOTES: "footnote",
    RT.ENDNOTES: "endnote",
    RT.COMMENTS: "comment",
}
_CORE_PROPERTIES = (
    "title",
    "subject",
    "keywords",
    "comments",
    "category",
    "author",
    "last_modified_by",
    "content_status",
    "identifier",
    "version",
)
_MIN_WORD_CHARS = 3  # a hidden space or stray letter is formatting debris, not a message


@dataclass
class DocxScan:
    findings: list[Finding] = field(default_factory=list)
    # (start, end, location) of header, footer and note paragraphs in the extracted text.
    regions: list[tuple[int, int, str]] = field(default_factory=list)


def scan_docx(path: Path, text: str) -> DocxScan:
    """Findings in the Word file at ``path`` whose extracted text is ``text``. Each part
    is scanned on its own: one that cannot be read costs only its own findings."""
    document = docx.Document(str(path))
    scan = DocxScan()
    styles = Styles(document.styles.element)
    background = document.element.find(f"{_W}background")
    coloured_page = background is not None and not near_white(
        (background.get(f"{_W}color") or "FFFFFF").upper()
    )
    walker = _Walker(styles, text, scan, coloured_page)
    steps: list[Callable[[], None]] = [lambda: walker.part(document.element.body, "body")]
    for rel in document.part.rels.values():
        location = _PARTS.get(rel.reltype)
        if not rel.is_external and location is not None:
            steps.append(functools.partial(_scan_part, walker, rel.target_part, location))
    steps.append(lambda: _metadata(document, scan))
    steps.append(lambda: _picture_descriptions(document, scan))
    for step in steps:
        try:
            step()
        except Exception:  # a damaged part: the others are still scanned
            logger.info("a part of %s could not be scanned", path, exc_info=True)
    return scan


def _scan_part(walker: _Walker, part: Any, location: str) -> None:
    root = parse_xml(part.blob)
    if location == "comment":
        for comment in root.iter(f"{_W}comment"):
            piece = "\n".join(_plain_paragraphs(comment))
            walker.scan.findings.extend(findings_outside_text(piece, "comment"))
    elif location in ("footnote", "endnote"):
        for note in root:
            walker.part(note, location)
    else:
        walker.part(root, location)


def _picture_descriptions(document: Any, scan: DocxScan) -> None:
    for drawing in document.element.body.iter(f"{_WP}docPr"):
        for attribute in ("descr", "title"):
            value = drawing.get(attribute)
            if value:
                scan.findings.extend(findings_outside_text(value, "picture description"))


class _Walker:
    """Walks paragraphs as the extraction does, reporting hidden runs."""

    def __init__(self, styles: Styles, text: str, scan: DocxScan, coloured_page: bool) -> None:
        self.styles = styles
        self.text = text
        self.scan = scan
        self.coloured_page = coloured_page
        self.cursor = 0

    def part(self, root: Any, location: str) -> None:
        for paragraph in _paragraphs(root):
            self.paragraph(paragraph, location)

    def paragraph(self, paragraph: Any, location: str) -> None:
        segments: list[tuple[str, str | None]] = []
        self.inline(paragraph, self.paragraph_look(paragraph), None, segments)
        whole = "".join(piece for piece, _ in segments)
        if not whole.strip():
            return
        found = locate(self.text, whole, self.cursor)
        if found is not None and location == "body":
            self.cursor = found[1]
        elif found is not None:
            self.scan.regions.append((found[0], found[1], location))
        elif location in ("header", "footer"):
            # Not in the extracted text: a header or footer Word does not display.
            self.scan.findings.extend(findings_outside_text(whole, f"{location} (not shown)"))
        # Offsets in the paragraph count from its first character; locate() strips.
        leading = len(whole) - len(whole.lstrip())
        for piece, reason, start in _hidden_runs(segments):
            if sum(char.isalnum() for char in piece) >= _MIN_WORD_CHARS:
                self.report(piece, reason, location, found, start - leading)

    def report(
        self, piece: str, reason: str, location: str, found: tuple[int, int] | None, at: int
    ) -> None:
        span = None
        if found is not None:
            # The paragraph's place is known: the piece is at its offset in it, unless
            # extraction changed the paragraph (a table cell's spacing, say).
            lead = len(piece) - len(piece.lstrip())
            start = found[0] + at + lead
            stripped = piece.strip()
            if self.text[start : start + len(stripped)] == stripped:
                span = (start, start + len(stripped))
            else:
                span = locate(self.text, piece, found[0])
        seen = "the model reads it" if span else "it is not in the text sent to the model"
        self.scan.findings.append(
            Finding(
                kind=HIDDEN_TEXT,
                detail=f"Text {reason} in the {location}: a reader does not see it; {seen}.",
                excerpt=excerpt_of(piece.strip()),
                location=location,
                start=span[0] if span else None,
                end=span[1] if span else None,
            )
        )
        if span is None:
            self.scan.findings.extend(findings_outside_text(piece, f"{location} (hidden)"))

    def paragraph_look(self, paragraph: Any) -> Look:
        style = paragraph.find(f"{_W}pPr/{_W}pStyle")
        style_id = style.get(f"{_W}val") if style is not None else self.styles.default_paragraph
        return self.styles.look(style_id).over(self.styles.defaults)

    def inline(
        self,
        element: Any,
        paragraph_look: Look,
        reason: str | None,
        out: list[tuple[str, str | None]],
    ) -> None:
        for child in element:
            tag = child.tag
            if not isinstance(tag, str) or tag in _SKIP:
                continue
            if tag == f"{_W}r":
                self.inline(child, paragraph_look, self.run_reason(child, paragraph_look), out)
            elif tag == f"{_W}t":
                out.append((child.text or "", reason))
            elif tag in (f"{_W}tab", f"{_W}ptab"):
                out.append(("\t", reason))
            elif tag in (f"{_W}br", f"{_W}cr"):
                out.append(("\n", reason))
            elif tag == f"{_W}noBreakHyphen":
                out.append(("-", reason))
            elif tag == f"{_W}txbxContent":
                out.append(("\n", None))
                for number, paragraph in enumerate(_paragraphs(child)):
                    if number:
                        out.append(("\n", None))
                    self.inline(paragraph, self.paragraph_look(paragraph), None, out)
                out.append(("\n", None))
            else:
                self.inline(child, paragraph_look, reason, out)

    def run_reason(self, run: Any, paragraph_look: Look) -> str | None:
        """Why a reader does not see this run, or None."""
        properties = run.find(f"{_W}rPr")
        style = properties.find(f"{_W}rStyle") if properties is not None else None
        character = self.styles.look(style.get(f"{_W}val") if style is not None else None)
        look = look_of(properties).over(character).over(paragraph_look)
        if look.vanish:
            return "formatted as hidden"
        if look.half_points is not None and look.half_points <= TINY_HALF_POINTS:
            return f"in a {look.half_points / 2:g}-point font"
        if (
            look.color is not None
            and near_white(look.color)
            and not look.shaded
            and not self.coloured_page
            and not on_coloured_background(run)
        ):
            return "coloured white"
        return None


def _hidden_runs(segments: list[tuple[str, str | None]]) -> Iterator[tuple[str, str, int]]:
    """Consecutive hidden segments as (text, reason, offset in the paragraph)."""
    offset = 0
    current: list[str] = []
    reason: str | None = None
    start = 0
    for piece, why in segments:
        if why is not None and reason is None:
            current, reason, start = [piece], why, offset
        elif why is not None:
            current.append(piece)
        elif reason is not None:
            yield "".join(current), reason, start
            current, reason = [], None
        offset += len(piece)
    if reason is not None:
        yield "".join(current), reason, start


def _paragraphs(element: Any) -> Iterator[Any]:
    """Paragraphs of ``element`` in order, looking into tables and content controls."""
    for child in element:
        tag = child.tag
        if tag == f"{_W}p":
            yield child
        elif tag in (f"{_W}tbl", f"{_W}tr", f"{_W}tc") or tag in _BLOCK_WRAPPERS:
            yield from _paragraphs(child)


def _plain_paragraphs(element: Any) -> Iterator[str]:
    for paragraph in _paragraphs(element):
        yield "".join(node.text or "" for node in paragraph.iter(f"{_W}t"))


def _metadata(document: Any, scan: DocxScan) -> None:
    properties = document.core_properties
    for name in _CORE_PROPERTIES:
        value = getattr(properties, name, None)
        if isinstance(value, str) and value.strip():
            label = f"document properties ({name.replace('_', ' ')})"
            scan.findings.extend(findings_outside_text(value, label))
    for part in document.part.package.iter_parts():
        if str(part.partname) != "/docProps/custom.xml":
            continue
        for element in parse_xml(part.blob).iter():
            if isinstance(element.text, str) and element.text.strip():
                scan.findings.extend(
                    findings_outside_text(element.text, "document properties (custom)")
                )
