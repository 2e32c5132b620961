#!/usr/bin/env python3
"""Serve Grading App directly: `python app.py` (same as `grading-app serve`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

try:
    from grading_app.cli.main import serve
except ImportError as exc:  # dependencies missing: say how to get them, not a traceback
    sys.exit(
        f"Missing dependency ({exc.name}). Run `make install` in the project folder and use "
        f".venv/bin/python {Path(__file__).name}, or `pip install .` into this Python."
    )

if __name__ == "__main__":
    import typer

    typer.run(serve)
