"""Text extraction and upload validation for .docx, .pdf, .txt and .md."""
