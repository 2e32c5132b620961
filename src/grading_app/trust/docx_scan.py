"""Where a Word document keeps text from its reader: runs formatted hidden, white or
tiny; comments; headers and footers Word does not show; document properties; the
descriptions of pictures.

The paragraphs are walked the way ``documents.extract`` walks them, so a hidden run's
place in the extracted text (what the model reads) can be found and reported.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docx
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.oxml.parser import parse_xml

from grading_app.trust.findings import HIDDEN_TEXT, Finding, excerpt_of, locate
from grading_app.trust.text_scan import findings_outside_text

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"
_WP = "{http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing}"
_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_SKIP = frozenset(
    {
        f"{_W}pPr",
        f"{_W}rPr",
        f"{_W}del",
        f"{_W}moveFrom",
        f"{_W}instrText",
        f"{_W}delText",
        f"{_MC}Fallback",
    }
)
_BLOCK_WRAPPERS = frozenset({f"{_W}sdt", f"{_W}sdtContent", f"{_W}customXml"})
_OFF = ("0", "false", "off")
_TINY_HALF_POINTS = 4  # 2 pt and below: no one reads that
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


@dataclass(frozen=True)
class _Look:
    """The run properties that decide whether a reader sees a run; None: not said."""

    vanish: bool | None = None
    color: str | None = None  # six hex digits, or "AUTO"
    half_points: int | None = None
    shaded: bool | None = None  # highlighted or shaded: white text on it shows

    def over(self, base: _Look) -> _Look:
        return _Look(
            self.vanish if self.vanish is not None else base.vanish,
            self.color if self.color is not None else base.color,
            self.half_points if self.half_points is not None else base.half_points,
            self.shaded if self.shaded is not None else base.shaded,
        )


@dataclass
class DocxScan:
    findings: list[Finding] = field(default_factory=list)
    # (start, end, location) of header, footer and note paragraphs in the extracted text.
    regions: list[tuple[int, int, str]] = field(default_factory=list)


def scan_docx(path: Path, text: str) -> DocxScan:
    document = docx.Document(str(path))
    scan = DocxScan()
    styles = _Styles(document.styles.element)
    background = document.element.find(f"{_W}background")
    coloured_page = background is not None and not _near_white(
        (background.get(f"{_W}color") or "FFFFFF").upper()
    )
    walker = _Walker(styles, text, scan, coloured_page)
    walker.part(document.element.body, "body")
    for rel in document.part.rels.values():
        location = _PARTS.get(rel.reltype)
        if rel.is_external or location is None:
            continue
        root = parse_xml(rel.target_part.blob)
        if location == "comment":
            for comment in root.iter(f"{_W}comment"):
                piece = "\n".join(_plain_paragraphs(comment))
                scan.findings.extend(findings_outside_text(piece, "comment"))
        elif location in ("footnote", "endnote"):
            for note in root:
                walker.part(note, location)
        else:
            walker.part(root, location)
    _metadata(document, scan)
    for drawing in document.element.body.iter(f"{_WP}docPr"):
        for attribute in ("descr", "title"):
            value = drawing.get(attribute)
            if value:
                scan.findings.extend(findings_outside_text(value, "picture description"))
    return scan


class _Styles:
    """Run properties that styles give, following ``basedOn``; memoised per style."""

    def __init__(self, root: Any) -> None:
        self._by_id = {style.get(f"{_W}styleId"): style for style in root.iter(f"{_W}style")}
        self.default_paragraph = next(
            (
                style_id
                for style_id, style in self._by_id.items()
                if style.get(f"{_W}type") == "paragraph"
                and style.get(f"{_W}default") in ("1", "true")
            ),
            None,
        )
        defaults = root.find(f"{_W}docDefaults/{_W}rPrDefault/{_W}rPr")
        self.defaults = _look_of(defaults)
        self._memo: dict[str, _Look] = {}

    def look(self, style_id: str | None, depth: int = 0) -> _Look:
        if style_id is None or depth > 20:
            return _Look()
        if style_id not in self._memo:
            style = self._by_id.get(style_id)
            if style is None:
                return _Look()
            based_on = style.find(f"{_W}basedOn")
            base = self.look(based_on.get(f"{_W}val") if based_on is not None else None, depth + 1)
            self._memo[style_id] = _look_of(style.find(f"{_W}rPr")).over(base)
        return self._memo[style_id]


class _Walker:
    """Walks paragraphs as the extraction does, reporting hidden runs."""

    def __init__(self, styles: _Styles, text: str, scan: DocxScan, coloured_page: bool) -> None:
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
        if found is not None:
            self.cursor = found[1] if location == "body" else self.cursor
            if location != "body":
                self.scan.regions.append((found[0], found[1], location))
        elif location in ("header", "footer"):
            # Not in the extracted text: a header or footer Word does not display.
            self.scan.findings.extend(findings_outside_text(whole, f"{location} (not shown)"))
        for piece, reason, start in _hidden_runs(segments):
            if sum(char.isalnum() for char in piece) >= _MIN_WORD_CHARS:
                self.report(piece, reason, location, found, start)

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

    def paragraph_look(self, paragraph: Any) -> _Look:
        style = paragraph.find(f"{_W}pPr/{_W}pStyle")
        style_id = style.get(f"{_W}val") if style is not None else self.styles.default_paragraph
        return self.styles.look(style_id).over(self.styles.defaults)

    def inline(
        self,
        element: Any,
        paragraph_look: _Look,
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

    def run_reason(self, run: Any, paragraph_look: _Look) -> str | None:
        """Why a reader does not see this run, or None."""
        properties = run.find(f"{_W}rPr")
        style = properties.find(f"{_W}rStyle") if properties is not None else None
        character = self.styles.look(style.get(f"{_W}val") if style is not None else None)
        look = _look_of(properties).over(character).over(paragraph_look)
        if look.vanish:
            return "formatted as hidden"
        if look.half_points is not None and look.half_points <= _TINY_HALF_POINTS:
            return f"in a {look.half_points / 2:g}-point font"
        if (
            look.color is not None
            and _near_white(look.color)
            and not look.shaded
            and not self.coloured_page
            and not _on_coloured_background(run)
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


def _look_of(properties: Any) -> _Look:
    if properties is None:
        return _Look()
    vanish = properties.find(f"{_W}vanish")
    color = properties.find(f"{_W}color")
    size = properties.find(f"{_W}sz")
    highlight = properties.find(f"{_W}highlight")
    shading = properties.find(f"{_W}shd")
    shaded: bool | None = None
    if highlight is not None:
        shaded = highlight.get(f"{_W}val") not in (None, "none")
    if shading is not None and not shaded:
        shaded = _fill_is_coloured(shading)
    return _Look(
        vanish=None if vanish is None else vanish.get(f"{_W}val") not in _OFF,
        color=_color_of(color),
        half_points=_int(size.get(f"{_W}val")) if size is not None else None,
        shaded=shaded,
    )


def _color_of(color: Any) -> str | None:
    if color is None:
        return None
    theme = color.get(f"{_W}themeColor")
    if theme in ("background1", "light1") and color.get(f"{_W}themeShade") is None:
        return "FFFFFF"
    if theme is not None:
        return "AUTO"  # another theme colour: we cannot tell, so assume it shows
    return (color.get(f"{_W}val") or "AUTO").upper()


def _near_white(color: str) -> bool:
    if len(color) != 6:
        return False
    try:
        channels = [int(color[index : index + 2], 16) for index in (0, 2, 4)]
    except ValueError:
        return False
    return min(channels) >= 0xF0


def _fill_is_coloured(shading: Any) -> bool:
    fill = (shading.get(f"{_W}fill") or "auto").upper()
    return fill != "AUTO" and not _near_white(fill)


def _on_coloured_background(run: Any) -> bool:
    """Whether a paragraph, table cell or shape around ``run`` has a coloured fill."""
    element = run.getparent()
    while element is not None:
        tag = element.tag if isinstance(element.tag, str) else ""
        for properties in ("pPr", "tcPr", "tblPr"):
            shading = element.find(f"{_W}{properties}/{_W}shd")
            if shading is not None and _fill_is_coloured(shading):
                return True
        if tag.endswith("}wsp"):  # a drawing shape holding a text box
            fill = element.find(f".//{_A}solidFill/{_A}srgbClr")
            if fill is not None and not _near_white((fill.get("val") or "").upper()):
                return True
            if element.find(f".//{_A}solidFill/{_A}schemeClr") is not None:
                return True
        if tag.endswith("}shape") and element.get("fillcolor"):  # a legacy VML shape
            return not _near_white(element.get("fillcolor", "").lstrip("#").upper())
        element = element.getparent()
    return False


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


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
