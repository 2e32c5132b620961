"""How a Word run looks: the properties that decide whether a reader sees it (hidden,
colour, size, shading), from the run, its character style, its paragraph's style and
the document defaults, in that order of precedence."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_OFF = ("0", "false", "off")
TINY_HALF_POINTS = 4  # 2 pt and below: no one reads that


@dataclass(frozen=True)
class Look:
    """The run properties that decide whether a reader sees a run; None: not said."""

    vanish: bool | None = None
    color: str | None = None  # six hex digits, or "AUTO"
    half_points: int | None = None
    shaded: bool | None = None  # highlighted or shaded: white text on it shows

    def over(self, base: Look) -> Look:
        return Look(
            self.vanish if self.vanish is not None else base.vanish,
            self.color if self.color is not None else base.color,
            self.half_points if self.half_points is not None else base.half_points,
            self.shaded if self.shaded is not None else base.shaded,
        )


class Styles:
    """Run properties that styles give, following ``basedOn``; memoised per style."""

    def __init__(self, root: Any) -> None:
        self._by_id = {style.get(f"{W}styleId"): style for style in root.iter(f"{W}style")}
        self.default_paragraph = next(
            (
                style_id
                for style_id, style in self._by_id.items()
                if style.get(f"{W}type") == "paragraph"
                and style.get(f"{W}default") in ("1", "true")
            ),
            None,
        )
        defaults = root.find(f"{W}docDefaults/{W}rPrDefault/{W}rPr")
        self.defaults = look_of(defaults)
        self._memo: dict[str, Look] = {}

    def look(self, style_id: str | None, depth: int = 0) -> Look:
        if style_id is None or depth > 20:
            return Look()
        if style_id not in self._memo:
            style = self._by_id.get(style_id)
            if style is None:
                return Look()
            based_on = style.find(f"{W}basedOn")
            base = self.look(based_on.get(f"{W}val") if based_on is not None else None, depth + 1)
            self._memo[style_id] = look_of(style.find(f"{W}rPr")).over(base)
        return self._memo[style_id]


def look_of(properties: Any) -> Look:
    if properties is None:
        return Look()
    vanish = properties.find(f"{W}vanish")
    color = properties.find(f"{W}color")
    size = properties.find(f"{W}sz")
    highlight = properties.find(f"{W}highlight")
    shading = properties.find(f"{W}shd")
    shaded: bool | None = None
    if highlight is not None:
        shaded = highlight.get(f"{W}val") not in (None, "none", "white")
    if shading is not None and not shaded:
        shaded = _fill_is_coloured(shading)
    return Look(
        vanish=None if vanish is None else vanish.get(f"{W}val") not in _OFF,
        color=_color_of(color),
        half_points=_int(size.get(f"{W}val")) if size is not None else None,
        shaded=shaded,
    )


def _color_of(color: Any) -> str | None:
    if color is None:
        return None
    theme = color.get(f"{W}themeColor")
    if theme in ("background1", "light1") and color.get(f"{W}themeShade") is None:
        return "FFFFFF"
    if theme is not None:
        return "AUTO"  # another theme colour: we cannot tell, so assume it shows
    return (color.get(f"{W}val") or "AUTO").upper()


def near_white(color: str) -> bool:
    if len(color) != 6:
        return False
    try:
        channels = [int(color[index : index + 2], 16) for index in (0, 2, 4)]
    except ValueError:
        return False
    return min(channels) >= 0xF0


def _fill_is_coloured(shading: Any) -> bool:
    fill = (shading.get(f"{W}fill") or "auto").upper()
    return fill != "AUTO" and not near_white(fill)


def on_coloured_background(run: Any) -> bool:
    """Whether a paragraph, table cell or shape around ``run`` has a coloured fill."""
    element = run.getparent()
    while element is not None:
        tag = element.tag if isinstance(element.tag, str) else ""
        for properties in ("pPr", "tcPr", "tblPr"):
            shading = element.find(f"{W}{properties}/{W}shd")
            if shading is not None and _fill_is_coloured(shading):
                return True
        if tag.endswith("}wsp"):  # a drawing shape holding a text box
            fill = element.find(f".//{_A}solidFill/{_A}srgbClr")
            if fill is not None and not near_white((fill.get("val") or "").upper()):
                return True
            if element.find(f".//{_A}solidFill/{_A}schemeClr") is not None:
                return True
        if tag.endswith("}shape") and element.get("fillcolor"):  # a legacy VML shape
            return not near_white(element.get("fillcolor", "").lstrip("#").upper())
        element = element.getparent()
    return False


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
