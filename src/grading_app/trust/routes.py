"""Review endpoints: a document's review, a batch's review queue, releasing its grades."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, UploadFile
from pydantic import BaseModel

from grading_app.accounts.auth import CurrentUser
from grading_app.batches.schemas import BatchUpdate
from grading_app.batches.service import update_batch
from grading_app.deps import Page, Paging, ReadSessionDep, SessionDep, paging
from grading_app.errors import BadRequest
from grading_app.trust import review
from grading_app.trust.roster import MAX_ROSTER_BYTES, parse_roster
from grading_app.trust.schemas import QueueItemOut, ReleaseIn, ReleaseOut, ReviewIn, ReviewOut

router = APIRouter(prefix="/api", tags=["review"])


@router.get("/submissions/{submission_id}/review", response_model=ReviewOut)
def get_review(submission_id: str, session: ReadSessionDep) -> Any:
    """The document's review state, a person's grade if overridden, and why it may need
    a look (reasons, hidden-instruction findings)."""
    return review.review_view(session, submission_id)


@router.post("/submissions/{submission_id}/review", response_model=ReviewOut)
def review_document(
    submission_id: str, body: ReviewIn, session: SessionDep, principal: CurrentUser
) -> Any:
    """Accept the models' grade, or override the overall score and any criterion with a
    comment. The override wins in the gradebook, exports and analytics; the AI grades
    stay visible. 409 while no model has graded the document; 400 for a score above
    its maximum or an unknown criterion. Recorded in the audit trail."""
    return review.review_document(session, principal, submission_id, body)


@router.get("/batches/{batch_id}/review-queue", response_model=Page[QueueItemOut])
def review_queue(
    batch_id: str, session: ReadSessionDep, page: Annotated[Paging, paging(50)]
) -> Any:
    """The batch's unreviewed documents that need a look, most doubtful first, each with
    why: models disagreeing beyond the batch's `disagreement_threshold`, a repaired
    answer, unverified evidence, a hidden-instruction finding, a score near one of the
    batch's `grade_boundaries`."""
    return review.review_queue(session, batch_id=batch_id, limit=page.limit, offset=page.offset)


@router.post("/batches/{batch_id}/release", response_model=ReleaseOut)
def release(batch_id: str, body: ReleaseIn, session: SessionDep, principal: CurrentUser) -> Any:
    """Mark the batch's grades released. Refused (409) while the batch is open, and
    while graded documents are unreviewed unless `release_unreviewed` is true."""
    return review.release_grades(session, principal, batch_id, body)


class RosterOut(BaseModel):
    batch_id: str
    names: int


@router.post("/batches/{batch_id}/roster", response_model=RosterOut)
def upload_roster(
    batch_id: str,
    file: Annotated[
        UploadFile,
        File(
            description="A class list: .csv (a name column, or first "
            "and last name columns) or .txt (one name per line)"
        ),
    ],
    session: SessionDep,
) -> Any:
    """The class roster whose names redaction replaces (batch setting `roster`; it
    replaces the one before). The names stay on this server."""
    data = file.file.read(MAX_ROSTER_BYTES + 1)
    try:
        names = parse_roster(data, file.filename or "roster")
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    update_batch(session, batch_id=batch_id, changes=BatchUpdate(settings={"roster": names}))
    return RosterOut(batch_id=batch_id, names=len(names))
