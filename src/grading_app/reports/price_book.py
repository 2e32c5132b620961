"""The prices in force and what a call costs: an administrator's prices (table
`model_prices`) over `GRADING_APP_PRICES` over the dated defaults; listed, set and
removed here.

Every graded item is priced as it is stored, so the table is kept per database engine
and read again at most every RELOAD_SECONDS (at once, in this process, after an
administrator's change commits): the grading path never queries prices per item.
Another process sees a change within RELOAD_SECONDS.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

import sqlalchemy as sa
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from grading_app.errors import BadRequest, NotFound
from grading_app.models import ModelPrice
from grading_app.processing.delivery import Delivery
from grading_app.providers.registry import canonical_name, load_provider_configs
from grading_app.reports.prices import (
    EVERY_MODEL,
    PRICES_AS_OF,
    Price,
    PriceSource,
    PriceTable,
    price_key,
)

RELOAD_SECONDS = 30.0
MODEL_NAME_LENGTH = 100


@dataclass
class _Book:
    table: PriceTable
    loaded_at: float
    # Prices looked up already: the grading path asks for the same few models.
    found: dict[tuple[str, str], Price | None] = field(default_factory=dict)


_books: weakref.WeakKeyDictionary[Engine, _Book] = weakref.WeakKeyDictionary()
_overrides: weakref.WeakKeyDictionary[Engine, Mapping[str, Sequence[float]]] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


def use_overrides(engine: Engine, overrides: Mapping[str, Sequence[float]]) -> None:
    """The `GRADING_APP_PRICES` of the application using `engine`; without, a process
    uses its environment's."""
    with _lock:
        _overrides[engine] = overrides
        _books.pop(engine, None)


def forget(engine: Engine) -> None:
    """Read the prices afresh at the next lookup (after an administrator's change)."""
    with _lock:
        _books.pop(engine, None)


def price_table(session: Session) -> PriceTable:
    """The prices in force, as kept for the session's database (read again when older
    than RELOAD_SECONDS)."""
    return _book(session).table


def price_for(session: Session, provider: str, model: str) -> Price | None:
    """The price in force for a model; None: no known price (its cost is unknown)."""
    book = _book(session)
    key = (provider, model)
    if key not in book.found:
        book.found[key] = book.table.price(provider, model)
    return book.found[key]


def call_cost(
    session: Session,
    *,
    provider: str,
    model: str,
    prompt_tokens: int | None,
    completion_tokens: int | None,
    cached_tokens: int | None,
    cache_write_tokens: int | None,
    delivery: str | None,
) -> float | None:
    """USD for one grading's calls at the price in force, the batch API's discount
    included; None when the model has no price or the provider reported no tokens."""
    if prompt_tokens is None and completion_tokens is None:
        return None
    price = price_for(session, provider, model)
    if price is None:
        return None
    return price.cost(
        prompt_tokens or 0,
        completion_tokens or 0,
        cached_tokens=cached_tokens or 0,
        cache_write_tokens=cache_write_tokens or 0,
        batch=delivery == Delivery.BATCH_API,
    )


def _book(session: Session) -> _Book:
    engine = session.get_bind().engine
    now = time.monotonic()
    with _lock:
        book = _books.get(engine)
        if book is not None and now - book.loaded_at < RELOAD_SECONDS:
            return book
        overrides = _overrides.get(engine)
    table = load_table(session, overrides=overrides)
    book = _Book(table, loaded_at=now)
    with _lock:
        _books[engine] = book
    return book


def load_table(
    session: Session, *, overrides: Mapping[str, Sequence[float]] | None = None
) -> PriceTable:
    """The prices in force, read now: every administrator's row, and `overrides` (by
    default the environment's GRADING_APP_PRICES)."""
    if overrides is None:
        from grading_app.config import get_settings

        overrides = get_settings().price_overrides
    rows = session.execute(sa.select(ModelPrice)).scalars()
    return PriceTable.of(overrides, {price_key(r.provider, r.model): price_of_row(r) for r in rows})


def price_of_row(row: ModelPrice) -> Price:
    return Price(
        input_per_million=row.input_per_million,
        output_per_million=row.output_per_million,
        source="administrator",
        cached_input_per_million=row.cached_input_per_million,
        cache_write_per_million=row.cache_write_per_million,
        batch_discount=row.batch_discount,
    )


# --- the price list an administrator keeps -------------------------------------------------


