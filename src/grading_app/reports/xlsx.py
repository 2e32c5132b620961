"""The XLSX format, as much of it as an export needs: sheets of text and number cells,
one bold style and column widths (ECMA-376 SpreadsheetML).

Each sheet's XML is written row by row to a file as its rows come, then the parts are
zipped into the workbook: memory stays flat whatever the size. Writing the XML here
rather than through a general spreadsheet library costs a few string operations per
cell instead of a few function calls (at 100,000 documents of a dozen columns, the
difference between under a second and several).
"""

from __future__ import annotations

import math
import re
import zipfile
from collections.abc import Callable, Container, Iterable, Sequence
from pathlib import Path

Cell = str | int | float | None

# Excel's limit on the characters of a cell.
CELL_CHARACTERS = 32_767
MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
RELATIONSHIPS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PACKAGE_RELATIONSHIPS = "http://schemas.openxmlformats.org/package/2006/relationships"
CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml"
HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
# Deflate's fastest level: the sheets are plain, repetitive XML, which it still shrinks
# about tenfold, at a third of the default level's time.
COMPRESS_LEVEL = 1
BOLD = 1  # the index of the bold cell format in styles.xml

# Text XML 1.0 cannot hold, or that Excel would read otherwise: control characters
# other than tab and newline (a carriage return would come back as a newline), a
# literal "_xHHHH_" (Excel's own escape), surrogates and the two non-characters.
_NEEDS_ESCAPE = re.compile(r"[\x00-\x08\x0b-\x1f\ud800-\udfff\ufffe\uffff]|_(?=x[0-9A-Fa-f]{4}_)")


def _escape_one(found: re.Match[str]) -> str:
    char = found.group(0)
    if char == "_":
        return "_x005F_"  # the underscore itself, escaped: "_x005F_x0041_" reads "_x0041_"
    if char < " ":
        return f"_x{ord(char):04X}_"
    return "\ufffd"  # not a character XML may hold at all


# What text needs beyond its <t> element: XML's three (the quote needs no escape outside
# an attribute), and what _NEEDS_ESCAPE finds.
_NEEDS_WORK = re.compile(r"[&<>\x00-\x08\x0b-\x1f\ud800-\udfff\ufffe\uffff]|_(?=x[0-9A-Fa-f]{4}_)")
# Distinct texts whose XML a sheet remembers (statuses, job names, errors repeat down a
# column; file names do not, and stop being remembered once it is full).
REMEMBERED_TEXTS = 4096


def text_xml(text: str) -> str:
    """A <t> element holding `text` as Excel shows it."""
    if (
        len(text) <= CELL_CHARACTERS
        and not _NEEDS_WORK.search(text)
        and not (text[:1].isspace() or text[-1:].isspace())
    ):
        return f"<t>{text}</t>"  # most text: nothing to escape or keep
    if len(text) > CELL_CHARACTERS:
        text = text[:CELL_CHARACTERS]
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if _NEEDS_ESCAPE.search(text):
        text = _NEEDS_ESCAPE.sub(_escape_one, text)
    if text[:1].isspace() or text[-1:].isspace():
        return f'<t xml:space="preserve">{text}</t>'
    return f"<t>{text}</t>"


def column_name(index: int) -> str:
    """A, B, ..., Z, AA, ... for column 0, 1, ..."""
    name = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        name = chr(ord("A") + remainder) + name
    return name


