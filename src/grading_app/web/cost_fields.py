"""The "Cost" fieldset of the new batch and batch edit forms: how the calls reach the
vendor (`delivery`) and the batch's budget in USD. Read from the form into the batch
settings the batch services check (`BatchSettings`); only what differs from what the
batch has (or, for a new batch, from the defaults) is sent, so a template's own
settings and a processing batch's unchanged settings are left alone."""

from __future__ import annotations

from typing import Any

from grading_app.processing.delivery import Delivery, budget_setting, delivery_setting

COST_FIELDS = ("delivery", "budget")
DELIVERY_CHOICES = (
    (Delivery.LIVE.value, "Live", "each document graded now, at the list price"),
    (
        Delivery.BATCH_API.value,
        "Batch API",
        "half price, graded within 24 hours (OpenAI and Claude models only)",
    ),
    (
        Delivery.AUTO.value,
        "Auto",
        "the batch API while the deadline leaves room for it, live calls after",
    ),
)


def cost_form_of(batch_settings: Any) -> dict[str, Any]:
    """The fieldset's values as a batch's stored settings have them."""
    budget = budget_setting(batch_settings)
    return {
        "delivery": delivery_setting(batch_settings).value,
        "budget": f"{budget:.2f}" if budget is not None else "",
    }


def cost_changes(
    form: dict[str, Any], errors: dict[str, str], batch_settings: Any
) -> dict[str, Any]:
    """The settings the fieldset changes against `batch_settings`; a budget that is not
    a number is an error beside its field (its range is the batch service's to check);
    an emptied budget is sent as null (no budget)."""
    changes: dict[str, Any] = {}
    delivery = form.get("delivery") or delivery_setting(batch_settings).value
    if delivery != delivery_setting(batch_settings):
        changes["delivery"] = delivery
    typed = str(form.get("budget") or "").strip().removeprefix("$").strip()
    stored = budget_setting(batch_settings)
    if not typed:
        if stored is not None:
            changes["budget"] = None
        return changes
    try:
        budget = float(typed.replace(",", ""))
    except ValueError:
        errors["budget"] = f"'{typed}' is not an amount: write US dollars, e.g. 5 or 12.50"
        return changes
    if budget != stored:
        changes["budget"] = budget
    return changes


def field_of_refusal(message: str) -> str:
    """Where a batch service's refusal goes on the form: beside the delivery field when
    it is about delivery (a model without a batch API), else above the form."""
    return "delivery" if message.startswith("settings.delivery") else "form"
