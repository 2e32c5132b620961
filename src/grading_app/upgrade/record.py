"""`migration_backup_info.json`: this run's record on top, earlier runs kept under it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

# Earlier runs kept in migration_backup_info.json, newest first.
HISTORY_LIMIT = 20


def record_run(path: Path, record: dict[str, Any], write: Callable[[str], None]) -> None:
    """Write this run's record at the top of `path`, earlier runs under `previous_runs`.

    A no-op second run must not hide the real upgrade: its backup file and SHA-256 stay
    in the history, and `latest_backup` points at the newest backup of any run.
    """
    previous = _earlier_runs(path, write)
    runs = [record, *previous]
    latest_backup = next(
        (
            {"date": run.get("date"), **run["backup"]}
            for run in runs
            if isinstance(run, dict) and isinstance(run.get("backup"), dict)
        ),
        None,
    )
    document = {**record, "latest_backup": latest_backup, "previous_runs": previous}
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    # Written beside it and renamed, so a crash never leaves half a file.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as exc:  # the upgrade itself is done; say so rather than fail it
        temporary.unlink(missing_ok=True)
        write(f"⚠️  Could not write {path}: {exc}")


def _earlier_runs(path: Path, write: Callable[[str], None]) -> list[dict[str, Any]]:
    """The runs recorded in `path` so far, newest first (at most HISTORY_LIMIT)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        kept = path.with_name(f"{path.name}.unreadable-{datetime.now():%Y%m%d_%H%M%S}")
        try:
            path.replace(kept)
            write(f"⚠️  {path} could not be read ({exc}); kept it as {kept.name}")
        except OSError:
            write(f"⚠️  {path} could not be read ({exc}); starting a new history")
        return []
    if not isinstance(document, dict):
        return []
    earlier = document.pop("previous_runs", [])
    document.pop("latest_backup", None)
    runs = [document, *(run for run in earlier if isinstance(run, dict))]
    return runs[:HISTORY_LIMIT]
