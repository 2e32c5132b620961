"""Reading an .xlsx back without a spreadsheet library: it is a ZIP of XML sheets
(ECMA-376), whose cells hold numbers, shared strings or inline strings."""

from __future__ import annotations

import io
import re
import zipfile
from xml.etree import ElementTree

NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
_COLUMN = re.compile(r"[A-Z]+")


def read_workbook(content: bytes) -> dict[str, list[list[object]]]:
    """{sheet name: rows of cell values}: numbers as float, text as str; a formula
    would come back as ("formula", text), so a test can tell there is none."""
    archive = zipfile.ZipFile(io.BytesIO(content))
    shared: list[str] = []
    if "xl/sharedStrings.xml" in archive.namelist():
        root = ElementTree.fromstring(archive.read("xl/sharedStrings.xml"))
        shared = ["".join(t.text or "" for t in si.iter(f"{{{NS['m']}}}t")) for si in root]
    book = ElementTree.fromstring(archive.read("xl/workbook.xml"))
    names = [sheet.get("name") for sheet in book.iterfind("m:sheets/m:sheet", NS)]
    sheets = {}
    for index, name in enumerate(names, start=1):
        root = ElementTree.fromstring(archive.read(f"xl/worksheets/sheet{index}.xml"))
        rows = []
        for row in root.iterfind("m:sheetData/m:row", NS):
            values: list[object] = []
            for cell in row.iterfind("m:c", NS):
                column = _column_index(cell.get("r", "A1"))
                values += [None] * (column - len(values))
                values.append(_value(cell, shared))
            rows.append(values)
        sheets[name] = rows
    return sheets


def _column_index(reference: str) -> int:
    letters = _COLUMN.match(reference)
    number = 0
    for letter in letters.group(0) if letters else "A":
        number = number * 26 + ord(letter) - ord("A") + 1
    return number - 1


def _value(cell: ElementTree.Element, shared: list[str]) -> object:
    formula = cell.find("m:f", NS)
    if formula is not None:
        return ("formula", formula.text)
    kind = cell.get("t")
    if kind == "inlineStr":
        return "".join(t.text or "" for t in cell.iter(f"{{{NS['m']}}}t"))
    value = cell.find("m:v", NS)
    if value is None:
        return None
    if kind == "s":
        return shared[int(value.text or 0)]
    if kind == "str":
        return value.text
    return float(value.text or 0)
