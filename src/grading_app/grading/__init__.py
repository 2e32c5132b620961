"""Prompt assembly, the structured grade schema and its parsing, grading one work item."""
