"""Where a PDF keeps text from its reader: drawn invisibly (render modes 3 and 7), in
white, in a tiny or squeezed font, or outside the visible page; and what its metadata
and comment annotations say.

pypdf decodes the text; the visitor before each operator follows the graphics state
pypdf does not track (fill colour, render mode, filled shapes and pictures drawn), so
each piece of text pypdf reports can be classified where it was drawn.

Invisible text over a picture is how OCR software makes a scan searchable, and white
text over a coloured box or picture shows; neither is reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pypdf import PdfReader

from grading_app.documents.extract import PAGE_SEPARATOR
from grading_app.trust.findings import HIDDEN_TEXT, Finding, excerpt_of, locate
from grading_app.trust.text_scan import findings_outside_text

_MAX_PAGES = 500
_TINY_POINTS = 2.0
_WHITE = 0.94  # every channel at least this light
_MIN_WORD_CHARS = 3
_SHOW_TEXT = frozenset({b"Tj", b"TJ", b"'", b'"'})
_FILL_PATH = frozenset({b"f", b"F", b"f*", b"B", b"B*", b"b", b"b*"})
_END_PATH = frozenset({b"n", b"S", b"s"})
_METADATA = ("/Title", "/Subject", "/Keywords", "/Author", "/Creator", "/Producer")

Box = tuple[float, float, float, float]  # left, bottom, right, top


@dataclass(frozen=True)
class _State:
    fill_white: bool = False
    render_mode: int = 0
    font_size: float = 12.0
    horizontal_scale: float = 100.0


_INVISIBLE = "drawn invisibly (text render mode 3)"


@dataclass(frozen=True)
class _Shown:
    """One text-showing operator: why it is unseen (or None), what it shows, where."""

    reason: str | None
    raw: str
    x: float
    y: float


@dataclass
class _Page:
    """What one page's visitors collect."""

    box: Box
    images: frozenset[str]  # names of image XObjects, on the page or in its forms
    forms: frozenset[str]
    type3_scales: dict[str, float]  # Type 3 font name: its glyph scale against 1/1000
    state: _State = field(default_factory=_State)
    stack: list[_State] = field(default_factory=list)
    # Where each form being drawn was placed: pypdf gives its operators' matrices in
    # the form's own space.
    placements: list[list[float]] = field(default_factory=list)
    path: list[Box] = field(default_factory=list)
    covers: list[Box] = field(default_factory=list)  # coloured shapes and pictures drawn
    pictures: list[Box] = field(default_factory=list)
    pending: list[_Shown] = field(default_factory=list)
    chunks: list[tuple[str, _Shown | None]] = field(default_factory=list)


def scan_pdf(path: Path, text: str) -> list[Finding]:
    reader = PdfReader(str(path))
    if reader.is_encrypted:
        reader.decrypt("")
    findings: list[Finding] = []
    findings.extend(_metadata(reader))
    page_texts = text.split(PAGE_SEPARATOR)
    starts, position = [], 0
    for page_text in page_texts:
        starts.append(position)
        position += len(page_text) + len(PAGE_SEPARATOR)
    for index, page in enumerate(reader.pages):
        if index >= _MAX_PAGES:
            break
        number = index + 1
        try:
            findings.extend(_annotations(page, number))
            chunks = _classified_chunks(page)
        except Exception:  # one broken page must not cost the others their scan
            continue
        if index < len(page_texts):
            window, offset = page_texts[index], starts[index]
        else:
            window, offset = text, 0
        findings.extend(_hidden_findings(chunks, number, window, offset))
    return findings


def _classified_chunks(page: Any) -> list[tuple[str, str | None]]:
    """The page's text in pieces, each with why a reader does not see it (or None)."""
    box = page.cropbox
    images, forms, type3_scales = _resource_names(page.get("/Resources"))
    scan = _Page(
        box=(float(box.left), float(box.bottom), float(box.right), float(box.top)),
        images=frozenset(images),
        forms=frozenset(forms),
        type3_scales=type3_scales,
    )

    def before(operator: bytes, operands: list[Any], cm: list[float], tm: list[float]) -> None:
        _follow(scan, operator, operands, cm, tm)

    def after(operator: bytes, operands: list[Any], cm: list[float], tm: list[float]) -> None:
        if operator == b"Do" and operands and operands[0] in scan.forms and scan.placements:
            scan.placements.pop()

    def on_text(piece: str, *_: Any) -> None:
        if not piece:
            return
        pending, scan.pending = scan.pending, []
        hidden = [shown for shown in pending if shown.reason]
        if not hidden:
            scan.chunks.append((piece, None))
        elif len(hidden) == len(pending) or not piece.strip():
            scan.chunks.append((piece, hidden[0]))
        else:
            # Hidden and visible text in one piece: report the hidden strings as drawn.
            scan.chunks.extend((shown.raw, shown) for shown in hidden)

    page.extract_text(
        visitor_operand_before=before, visitor_operand_after=after, visitor_text=on_text
    )
    return [(piece, _final_reason(scan, shown)) for piece, shown in scan.chunks]


