"""Sharing a batch with another user, to view it or also to change it.

The shares live in `batch_shares`; the batch's `shared_with` column (from the migration
guide's schema) mirrors them as a list of usernames, so what it says stays true.
"""

from __future__ import annotations

from typing import Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from grading_app.accounts import users
from grading_app.errors import BadRequest, NotFound
from grading_app.models import BatchShare, JobBatch, User, utcnow

Permission = Literal["view", "edit"]


def list_shares(session: Session, *, batch_id: str) -> list[tuple[BatchShare, User]]:
    rows = session.execute(
        sa.select(BatchShare, User)
        .join(User, User.id == BatchShare.user_id)
        .where(BatchShare.batch_id == batch_id)
        .order_by(User.username)
    )
    return [(share, user) for share, user in rows]


def share_batch(
    session: Session,
    *,
    batch_id: str,
    username: str,
    permission: Permission,
    shared_by: str | None,
) -> tuple[BatchShare, User]:
    """Give `username` `permission` on the batch (or change the one they have)."""
    batch = session.get(JobBatch, batch_id, with_for_update=True)
    if batch is None:
        raise NotFound(f"No batch with id {batch_id}")
    user = users.require_user(session, username)
    if not user.is_active:
        raise BadRequest(f"{user.username} is deactivated; an administrator can reactivate them")
    if user.id == batch.owner_id:
        raise BadRequest(f"{user.username} owns this batch already")
    share = session.get(BatchShare, (batch_id, user.id))
    if share is None:
        share = BatchShare(
            batch_id=batch_id,
            user_id=user.id,
            permission=permission,
            created_at=utcnow(),
            created_by_id=shared_by,
        )
        session.add(share)
    else:
        share.permission = permission
    session.flush()
    _mirror(session, batch)
    return share, user


def unshare_batch(session: Session, *, batch_id: str, username: str) -> None:
    """Revoke a share; it takes effect with the user's next request."""
    batch = session.get(JobBatch, batch_id, with_for_update=True)
    if batch is None:
        raise NotFound(f"No batch with id {batch_id}")
    user = users.find_user(session, username)
    share = session.get(BatchShare, (batch_id, user.id)) if user is not None else None
    if share is None:
        raise NotFound(f"The batch is not shared with {username.strip().lower()!r}")
    session.delete(share)
    session.flush()
    _mirror(session, batch)


def _mirror(session: Session, batch: JobBatch) -> None:
    batch.shared_with = [user.username for _, user in list_shares(session, batch_id=batch.id)]
    session.flush()
