"""Checks that make an AI grade trustworthy: here, the scan of a document for text aimed
at the grading model rather than the human reader (``hidden_text.scan_document``)."""
