"""Batches: state machine, templates, bulk operations, filters, analytics, export."""
