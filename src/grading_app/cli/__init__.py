"""The `grading-app` command line: thin shells over the services."""
