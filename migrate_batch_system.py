#!/usr/bin/env python3
"""Upgrade a Grading App database to the Enhanced Batch System (see the README).

    python migrate_batch_system.py [--dry-run] [--no-backup]

Reads DATABASE_URL (default sqlite:///grading_app.db, in the current folder).
"""

import sys
from pathlib import Path

# Run from a source checkout without installing: make `src/` importable.
sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

try:
    from grading_app.cli.main import migrate_main
except ImportError as exc:  # dependencies missing: say how to get them, not a traceback
    sys.exit(
        f"Missing dependency ({exc.name}). Run `make install` in the project folder and use "
        f".venv/bin/python {Path(__file__).name}, or `pip install .` into this Python."
    )

if __name__ == "__main__":
    migrate_main()
