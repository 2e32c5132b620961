"""What a schema change prints: the migration guide's sections and one line per change.

The migrations emit lines through `current_reporter()`, so the same revision code
prints the guide's output under `migrate_batch_system.py`, stays quiet under tests that
call Alembic directly, and turns into a plan under `--dry-run`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class Reporter:
    write: Callable[[str], None] = lambda line: None
    dry_run: bool = False
    changes: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def section(self, title: str) -> None:
        self.write("")
        self.write(title)

    def change(self, done: str, *, plan: str | None = None) -> None:
        """A change made (past tense); under --dry-run, the change that would be made."""
        self.changes.append(done)
        if self.dry_run:
            self.write(f"  → Would: {plan or done}")
        else:
            self.write(f"  ✓ {done}")

    def skip(self, text: str) -> None:
        self.skipped.append(text)
        self.write(f"  - {text}")

    def check(self, text: str) -> None:
        self.write(f"  ✓ {text}")

    def info(self, text: str) -> None:
        self.write(f"  {text}")

    def warn(self, text: str) -> None:
        self.warnings.append(text)
        self.write(f"  ⚠️  {text}")


_current: ContextVar[Reporter | None] = ContextVar("migration_reporter", default=None)


def current_reporter() -> Reporter:
    """The reporter of the running command; a silent one when nobody set one."""
    return _current.get() or Reporter()


@contextmanager
def reporting_to(reporter: Reporter) -> Iterator[Reporter]:
    token = _current.set(reporter)
    try:
        yield reporter
    finally:
        _current.reset(token)