def _final_reason(scan: _Page, shown: _Shown | None) -> str | None:
    """Invisible text over a picture is a scan's OCR layer; the pictures of the whole
    page are known only now (OCR software may draw the text first)."""
    if shown is None:
        return None
    if shown.reason == _INVISIBLE and (
        _inside(shown.x, shown.y, scan.pictures, margin=5.0) or _mostly_picture(scan)
    ):
        return None
    return shown.reason


def _mostly_picture(scan: _Page) -> bool:
    left, bottom, right, top = scan.box
    page_area = max((right - left) * (top - bottom), 1.0)
    return any((x1 - x0) * (y1 - y0) >= page_area / 2 for x0, y0, x1, y1 in scan.pictures)


def _follow(
    scan: _Page, operator: bytes, operands: list[Any], cm: list[float], tm: list[float]
) -> None:
    """Track the graphics state, shapes and pictures; classify each text-showing op."""
    state = scan.state
    if operator in _SHOW_TEXT:
        placed = _placed(scan, cm)
        matrix = _multiply(tm, placed)
        scan.pending.append(
            _Shown(_why_unseen(scan, matrix), _raw_text(operator, operands), matrix[4], matrix[5])
        )
    elif operator == b"q":
        scan.stack.append(state)
    elif operator == b"Q":
        scan.state = scan.stack.pop() if scan.stack else _State()
    elif operator in (b"g", b"rg", b"k", b"sc", b"scn"):
        white = _is_white(operator, operands)
        if white is not None:
            scan.state = replace(state, fill_white=white)
    elif operator == b"cs":
        scan.state = replace(state, fill_white=False)  # a new colour space starts at black
    elif operator == b"Tr" and operands:
        scan.state = replace(state, render_mode=int(_number(operands[0])))
    elif operator == b"Tf" and len(operands) >= 2:
        # A Type 3 font's own matrix scales its glyphs (others use 1/1000 of text space).
        scale = scan.type3_scales.get(str(operands[0]), 1.0)
        scan.state = replace(state, font_size=_number(operands[1]) * scale)
    elif operator == b"Tz" and operands:
        scan.state = replace(state, horizontal_scale=_number(operands[0]))
    elif operator == b"re" and len(operands) >= 4:
        x, y, width, height = (_number(value) for value in operands[:4])
        scan.path.append(_transform_box((x, y, x + width, y + height), _placed(scan, cm)))
    elif operator in _FILL_PATH:
        if not state.fill_white:
            scan.covers.extend(scan.path)
        scan.path = []
    elif operator in _END_PATH:
        scan.path = []
    elif operator == b"INLINE IMAGE" or (
        operator == b"Do" and operands and operands[0] in scan.images
    ):
        # A picture fills the unit square of its transformation.
        picture = _transform_box((0.0, 0.0, 1.0, 1.0), _placed(scan, cm))
        scan.covers.append(picture)
        scan.pictures.append(picture)
    elif operator == b"Do" and operands and operands[0] in scan.forms:
        scan.placements.append(_placed(scan, cm))


def _placed(scan: _Page, cm: list[float]) -> list[float]:
    """``cm`` in page space, inside the forms being drawn."""
    return _multiply(cm, scan.placements[-1]) if scan.placements else cm


def _why_unseen(scan: _Page, matrix: list[float]) -> str | None:
    state = scan.state
    x, y = matrix[4], matrix[5]
    height = abs(state.font_size) * math.hypot(matrix[2], matrix[3])
    width = abs(state.font_size) * math.hypot(matrix[0], matrix[1]) * state.horizontal_scale / 100
    if state.render_mode in (3, 7):
        return _INVISIBLE
    left, bottom, right, top = scan.box
    margin = max(height, 2.0)
    if x < left - margin * 10 or x > right or y < bottom - margin or y > top + margin:
        return "placed outside the visible page"
    if height <= _TINY_POINTS:
        return f"in a {height:.2g}-point font"
    if width <= _TINY_POINTS:
        return "squeezed to almost no width"
    filled = state.render_mode in (0, 4)  # the other modes draw an outline a reader sees
    if filled and state.fill_white and not _inside(x, y, scan.covers, margin=1.0):
        return "coloured white"
    return None


def _resource_names(resources: Any, depth: int = 0) -> tuple[set[str], set[str], dict[str, float]]:
    """Names of the image and form XObjects and the Type 3 fonts (with their glyph
    scale) in ``resources`` and in its forms' resources."""
    images: set[str] = set()
    forms: set[str] = set()
    type3_scales: dict[str, float] = {}
    try:
        resources = resources.get_object() if resources is not None else None
        if resources is None:
            return images, forms, type3_scales
        fonts = resources.get("/Font")
        for name, reference in (fonts.get_object() if fonts is not None else {}).items():
            font = reference.get_object()
            if font.get("/Subtype") == "/Type3":
                matrix = [float(value) for value in font.get("/FontMatrix")]
                type3_scales[name] = math.hypot(matrix[2], matrix[3]) * 1000
        xobjects = resources.get("/XObject")
        for name, reference in (xobjects.get_object() if xobjects is not None else {}).items():
            xobject = reference.get_object()
            if xobject.get("/Subtype") == "/Image":
                images.add(name)
            elif xobject.get("/Subtype") == "/Form":
                forms.add(name)
                if depth < 4:
                    inner = _resource_names(xobject.get("/Resources"), depth + 1)
                    images |= inner[0]
                    forms |= inner[1]
                    type3_scales.update(inner[2])
    except Exception:  # damaged resources: what was read so far, nothing worse
        pass
    return images, forms, type3_scales


