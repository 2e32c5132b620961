"""The gradebook as an Excel workbook: a Summary sheet and a Grades sheet.

xlsxwriter's constant_memory mode writes each row to a temporary file as soon as the
next one starts (https://xlsxwriter.readthedocs.io/working_with_memory.html), so memory
stays flat; an .xlsx is a ZIP whose directory comes last, so the whole file is built on
disk first and then streamed out.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from grading_app.reports.gradebook import Cell, gradebook_rows
from grading_app.reports.scope import Scope
from grading_app.reports.writers import safe_text

# Excel's limits: characters in a cell, rows in a sheet.
CELL_CHARACTERS = 32_767
SHEET_ROWS = 1_048_576
FILE_CHUNK_BYTES = 64 * 1024
# A heading, or a (label, value) row.
SummaryLine = str | tuple[str, Cell]


def xlsx_chunks(
    session: Session,
    scope: Scope,
    *,
    summary: list[SummaryLine],
    id_pattern: re.Pattern[str] | None = None,
) -> Iterator[bytes]:
    """The workbook's bytes; `summary` gives the Summary sheet's lines: headings, and
    (label, value) rows."""
    import xlsxwriter  # only the XLSX export needs it

    with tempfile.TemporaryDirectory(prefix="grading-export-") as folder:
        path = Path(folder) / "export.xlsx"
        workbook = xlsxwriter.Workbook(
            str(path),
            {
                "constant_memory": True,
                "tmpdir": folder,
                # Text is text: nothing a file name or feedback says becomes a
                # formula, a number or a link.
                "strings_to_formulas": False,
                "strings_to_numbers": False,
                "strings_to_urls": False,
            },
        )
        bold = workbook.add_format({"bold": True})
        sheet = workbook.add_worksheet("Summary")
        sheet.set_column(0, 0, 32)
        sheet.set_column(1, 1, 48)
        for index, line in enumerate(summary):
            if isinstance(line, str):
                sheet.write_string(index, 0, line, bold)
                continue
            label, value = line
            sheet.write_string(index, 0, safe_text(label))
            _write(sheet, index, 1, value)
        grades = workbook.add_worksheet("Grades")
        for index, row in enumerate(gradebook_rows(session, scope, id_pattern=id_pattern)):
            if index >= SHEET_ROWS:
                break  # Excel opens no more; the CSV and JSON exports have every row
            for column, value in enumerate(row):
                _write(grades, index, column, value, bold if index == 0 else None)
        workbook.close()
        with path.open("rb") as built:
            while chunk := built.read(FILE_CHUNK_BYTES):
                yield chunk


def _write(sheet: Any, row: int, column: int, value: Cell, style: Any = None) -> None:
    if value is None:
        return
    if isinstance(value, int | float) and not isinstance(value, bool):
        sheet.write_number(row, column, value, style)
        return
    sheet.write_string(row, column, safe_text(str(value))[:CELL_CHARACTERS], style)
