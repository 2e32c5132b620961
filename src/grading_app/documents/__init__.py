"""Text extraction and upload validation for .docx, .pdf, .txt and .md."""

from grading_app.documents.extract import ExtractedDocument, extract_file, extract_text
from grading_app.documents.storage import StoredFile, store_upload
from grading_app.documents.validate import (
    SUPPORTED_TYPES,
    DocumentError,
    detect_type,
    validate_upload,
)

__all__ = [
    "SUPPORTED_TYPES",
    "DocumentError",
    "ExtractedDocument",
    "StoredFile",
    "detect_type",
    "extract_file",
    "extract_text",
    "store_upload",
    "validate_upload",
]