def _hidden_findings(
    chunks: list[tuple[str, str | None]], number: int, window: str, offset: int
) -> list[Finding]:
    """Consecutive hidden chunks of one reason become one finding, placed in the text."""
    groups: list[tuple[list[str], str]] = []
    previous: str | None = None
    for piece, reason in chunks:
        if reason is None:
            if piece.strip():
                previous = None
            continue
        if reason == previous:
            groups[-1][0].append(piece)
        else:
            groups.append(([piece], reason))
        previous = reason
    findings: list[Finding] = []
    location = f"pdf page {number}"
    cursor = 0
    for pieces, reason in groups:
        joined = " ".join(piece.strip() for piece in pieces if piece.strip())
        if sum(char.isalnum() for char in joined) < _MIN_WORD_CHARS:
            continue
        spans = []
        for piece in pieces:
            found = locate(window, piece, cursor)
            if found is not None:
                spans.append(found)
                cursor = found[1]
        start = min(span[0] for span in spans) + offset if spans else None
        end = max(span[1] for span in spans) + offset if spans else None
        seen = "the model reads it" if spans else "it is not in the text sent to the model"
        findings.append(
            Finding(
                kind=HIDDEN_TEXT,
                detail=f"Text {reason} on page {number}: a reader does not see it; {seen}.",
                excerpt=excerpt_of(joined),
                location=location,
                start=start,
                end=end,
            )
        )
        if not spans:
            findings.extend(findings_outside_text(joined, f"{location} (hidden)"))
    return findings


def _metadata(reader: PdfReader) -> list[Finding]:
    try:
        metadata: Any = reader.metadata or {}
    except Exception:
        return []
    findings: list[Finding] = []
    for key in _METADATA:
        value = metadata.get(key)
        if isinstance(value, str) and value.strip():
            label = f"document properties ({key.lstrip('/').lower()})"
            findings.extend(findings_outside_text(value, label))
    return findings


def _annotations(page: Any, number: int) -> list[Finding]:
    """Comments (sticky notes and the like) on the page: not part of the text."""
    findings: list[Finding] = []
    annotations = page.get("/Annots")
    for reference in annotations.get_object() if annotations is not None else []:
        annotation = reference.get_object()
        contents = annotation.get("/Contents") if hasattr(annotation, "get") else None
        if isinstance(contents, str) and contents.strip():
            findings.extend(findings_outside_text(contents, f"comment on pdf page {number}"))
    return findings


def _is_white(operator: bytes, operands: list[Any]) -> bool | None:
    """Whether a fill colour is (near) white; None when it is not a plain colour."""
    try:
        values = [float(value) for value in operands]
    except (TypeError, ValueError):
        return None  # a pattern name
    if operator == b"k" or (operator in (b"sc", b"scn") and len(values) == 4):
        return all(value <= 1 - _WHITE for value in values)
    if not values or len(values) not in (1, 3):
        return None
    return all(value >= _WHITE for value in values)


def _raw_text(operator: bytes, operands: list[Any]) -> str:
    """The strings an operator shows, as written (right for the simple fonts essays use)."""
    items = operands[0] if operator == b"TJ" and operands else operands[-1:] if operands else []
    out = []
    for item in items if isinstance(items, list) else [items]:
        if isinstance(item, bytes):
            out.append(item.decode("latin-1"))
        elif isinstance(item, str) and not item.startswith("/"):
            out.append(item)
    return "".join(out)


def _multiply(m: list[float], n: list[float]) -> list[float]:
    return [
        m[0] * n[0] + m[1] * n[2],
        m[0] * n[1] + m[1] * n[3],
        m[2] * n[0] + m[3] * n[2],
        m[2] * n[1] + m[3] * n[3],
        m[4] * n[0] + m[5] * n[2] + n[4],
        m[4] * n[1] + m[5] * n[3] + n[5],
    ]


def _transform_box(box: Box, cm: list[float]) -> Box:
    points = [
        (x * cm[0] + y * cm[2] + cm[4], x * cm[1] + y * cm[3] + cm[5])
        for x in (box[0], box[2])
        for y in (box[1], box[3])
    ]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def _inside(x: float, y: float, boxes: list[Box], *, margin: float) -> bool:
    return any(
        left - margin <= x <= right + margin and bottom - margin <= y <= top + margin
        for left, bottom, right, top in boxes
    )


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0
