"""Trust in grades: checked evidence, hidden-instruction scan, redaction."""
