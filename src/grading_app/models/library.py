"""Saved prompts and marking schemes (legacy tables, names and meanings unchanged)."""

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from grading_app.models.base import Base, new_id, utcnow


class MarkingScheme(Base):
    """A marking scheme uploaded for one job (legacy G3)."""

    __tablename__ = "marking_schemes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    created_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(default=utcnow, onupdate=utcnow)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    filename: Mapped[str] = mapped_column(String(255))
    original_filename: Mapped[str] = mapped_column(String(255))
    file_size: Mapped[int | None] = mapped_column(Integer)
    file_type: Mapped[str | None] = mapped_column(String(10))
    content: Mapped[str | None] = mapped_column(Text)
    # Criteria, maxima and level descriptors when the scheme is a structured rubric
    # (grading/rubric.py); `content` then holds it written out. Added by 0006.
    rubric: Mapped[dict[str, Any] | None] = mapped_column()


class SavedMarkingScheme(Base):
    """A reusable marking scheme in the library (legacy G4)."""

    __tablename__ = "saved_marking_schemes"
    # One row per uploaded file: the same bytes uploaded again reuse it.
    # The same file uploaded twice by one owner finds its row.
    __table_args__ = (
        Index(
            "ix_saved_marking_schemes_owner_id_content_hash",
            "owner_id",
            "content_hash",
            unique=True,
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    created_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(default=utcnow, onupdate=utcnow)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    filename: Mapped[str] = mapped_column(String(255))
    original_filename: Mapped[str] = mapped_column(String(255))
    file_size: Mapped[int | None] = mapped_column(Integer)
    file_type: Mapped[str | None] = mapped_column(String(10))
    content: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(100))
    usage_count: Mapped[int | None] = mapped_column(Integer, default=0)
    last_used: Mapped[datetime | None] = mapped_column()
    rubric: Mapped[dict[str, Any] | None] = mapped_column()
    # SHA-256 of the uploaded file's bytes; none for a scheme written in the API, or
    # one whose text or rubric was edited since (it is no longer that file).
    content_hash: Mapped[str | None] = mapped_column(String(64))
    owner_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("users.id"), index=True)
    is_public: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class SavedPrompt(Base):
    """A reusable prompt in the library (legacy G4).

    `provider`/`model` are the prompt's preferred model. Databases created at G4/G5 have
    them (provider NOT NULL there); G6 dropped them. The enhanced schema keeps them,
    nullable, so no legacy value is lost and inserts that leave them out succeed.
    """

    __tablename__ = "saved_prompts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    created_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(default=utcnow, onupdate=utcnow)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(100))
    prompt_text: Mapped[str] = mapped_column(Text)
    usage_count: Mapped[int | None] = mapped_column(Integer, default=0)
    last_used: Mapped[datetime | None] = mapped_column()
    provider: Mapped[str | None] = mapped_column(String(50))
    model: Mapped[str | None] = mapped_column(String(100))
    owner_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("users.id"), index=True)
    is_public: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