@dataclass(frozen=True)
class ListedPrice:
    provider: str
    model: str  # "*": every model of the provider without a price of its own
    price: Price
    as_of: date | None  # when the default was read, or the administrator set it

    @property
    def source(self) -> PriceSource:
        return self.price.source


def list_prices(session: Session) -> list[ListedPrice]:
    """Every price in force, each with its source and date, by provider and model."""
    engine = session.get_bind().engine
    with _lock:
        overrides = _overrides.get(engine)
    table = load_table(session, overrides=overrides)
    changed = {
        price_key(provider, model): updated_at
        for provider, model, updated_at in session.execute(
            sa.select(ModelPrice.provider, ModelPrice.model, ModelPrice.updated_at)
        )
    }
    listed = []
    for key, price in table.listed():
        provider, _, model = key.partition(":")
        as_of = None
        changed_at = changed.get(key)
        if price.source == "default":
            as_of = PRICES_AS_OF
        elif price.source == "administrator" and changed_at is not None:
            as_of = changed_at.date()
        listed.append(ListedPrice(provider, model or EVERY_MODEL, price, as_of))
    return listed


@dataclass(frozen=True)
class Figures:
    """A price as an administrator enters it, USD per million tokens."""

    input_per_million: float
    output_per_million: float
    cached_input_per_million: float | None = None
    cache_write_per_million: float | None = None
    batch_discount: float = 0.0


def figure_errors(figures: Figures) -> dict[str, str]:
    """What is wrong with each figure, by field name (empty: all fine)."""
    errors = {}
    for name in (
        "input_per_million",
        "output_per_million",
        "cached_input_per_million",
        "cache_write_per_million",
    ):
        value = getattr(figures, name)
        if value is not None and not (math.isfinite(value) and value >= 0):
            errors[name] = "a price is a number of US dollars, 0 or more"
    discount = figures.batch_discount
    if not (math.isfinite(discount) and 0 <= discount <= 1):
        errors["batch_discount"] = "the batch discount is a share from 0 to 1 (0.5: half price)"
    return errors


def name_errors(provider: str, model: str) -> dict[str, str]:
    """What is wrong with the provider's or the model's name (empty: both fine)."""
    errors = {}
    known = load_provider_configs()
    if canonical_name(provider) not in known:
        errors["provider"] = f"no provider named '{provider}'; known: {', '.join(sorted(known))}"
    if not model.strip() or model != model.strip():
        errors["model"] = "name the model as the provider does (no spaces around it), or *"
    elif len(model) > MODEL_NAME_LENGTH:
        errors["model"] = f"a model name has at most {MODEL_NAME_LENGTH} characters"
    return errors


def set_price(
    session: Session, *, provider: str, model: str, figures: Figures, user_id: str | None
) -> ModelPrice:
    """Set the administrator's price of a model (or, with model "*", of every model of
    the provider without one); it wins over the other sources."""
    errors = {**name_errors(provider, model), **figure_errors(figures)}
    if errors:
        raise BadRequest("; ".join(f"{name}: {message}" for name, message in errors.items()))
    provider = canonical_name(provider)
    row = session.execute(
        sa.select(ModelPrice).where(ModelPrice.provider == provider, ModelPrice.model == model)
    ).scalar_one_or_none()
    if row is None:
        row = ModelPrice(provider=provider, model=model)
        session.add(row)
    row.input_per_million = figures.input_per_million
    row.output_per_million = figures.output_per_million
    row.cached_input_per_million = figures.cached_input_per_million
    row.cache_write_per_million = figures.cache_write_per_million
    row.batch_discount = figures.batch_discount
    row.updated_by = user_id
    session.flush()
    _forget_on_commit(session)
    return row


def delete_price(session: Session, *, provider: str, model: str) -> ModelPrice:
    """Remove the administrator's price: GRADING_APP_PRICES' or the default applies."""
    row = session.execute(
        sa.select(ModelPrice).where(
            ModelPrice.provider == canonical_name(provider), ModelPrice.model == model
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"No administrator's price for {provider}:{model}")
    session.delete(row)
    session.flush()
    _forget_on_commit(session)
    return row


def _forget_on_commit(session: Session) -> None:
    # Not before: a lookup in between would keep the old prices for RELOAD_SECONDS.
    engine = session.get_bind().engine
    event.listen(session, "after_commit", lambda _: forget(engine), once=True)
