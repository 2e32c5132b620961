"""The gradebook as an Excel workbook: a Summary sheet and a Grades sheet.

Each sheet is written to a temporary file row by row (`reports/xlsx.py`), so memory
stays flat; an .xlsx is a ZIP whose directory comes last, so the whole file is built on
disk first and then streamed out.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

from sqlalchemy.orm import Session

from grading_app.reports.gradebook import Cell, gradebook_rows
from grading_app.reports.scope import Scope
from grading_app.reports.writers import safe_text
from grading_app.reports.xlsx import write_sheet, write_workbook

# Excel's limit on the rows of a sheet.
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
    """The workbook's bytes; `summary` gives the Summary sheet's lines: headings (bold),
    and (label, value) rows. Text is shown as text: nothing a file name or feedback
    says becomes a formula, a number or a link."""
    with tempfile.TemporaryDirectory(prefix="grading-export-") as folder:
        summary_sheet, grades_sheet = Path(folder) / "summary.xml", Path(folder) / "grades.xml"
        write_sheet(
            summary_sheet,
            [[line] if isinstance(line, str) else list(line) for line in summary],
            text=safe_text,
            bold_rows={index for index, line in enumerate(summary) if isinstance(line, str)},
            widths=(32, 48),
        )
        rows = gradebook_rows(session, scope, id_pattern=id_pattern)
        # Excel opens no more rows; the CSV and JSON exports have every one.
        write_sheet(grades_sheet, islice(rows, SHEET_ROWS), text=safe_text, bold_rows={0})
        path = Path(folder) / "export.xlsx"
        write_workbook(path, [("Summary", summary_sheet), ("Grades", grades_sheet)])
        with path.open("rb") as built:
            while chunk := built.read(FILE_CHUNK_BYTES):
                yield chunk