def write_sheet(
    path: Path,
    rows: Iterable[Sequence[Cell]],
    *,
    text: Callable[[str], str] = str,
    bold_rows: Container[int] = (),
    widths: Sequence[float] = (),
) -> None:
    """A worksheet's XML: one row per item of `rows` (None leaves a cell empty; a number
    is a number cell; anything else is text, passed through `text` first); rows whose
    index is in `bold_rows` bold; `widths` of the first columns, in characters."""
    columns: list[str] = []  # the opening of each column's cells: <c r="B
    remembered: dict[str, str] = {}  # text: its <t> element
    with path.open("w", encoding="utf-8", buffering=1 << 20) as out:
        out.write(f'{HEAD}<worksheet xmlns="{MAIN}">')
        if widths:
            out.write("<cols>")
            for position, width in enumerate(widths, start=1):
                out.write(
                    f'<col min="{position}" max="{position}" width="{width}" customWidth="1"/>'
                )
            out.write("</cols>")
        out.write("<sheetData>")
        for index, row in enumerate(rows):
            number = str(index + 1)
            while len(columns) < len(row):
                columns.append(f'<c r="{column_name(len(columns))}')
            style = f' s="{BOLD}"' if index in bold_rows else ""
            cells = []
            for column, value in enumerate(row):
                kind = type(value)
                if kind is str:
                    shown = remembered.get(value)  # type: ignore[arg-type]
                    if shown is None:
                        shown = text_xml(text(value))  # type: ignore[arg-type]
                        if len(remembered) < REMEMBERED_TEXTS:
                            remembered[value] = shown  # type: ignore[index]
                elif value is None:
                    continue
                elif (kind is int or kind is float) and math.isfinite(value):  # type: ignore[arg-type]
                    cells.append(f'{columns[column]}{number}"{style}><v>{value!r}</v></c>')
                    continue
                else:
                    shown = text_xml(text(str(value)))
                cells.append(
                    f'{columns[column]}{number}"{style} t="inlineStr"><is>{shown}</is></c>'
                )
            out.write(f'<row r="{number}">{"".join(cells)}</row>')
        out.write("</sheetData></worksheet>")


def write_workbook(path: Path, sheets: Sequence[tuple[str, Path]]) -> None:
    """The workbook at `path`: the sheets (name, XML written by `write_sheet`), in order."""
    with zipfile.ZipFile(
        path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL
    ) as archive:
        archive.writestr("[Content_Types].xml", _content_types(len(sheets)))
        archive.writestr(
            "_rels/.rels",
            f'{HEAD}<Relationships xmlns="{PACKAGE_RELATIONSHIPS}">'
            f'<Relationship Id="rId1" Type="{RELATIONSHIPS}/officeDocument" '
            'Target="xl/workbook.xml"/></Relationships>',
        )
        names = "".join(
            f'<sheet name="{_attribute(name)}" sheetId="{number}" r:id="rId{number}"/>'
            for number, (name, _) in enumerate(sheets, start=1)
        )
        archive.writestr(
            "xl/workbook.xml",
            f'{HEAD}<workbook xmlns="{MAIN}" xmlns:r="{RELATIONSHIPS}">'
            f"<sheets>{names}</sheets></workbook>",
        )
        links = "".join(
            f'<Relationship Id="rId{number}" Type="{RELATIONSHIPS}/worksheet" '
            f'Target="worksheets/sheet{number}.xml"/>'
            for number in range(1, len(sheets) + 1)
        )
        archive.writestr(
            "xl/_rels/workbook.xml.rels",
            f'{HEAD}<Relationships xmlns="{PACKAGE_RELATIONSHIPS}">{links}'
            f'<Relationship Id="rId{len(sheets) + 1}" Type="{RELATIONSHIPS}/styles" '
            'Target="styles.xml"/></Relationships>',
        )
        archive.writestr("xl/styles.xml", _STYLES)
        for number, (_, sheet) in enumerate(sheets, start=1):
            archive.write(sheet, f"xl/worksheets/sheet{number}.xml")


def _attribute(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace('"', "&quot;")


def _content_types(sheets: int) -> str:
    overrides = "".join(
        f'<Override PartName="/xl/worksheets/sheet{number}.xml" '
        f'ContentType="{CONTENT_TYPE}.worksheet+xml"/>'
        for number in range(1, sheets + 1)
    )
    return (
        f"{HEAD}"
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" '
        'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/xl/workbook.xml" ContentType="{CONTENT_TYPE}.sheet.main+xml"/>'
        f'<Override PartName="/xl/styles.xml" ContentType="{CONTENT_TYPE}.styles+xml"/>'
        f"{overrides}</Types>"
    )


# Two cell formats: the default (0) and bold (1). Excel expects the two fills every
# workbook starts with (none, gray125) and a "Normal" cell style.
_STYLES = (
    f'{HEAD}<styleSheet xmlns="{MAIN}">'
    '<fonts count="2">'
    '<font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    "</fonts>"
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/></cellXfs>'
    '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
    "</styleSheet>"
)
