"""Reading a class roster (a .csv or .txt file) into a list of full names."""

from __future__ import annotations

import csv
import io

MAX_ROSTER_BYTES = 1024 * 1024
MAX_ROSTER_NAMES = 5000
MAX_NAME_LENGTH = 100

_NAME_HEADERS = ("name", "full name", "fullname", "student name", "student", "pupil", "learner")
_FIRST_HEADERS = ("first name", "firstname", "first", "given name", "given names", "forename")
_LAST_HEADERS = ("last name", "lastname", "last", "surname", "family name", "second name")


def parse_roster(data: bytes, filename: str) -> list[str]:
    """Full names from a roster file, in order, without repeats.

    A .txt file has one name per line (blank lines and lines starting with "#" are
    skipped). A .csv file has a header row with a name column ("Name", "Full name",
    "Student name") or a first-name and a last-name column ("First name"/"Forename",
    "Last name"/"Surname"); a .csv with a single column and no such header is read as
    one name per row. "Smith, Jane" is read as "Jane Smith".
    """
    extension = filename.rsplit(".", 1)[-1].casefold() if "." in filename else ""
    if extension not in ("csv", "txt"):
        raise ValueError(
            f"The roster {filename!r} is not a .csv or .txt file; save it as CSV from your "
            "spreadsheet, or as plain text with one name per line."
        )
    if len(data) > MAX_ROSTER_BYTES:
        raise ValueError(
            f"The roster {filename!r} is larger than 1 MB; a class list is far smaller."
        )
    text = _decode(data, filename)
    names = _read_csv(text, filename) if extension == "csv" else _read_lines(text)
    cleaned: list[str] = []
    seen: set[str] = set()
    for raw in names:
        name = _clean_name(raw)
        if not name:
            continue
        if len(name) > MAX_NAME_LENGTH:
            raise ValueError(
                f"The roster {filename!r} has an entry longer than {MAX_NAME_LENGTH} characters "
                "(is it really a list of names?)."
            )
        if name.casefold() not in seen:
            seen.add(name.casefold())
            cleaned.append(name)
    if not cleaned:
        raise ValueError(f"The roster {filename!r} has no names in it.")
    if len(cleaned) > MAX_ROSTER_NAMES:
        raise ValueError(
            f"The roster {filename!r} has {len(cleaned)} names; at most {MAX_ROSTER_NAMES} "
            "are read."
        )
    return cleaned


def _decode(data: bytes, filename: str) -> str:
    if b"\x00" in data:
        raise ValueError(
            f"The roster {filename!r} is not a text file (a spreadsheet saved as .xlsx?); save "
            "it as CSV."
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Excel on Windows saves CSV in the ANSI code page.
        return data.decode("cp1252", errors="replace")


def _read_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.lstrip().startswith("#")]


def _read_csv(text: str, filename: str) -> list[str]:
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            text[:4096], delimiters=",;\t"
        )
    except csv.Error:
        dialect = csv.excel
    rows = [row for row in csv.reader(io.StringIO(text), dialect) if any(c.strip() for c in row)]
    if not rows:
        return []
    header = [cell.strip().casefold() for cell in rows[0]]
    name_column = _column(header, _NAME_HEADERS)
    first_column = _column(header, _FIRST_HEADERS)
    last_column = _column(header, _LAST_HEADERS)
    if first_column is not None and last_column is not None:
        return [f"{_cell(row, first_column)} {_cell(row, last_column)}" for row in rows[1:]]
    if name_column is not None:
        return [_cell(row, name_column) for row in rows[1:]]
    if all(len([cell for cell in row if cell.strip()]) <= 1 for row in rows):
        return [next((cell for cell in row if cell.strip()), "") for row in rows]
    raise ValueError(
        f"The roster {filename!r} has no name column: give it a header row with a column "
        "called 'Name', or columns 'First name' and 'Last name'."
    )


def _column(header: list[str], names: tuple[str, ...]) -> int | None:
    for wanted in names:
        if wanted in header:
            return header.index(wanted)
    return None


def _cell(row: list[str], index: int) -> str:
    return row[index] if index < len(row) else ""


def _clean_name(raw: str) -> str:
    name = " ".join(raw.replace("\u00a0", " ").split()).strip(" \"'")
    if name.count(",") == 1:
        last, first = (part.strip() for part in name.split(","))
        name = f"{first} {last}".strip()
    if not any(ch.isalpha() for ch in name):
        return ""
    return name
