"""A rubric read out of a marking scheme's tables (.docx tables, Markdown pipe tables).

A table is read as a rubric when its header row names a criterion column ("Criterion",
"Aspect", "Name"...) and either a points column ("Points", "Marks", "Max", "Score"...)
whose every row holds one number, or level columns whose headers hold the points
("Excellent (4)"). Other columns are level descriptors, headed by the level's name, or
the criterion's description ("Description", "Guidance"). A row named "Total" gives the
overall maximum. A table that looks like a rubric but cannot be read as one is left as
text, and a warning says why.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from grading_app.grading.rubric import Rubric, RubricCriterion, RubricLevel

Table = Sequence[Sequence[str]]

_CRITERION = re.compile(
    r"criteri|aspect|element|dimension|component|skill|area|categor|^name$|item|section|"
    r"task|question|objective|outcome|critère|kriteri|criterio",
    re.IGNORECASE,
)
_POINTS = re.compile(
    r"point|mark|max|score|weight|pts|out of|value|total|note|punkt|punt", re.IGNORECASE
)
_DESCRIPTION = re.compile(r"descri|detail|guidance|expect|indicator|comment", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_TOTAL_ROW = re.compile(r"^(grand\s+)?total\b", re.IGNORECASE)
_MARKDOWN_RULE = re.compile(r"^[\s|:\-]+$")


@dataclass(frozen=True)
class RubricReading:
    rubric: Rubric | None
    # Why a table that looked like a rubric was not read as one.
    warnings: tuple[str, ...] = ()


def read_rubric(tables: Sequence[Table]) -> RubricReading:
    """The first table that reads as a rubric."""
    warnings: list[str] = []
    for table in tables:
        rubric, problem = _table_rubric(table)
        if rubric is not None:
            return RubricReading(rubric, tuple(warnings))
        if problem:
            warnings.append(problem)
    return RubricReading(None, tuple(warnings))


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Pipe tables of Markdown (or plain) text, as rows of cells, separator rows left out."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        stripped = line.strip()
        if stripped.startswith("|") and stripped.count("|") >= 2:
            if not _MARKDOWN_RULE.match(stripped):
                cells = re.split(r"(?<!\\)\|", stripped.strip("|"))
                current.append([cell.replace("\\|", "|").strip() for cell in cells])
            continue
        if current:
            tables.append(current)
            current = []
    return tables


def _number(text: str) -> float | None:
    """The one number in a cell ("20", "20 marks", "12,5 pts"); None for none or several."""
    found = _NUMBER.findall(text)
    if len(found) != 1:
        return None
    return float(found[0].replace(",", "."))


def _cell(row: Sequence[str], index: int) -> str:
    # Merged cells leave rows shorter than the header.
    return row[index].strip() if index < len(row) else ""


def _table_rubric(table: Table) -> tuple[Rubric | None, str | None]:
    rows = [list(row) for row in table if any(cell.strip() for cell in row)]
    if len(rows) < 2:
        return None, None
    header = [cell.strip() for cell in rows[0]]
    body = rows[1:]
    criterion_column = next((i for i, h in enumerate(header) if _CRITERION.search(h)), None)
    if criterion_column is None:
        return None, None
    headed = " | ".join(header)
    points_column = next(
        (
            i
            for i, heading in enumerate(header)
            if i != criterion_column
            and _POINTS.search(heading)
            and all(
                _number(_cell(row, i)) is not None
                for row in body
                if _cell(row, criterion_column) or _cell(row, i)
            )
        ),
        None,
    )
    others = [i for i in range(len(header)) if i not in (criterion_column, points_column)]
    described = [i for i in others if _DESCRIPTION.search(header[i])]
    level_columns = [i for i in others if i not in described and header[i]]
    level_points = {i: _number(header[i]) for i in level_columns}
    if points_column is None and not any(p is not None for p in level_points.values()):
        if any(_POINTS.search(h) for i, h in enumerate(header) if i != criterion_column):
            return None, (
                f"The table headed '{headed}' was not read as a rubric: its points column "
                "needs one number in every row"
            )
        return None, None
    criteria: list[RubricCriterion] = []
    total: float | None = None
    try:
        for row in body:
            name = _cell(row, criterion_column)
            if not name:
                continue
            if points_column is not None:
                maximum = _number(_cell(row, points_column))
            else:
                maximum = max(p for p in level_points.values() if p is not None)
            if _TOTAL_ROW.match(name):
                total = maximum
                continue
            criteria.append(
                RubricCriterion(
                    name=name,
                    max_score=maximum or 0,
                    description=" ".join(_cell(row, i) for i in described if _cell(row, i)),
                    levels=[
                        RubricLevel(
                            label=header[i][:100],
                            points=_level_points(level_points[i], maximum),
                            descriptor=_cell(row, i)[:2000],
                        )
                        for i in level_columns
                        if _cell(row, i)
                    ],
                )
            )
        return Rubric(criteria=criteria, max_score=total), None
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
        return None, f"The table headed '{headed}' was not read as a rubric: {reason}"


def _level_points(points: float | None, maximum: float | None) -> float | None:
    if points is None or maximum is None or points > maximum:
        return None
    return points
