"""Analytics of a batch or job whose work has settled, measured once and served again
while nothing they count has changed.

Measuring reads every item and grade of the scope (seconds at 100,000 documents); a
settled batch is read far more often than it changes. What is kept is the part of the
report that depends on the rows alone (`analytics.Measured`): the rates, the ETA and
the cost are worked out afresh on each request, from the time and the prices of then.

The change stamp, read on each request, is cheap (the scope's job rows, and its items
counted by state on their index) and moves with every change the application makes to
a settled scope:

- a scope with an item queued or running is never kept: claims, retries after an error
  and lease expiries move its figures without touching a job row;
- anything that brings work back (retry, requeue, resume, new documents) queues items,
  and a job row moves (its counters and `updated_at`) both then and when the work
  settles again (the last item of a job sets its status and `updated_at`);
- deleting a document moves its job's counters and the item counts; deleting or adding
  a job changes the scope's set of jobs;
- a review (accept, override, or a document's reasons assessed again) moves the count
  and latest change of the scope's review rows (the grades that count follow reviews).

A change made behind the application's back (SQL typed by hand into a settled scope's
items or grades, not its job rows) is not seen until the stamp next moves.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from grading_app.models import OPEN_ITEM, DocumentReview, GradingJob, WorkItem, utcnow
from grading_app.reports.analytics import Measured, assemble, measure
from grading_app.reports.prices import PriceTable
from grading_app.reports.schemas import ScopeAnalytics
from grading_app.reports.scope import Scope

# Scopes kept (each a few kilobytes), the least recently read dropped first.
MAX_SNAPSHOTS = 256

Stamp = tuple[Any, ...]


@dataclass
class Stats:
    hits: int = 0
    misses: int = 0


@dataclass(frozen=True)
class _Snapshot:
    stamp: Stamp
    measured: Measured


_snapshots: OrderedDict[tuple[str, str], _Snapshot] = OrderedDict()
_lock = threading.Lock()
_stats = Stats()


def change_stamp(session: Session, scope: Scope) -> Stamp | None:
    """What moves whenever the application changes the scope's figures; None while any
    of its items is queued or running (then nothing is kept)."""
    open_item = session.scalar(
        sa.select(sa.exists().where(scope.items(), WorkItem.state.in_(OPEN_ITEM)))
    )
    if open_item:
        return None
    jobs = session.execute(
        sa.select(
            GradingJob.id,
            GradingJob.updated_at,
            GradingJob.status,
            GradingJob.total_items,
            GradingJob.completed_items,
            GradingJob.failed_items,
            GradingJob.total_submissions,
            GradingJob.processed_submissions,
            GradingJob.failed_submissions,
            GradingJob.partly_failed_submissions,
        )
        .where(scope.jobs())
        .order_by(GradingJob.id)
    )
    items = session.execute(
        sa.select(WorkItem.state, sa.func.count())
        .where(scope.items())
        .group_by(WorkItem.state)
        .order_by(WorkItem.state)
    )
    # A review changes the grades that count (the final-score distribution).
    of_scope = DocumentReview.batch_id if scope.kind == "batch" else DocumentReview.job_id
    reviews = session.execute(
        sa.select(sa.func.count(), sa.func.max(DocumentReview.updated_at)).where(
            of_scope == scope.id
        )
    ).one()
    return (
        tuple(tuple(row) for row in jobs),
        tuple(tuple(row) for row in items),
        tuple(reviews),
    )


def scope_analytics(
    session: Session,
    scope: Scope,
    *,
    prices: PriceTable,
    now: datetime | None = None,
    criteria: bool = True,
) -> ScopeAnalytics:
    """`analytics.scope_analytics`, from the kept measurement when its stamp still holds."""
    stamp = change_stamp(session, scope)
    key = (scope.kind, scope.id)
    measured = _kept(key, stamp, criteria=criteria)
    if measured is None:
        # The stamp is read before the rows: a change in between shows in the figures
        # kept, and moves the stamp, so the next request measures again.
        measured = measure(session, scope, criteria=criteria)
        if stamp is not None:
            with _lock:
                _snapshots[key] = _Snapshot(stamp, measured)
                _snapshots.move_to_end(key)
                while len(_snapshots) > MAX_SNAPSHOTS:
                    _snapshots.popitem(last=False)
    if measured.criteria and not criteria:
        measured = replace(
            measured,
            criteria=False,
            models=[m.model_copy(update={"criteria": []}) for m in measured.models],
        )
    return assemble(session, scope, measured, prices=prices, now=now or utcnow())


def _kept(key: tuple[str, str], stamp: Stamp | None, *, criteria: bool) -> Measured | None:
    with _lock:
        snapshot = _snapshots.get(key) if stamp is not None else None
        if (
            snapshot is None
            or snapshot.stamp != stamp
            or (criteria and not snapshot.measured.criteria)
        ):
            _stats.misses += 1
            return None
        _snapshots.move_to_end(key)
        _stats.hits += 1
        return snapshot.measured


def stats() -> Stats:
    """How many requests were served from a snapshot, and how many measured."""
    with _lock:
        return Stats(_stats.hits, _stats.misses)
