"""Claiming work by priority, executors (local, Celery), leases and reaper, progress."""
